"""Who may do what: ownership, licence overrides, register by URI, visibility, roles.

Personas (tests/conftest.py and below): alice owns the claims data (steward,
claims-team), erin is her teammate, mallory an outsider (support-team), root
an admin, audrey an auditor, and sam the steward of another team's dataset.
Each rule is tried from the attacker's side too.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from governance.lineage import graph
from governance.models import AuditEvent, Dataset, DatasetTransfer, DatasetVersion
from governance.services import (
    GovernanceInput,
    do_accept_dataset_transfer,
    do_create_dataset,
    do_decline_dataset_transfer,
    do_ingest_dataset_version,
    do_open_dataset_version,
    do_request_dataset_transfer,
    do_update_dataset,
    do_update_version_governance,
    open_registered_source,
)
from pedigree.errors import Conflict, InvalidInput, PermissionDenied
from tests.conftest import jsonl

pytestmark = pytest.mark.django_db

DATASETS = "/api/v1/datasets/"
VERSIONS = "/api/v1/datasets/claims-2024/versions/"


@pytest.fixture
def audrey(db: Any) -> User:
    """An auditor with a console login: reads everything, changes nothing."""
    user = User.objects.create_user("audrey", password="pw-audrey", is_staff=True)
    user.groups.add(Group.objects.get_or_create(name="auditors")[0])
    return user


@pytest.fixture
def sam(support_team: Group) -> User:
    """The steward of another team's dataset, with a console login."""
    user = User.objects.create_user("sam", password="pw-sam", is_staff=True)
    user.groups.add(support_team)
    do_create_dataset(actor=user, name="support-chats", owner_group=support_team)
    return user


@pytest.fixture
def version(claims_dataset: Dataset, make_version: Any) -> DatasetVersion:
    return make_version(claims_dataset)


def _console(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- Ownership is governance ---------------------------------------------------------


def test_a_steward_cannot_move_a_dataset_to_another_team_with_a_patch(
    api_client: Any, alice: User, mallory: User, claims_dataset: Dataset
) -> None:
    response = api_client(alice).patch(
        DATASETS + "claims-2024/", {"owner_group": "support-team", "steward": "mallory", "reason": "x"}, format="json"
    )
    assert response.status_code == 403
    assert "needs an admin" in response.json()["error"]["message"] and "transfers/" in response.json()["error"]["message"]
    claims_dataset.refresh_from_db()
    assert (claims_dataset.owner_group.name, claims_dataset.steward.username) == ("claims-team", "alice")


def test_a_teammate_cannot_make_herself_steward_with_a_patch(api_client: Any, erin: User, claims_dataset: Dataset) -> None:
    response = api_client(erin).patch(DATASETS + "claims-2024/", {"steward": "erin", "reason": "mine"}, format="json")
    assert response.status_code == 403
    assert Dataset.objects.get().steward.username == "alice"


def test_an_admin_changes_owners_only_with_a_reason_and_it_is_audited(
    api_client: Any, root: User, mallory: User, claims_dataset: Dataset
) -> None:
    body = {"owner_group": "support-team", "steward": "mallory"}
    response = api_client(root).patch(DATASETS + "claims-2024/", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "reason"
    response = api_client(root).patch(DATASETS + "claims-2024/", {**body, "reason": "support runs claims now"}, format="json")
    assert response.status_code == 200, response.json()
    event = AuditEvent.objects.get(action="dataset.ownership_changed")
    assert event.reason == "support runs claims now"
    assert event.changes == {"owner_group": ["claims-team", "support-team"], "steward": ["alice", "mallory"]}


def test_moving_a_dataset_without_a_steward_from_the_new_team_is_refused(
    root: User, support_team: Group, claims_dataset: Dataset
) -> None:
    with pytest.raises(InvalidInput) as caught:
        do_update_dataset(actor=root, dataset=claims_dataset, changes={"owner_group": support_team}, reason="moved")
    assert caught.value.details["field"] == "steward" and "alice is not a member of support-team" in caught.value.message


def test_a_transfer_changes_owners_only_when_the_receiving_team_accepts_and_the_old_team_loses_access(
    alice: User, erin: User, mallory: User, support_team: Group, claims_dataset: Dataset, version: DatasetVersion
) -> None:
    transfer = do_request_dataset_transfer(
        actor=alice, dataset=claims_dataset, owner_group=support_team, steward=mallory, reason="support owns claims now"
    )
    with pytest.raises(PermissionDenied):  # nothing changed yet
        do_open_dataset_version(actor=mallory, version=version)
    with pytest.raises(PermissionDenied):  # the sending side cannot accept for the receiver
        do_accept_dataset_transfer(actor=erin, transfer=transfer)
    with pytest.raises(PermissionDenied):
        do_accept_dataset_transfer(actor=alice, transfer=transfer)

    do_accept_dataset_transfer(actor=mallory, transfer=transfer, reason="agreed with alice")

    version.refresh_from_db()
    do_open_dataset_version(actor=mallory, version=version).close()
    for old_team_member in (alice, erin):
        with pytest.raises(PermissionDenied):
            do_open_dataset_version(actor=old_team_member, version=version)
        with pytest.raises(PermissionDenied):
            do_update_dataset(actor=old_team_member, dataset=Dataset.objects.get(), changes={"title": "still ours"})
    assert graph.node_for_dataset_version(version).facts["summary"]["owners"] == ["support-team"]  # refreshed at once
    event = AuditEvent.objects.get(action="dataset.ownership_changed")
    assert event.actor_label == "mallory" and "support owns claims now" in event.reason
    assert DatasetTransfer.objects.get().status == "accepted"


def test_a_transfer_to_a_new_steward_in_the_same_team_is_accepted_by_that_steward_only(
    alice: User, erin: User, claims_team: Group, claims_dataset: Dataset
) -> None:
    frank = User.objects.create_user("frank", password="pw")
    frank.groups.add(claims_team)
    transfer = do_request_dataset_transfer(
        actor=alice, dataset=claims_dataset, owner_group=claims_team, steward=erin, reason="alice is leaving"
    )
    with pytest.raises(PermissionDenied):
        do_accept_dataset_transfer(actor=frank, transfer=transfer)
    assert do_accept_dataset_transfer(actor=erin, transfer=transfer).steward == erin


def test_an_outsider_cannot_request_a_transfer_and_a_declined_one_changes_nothing(
    alice: User, mallory: User, support_team: Group, claims_dataset: Dataset
) -> None:
    with pytest.raises(PermissionDenied):
        do_request_dataset_transfer(actor=mallory, dataset=claims_dataset, owner_group=support_team, steward=mallory, reason="x")
    transfer = do_request_dataset_transfer(
        actor=alice, dataset=claims_dataset, owner_group=support_team, steward=mallory, reason="reorg"
    )
    with pytest.raises(Conflict):  # one pending transfer at a time
        do_request_dataset_transfer(actor=alice, dataset=claims_dataset, owner_group=support_team, steward=mallory, reason="again")
    do_decline_dataset_transfer(actor=mallory, transfer=transfer, reason="not ours")
    with pytest.raises(Conflict):
        do_accept_dataset_transfer(actor=mallory, transfer=transfer)
    assert Dataset.objects.get().owner_group.name == "claims-team"


def test_transfers_over_the_api(api_client: Any, alice: User, mallory: User, claims_dataset: Dataset) -> None:
    url = DATASETS + "claims-2024/transfers/"
    response = api_client(alice).post(url, {"owner_group": "support-team", "steward": "mallory"}, format="json")
    assert response.status_code == 400 and "reason" in response.json()["error"]["fields"]
    response = api_client(alice).post(
        url, {"owner_group": "support-team", "steward": "mallory", "reason": "reorg"}, format="json"
    )
    assert response.status_code == 201, response.json()
    transfer = response.json()
    assert (transfer["status"], transfer["to_group"], transfer["to_steward"]) == ("pending", "support-team", "mallory")
    assert api_client(alice).post(f"{url}{transfer['id']}/accept/", {}, format="json").status_code == 403
    response = api_client(mallory).post(f"{url}{transfer['id']}/accept/", {"reason": "ok"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "accepted"
    assert api_client(mallory).get(DATASETS + "claims-2024/").json()["owner_group"] == "support-team"


# --- Licence overrides ----------------------------------------------------------------


def test_a_steward_may_not_grant_commercial_use_of_non_commercial_data(
    api_client: Any, alice: User, claims_dataset: Dataset, make_version: Any
) -> None:
    make_version(claims_dataset, licence="CC-BY-NC-4.0")
    response = api_client(alice).post(
        VERSIONS + "1/governance/", {"permissions": {"commercial_use": True}, "reason": "we asked nicely"}, format="json"
    )
    assert response.status_code == 403
    assert "only an admin" in response.json()["error"]["message"] and "commercial_use" in response.json()["error"]["message"]
    assert DatasetVersion.objects.get().permits_commercial_use is False


def test_a_steward_may_not_upload_with_more_than_the_licence_grants(alice: User, claims_dataset: Dataset) -> None:
    with pytest.raises(PermissionDenied):
        do_ingest_dataset_version(
            actor=alice,
            dataset=claims_dataset,
            source=io.BytesIO(jsonl({"text": "x"})),
            filename="x.jsonl",
            governance=GovernanceInput(licence="CC-BY-NC-4.0", permissions={"commercial_use": True}),
            override_reason="we asked nicely",
        )
    assert not DatasetVersion.objects.exists()


def test_a_steward_may_make_a_licence_stricter_and_edit_an_admins_grant_without_widening_it(
    alice: User, root: User, claims_dataset: Dataset, make_version: Any
) -> None:
    version = make_version(claims_dataset, licence="MIT")
    version = do_update_version_governance(
        actor=alice, version=version, changes={"permissions": {"training": False}}, reason="not for models"
    )
    assert version.permits_training is False
    nc = make_version(claims_dataset, licence="CC-BY-NC-4.0")
    nc = do_update_version_governance(
        actor=root, version=nc, changes={"permissions": {"commercial_use": True}}, reason="contract #7"
    )
    nc = do_update_version_governance(actor=alice, version=nc, changes={"notes": "see contract #7"}, reason="note")
    assert nc.permits_commercial_use is True and nc.notes == "see contract #7"


# --- Register by URI -----------------------------------------------------------------------


def test_registration_by_uri_allows_no_folder_and_no_bucket_by_default() -> None:
    from pedigree import settings as project_settings

    assert project_settings.env_list("PEDIGREE_TEST_UNSET_VARIABLE", []) == []
    source = Path(project_settings.__file__).read_text()
    assert 'env_list("PEDIGREE_IMPORT_ROOTS", [])' in source and 'env_list("PEDIGREE_IMPORT_BUCKETS", [])' in source


def test_no_bucket_is_an_import_bucket_unless_named(settings: Any) -> None:
    settings.PEDIGREE_IMPORT_BUCKETS = []
    with pytest.raises(InvalidInput) as caught:
        open_registered_source("s3://someone-elses-bucket/data.csv")
    assert "not an allowed import bucket" in caught.value.message


def test_no_local_file_is_registered_when_no_import_folder_is_configured(settings: Any, import_dir: Path) -> None:
    (import_dir / "r.jsonl").write_bytes(b'{"text": "x"}\n')
    settings.PEDIGREE_IMPORT_ROOTS = []
    with pytest.raises(InvalidInput) as caught:
        open_registered_source(str(import_dir / "r.jsonl"))
    assert "turned off" in caught.value.message


def test_another_teams_stored_blob_cannot_be_registered_even_inside_an_import_folder(
    api_client: Any, alice: User, mallory: User, support_team: Group, settings: Any, tmp_path: Path, claims_dataset: Dataset, version: DatasetVersion
) -> None:
    settings.PEDIGREE_IMPORT_ROOTS = [str(tmp_path)]  # an import folder that happens to hold the artifact store
    do_create_dataset(actor=mallory, name="mallorys", owner_group=support_team)
    blob = version.storage_uri.removeprefix("file://")
    response = api_client(mallory).post(
        "/api/v1/datasets/mallorys/versions/register/",
        {"uri": blob, "sha256": version.sha256, "licence": "MIT"},
        format="json",
    )
    assert response.status_code == 400, response.json()
    assert "inside Pedigree's artifact store" in response.json()["error"]["message"]
    assert DatasetVersion.objects.count() == 1


def test_the_artifact_store_in_s3_is_never_an_import_source(settings: Any) -> None:
    settings.PEDIGREE_ARTIFACTS = "s3://corp-data/pedigree"
    settings.PEDIGREE_IMPORT_BUCKETS = ["*"]
    for uri in ("s3://corp-data/pedigree/ab/abcdef", "s3://corp-data//pedigree/ab/abcdef", "s3://corp-data/x/../pedigree/ab"):
        with pytest.raises(InvalidInput) as caught:
            open_registered_source(uri)
        assert "artifact store" in caught.value.message, uri


def test_a_wrong_sha256_does_not_reveal_the_real_one(api_client: Any, alice: User, claims_dataset: Dataset, import_dir: Path) -> None:
    data = jsonl({"text": "registered"})
    (import_dir / "r.jsonl").write_bytes(data)
    response = api_client(alice).post(
        VERSIONS + "register/", {"uri": str(import_dir / "r.jsonl"), "sha256": "0" * 64, "licence": "MIT"}, format="json"
    )
    assert response.status_code == 400 and response.json()["error"]["field"] == "sha256"
    assert hashlib.sha256(data).hexdigest() not in response.content.decode()


# --- Re-uploading the same bytes --------------------------------------------------------------


def test_the_same_bytes_with_another_licence_are_a_conflict_naming_the_difference(
    api_client: Any, alice: User, claims_dataset: Dataset
) -> None:
    data = jsonl({"text": "claim"})
    first = api_client(alice).post(VERSIONS + "?licence=MIT&filename=c.jsonl", data=data, content_type="application/octet-stream")
    assert first.status_code == 201
    again = api_client(alice).post(VERSIONS + "?licence=MIT&filename=c.jsonl", data=data, content_type="application/octet-stream")
    assert again.status_code == 200 and again.json()["created"] is False
    other = api_client(alice).post(
        VERSIONS + "?licence=CC-BY-NC-4.0&filename=c.jsonl", data=data, content_type="application/octet-stream"
    )
    assert other.status_code == 409, other.json()
    error = other.json()["error"]
    assert "licence is 'MIT', this upload says 'CC-BY-NC-4.0'" in error["message"]
    assert error["differences"]["licence"] == {"stored": "MIT", "given": "CC-BY-NC-4.0"}
    assert DatasetVersion.objects.get().licence == "MIT"


# --- Visibility ----------------------------------------------------------------------------------

DETAILS = ("sha256", "storage_uri", "source_uri", "original_filename")


@pytest.mark.parametrize("persona", ["alice", "erin", "audrey", "root"])
def test_the_team_the_steward_auditors_and_admins_see_a_versions_details(
    request: Any, api_client: Any, persona: str, audrey: User, root: User, version: DatasetVersion
) -> None:
    user = request.getfixturevalue(persona)
    listed = api_client(user).get(VERSIONS).json()["results"][0]
    assert listed["sha256"] == version.sha256 and listed["storage_uri"] == version.storage_uri
    assert api_client(user).get(VERSIONS + "1/history/").status_code == 200
    assert api_client(user).get(VERSIONS + "1/pii/scans/").status_code == 200


@pytest.mark.parametrize("persona", ["mallory", "sam"])
def test_others_see_the_catalog_entry_but_no_digest_uri_history_pii_or_lineage(
    request: Any, api_client: Any, persona: str, sam: User, version: DatasetVersion
) -> None:
    client = api_client(request.getfixturevalue(persona))
    for body in (client.get(VERSIONS).json()["results"][0], client.get(VERSIONS + "1/").json(), client.get("/api/v1/versions/").json()["results"][-1]):
        assert body["licence"] == "MIT" and body["details_hidden"] is True
        assert not set(DETAILS) & set(body), body
        assert set(body["links"]) == {"self"}
    for url in (VERSIONS + "1/history/", VERSIONS + "1/pii/scans/", VERSIONS + "1/pii/report/", VERSIONS + "1/pii/reviews/"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert "claims-team" in response.json()["error"]["message"]
    node = graph.node_for_dataset_version(version)
    assert client.get(f"/api/v1/lineage/nodes/{node.pk}/facts/").status_code == 403
    assert client.get(f"/api/v1/lineage/nodes/{node.pk}/").status_code == 403
    listed = client.get("/api/v1/lineage/nodes/", {"kind": "dataset_version"}).json()["results"]
    assert node.pk not in [item["id"] for item in listed]
    assert client.get(DATASETS + "claims-2024/").status_code == 200  # the catalog entry stays visible


# --- Roles ---------------------------------------------------------------------------------------


def test_an_auditor_reads_everything_and_changes_nothing(api_client: Any, audrey: User, version: DatasetVersion) -> None:
    client = api_client(audrey)
    node = graph.node_for_dataset_version(version)
    assert client.get(f"/api/v1/lineage/nodes/{node.pk}/facts/").status_code == 200
    assert client.patch(DATASETS + "claims-2024/", {"title": "audited"}, format="json").status_code == 403
    assert client.post(VERSIONS + "1/governance/", {"notes": "x", "reason": "r"}, format="json").status_code == 403
    assert client.post(VERSIONS + "1/revoke/", {"reason": "r"}, format="json").status_code == 403
    assert client.post(VERSIONS + "1/pii/scans/", {}, format="json").status_code == 403
    assert client.post(f"/api/v1/lineage/nodes/{node.pk}/revoke/", {"reason": "r"}, format="json").status_code == 403
    with pytest.raises(PermissionDenied):
        do_open_dataset_version(actor=audrey, version=version)  # reading the bytes is the policies' call
    version.refresh_from_db()
    assert version.status == "active" and Dataset.objects.get().title == "Claims"


def test_a_console_login_alone_is_not_an_admin(version: DatasetVersion) -> None:
    staff = User.objects.create_user("sid", password="pw-sid", is_staff=True)
    with pytest.raises(PermissionDenied):
        do_open_dataset_version(actor=staff, version=version)
    with pytest.raises(PermissionDenied):
        do_update_dataset(actor=staff, dataset=Dataset.objects.get(), changes={"title": "staff"})
    assert not Dataset.objects.restrict(staff, "view_details").exists()
    staff.groups.add(Group.objects.get_or_create(name="admins")[0])
    do_open_dataset_version(actor=staff, version=version).close()


def test_a_steward_uses_the_console_for_her_own_datasets_only(alice: User, sam: User, version: DatasetVersion) -> None:
    alice.is_staff = True
    alice.save()
    console = _console(alice)
    support = Dataset.objects.get(name="support-chats")
    listing = console.get("/admin/governance/dataset/")
    assert listing.status_code == 200
    assert "claims-2024" in listing.content.decode() and "support-chats" not in listing.content.decode()
    assert console.get(f"/admin/governance/dataset/{version.dataset_id}/change/").status_code == 200
    assert console.get(f"/admin/governance/datasetversion/{version.pk}/change/").status_code == 200
    assert console.get(f"/admin/governance/dataset/{support.pk}/change/").status_code == 302  # "doesn't exist"
    assert console.get("/admin/governance/auditevent/").status_code == 403
    other = _console(sam)
    assert other.get(f"/admin/governance/datasetversion/{version.pk}/change/").status_code == 302
    assert other.get(f"/admin/governance/datasetversion/{version.pk}/revoke/").status_code == 404


def test_the_steward_sees_her_own_pii_reports_in_the_console_and_no_one_elses(
    alice: User, sam: User, version: DatasetVersion
) -> None:
    from governance.pii.scans import do_request_pii_scan

    scan = do_request_pii_scan(actor=alice, version=version, enqueue=False)
    alice.is_staff = True
    alice.save()
    assert _console(alice).get(f"/admin/governance/piiscan/{scan.pk}/change/").status_code == 200
    assert _console(sam).get(f"/admin/governance/piiscan/{scan.pk}/change/").status_code == 404
    assert "claims-2024" not in _console(sam).get("/admin/governance/piiscan/").content.decode()


def test_an_auditor_reads_the_console_but_cannot_act(audrey: User, version: DatasetVersion) -> None:
    console = _console(audrey)
    assert console.get("/admin/governance/auditevent/").status_code == 200
    page = console.get(f"/admin/governance/datasetversion/{version.pk}/change/")
    assert page.status_code == 200 and version.sha256 in page.content.decode()
    assert console.get(f"/admin/governance/datasetversion/{version.pk}/revoke/").status_code == 403
    response = console.post(f"/admin/governance/dataset/{version.dataset_id}/change/", {"title": "x"})
    assert response.status_code == 403
    assert DatasetVersion.objects.get().status == "active"


def test_a_console_login_alone_shows_no_governance_pages(version: DatasetVersion) -> None:
    staff = User.objects.create_user("sid", password="pw-sid", is_staff=True)
    console = _console(staff)
    for url in ("/admin/governance/dataset/", "/admin/governance/datasetversion/", "/admin/governance/piiscan/",
                "/admin/governance/auditevent/", "/admin/governance/lineagenode/"):
        assert console.get(url).status_code == 403, url
    assert console.get(f"/admin/governance/datasetversion/{version.pk}/revoke/").status_code == 404


def test_the_policy_api_is_for_admins_and_auditors_reading_not_for_a_console_login(api_client: Any, audrey: User, root: User) -> None:
    staff = User.objects.create_user("sid", password="pw-sid", is_staff=True)
    assert api_client(staff).get("/api/v1/policies/").status_code == 403
    assert api_client(audrey).get("/api/v1/policies/").status_code == 200
    assert api_client(audrey).post("/api/v1/policies/reload/", {}, format="json").status_code == 403
    assert api_client(root).get("/api/v1/policies/").status_code == 200


def test_an_auditor_reads_every_consumer_and_changes_none(api_client: Any, audrey: User, root: User) -> None:
    from serving.services import do_create_consumer

    do_create_consumer(actor=root, name="claims-fraud-us", region="us", reason="fraud model for the US team")
    assert [c["name"] for c in api_client(audrey).get("/api/v1/consumers/").json()["results"]] == ["claims-fraud-us"]
    response = api_client(audrey).patch("/api/v1/consumers/claims-fraud-us/", {"region": "eu", "reason": "r"}, format="json")
    assert response.status_code == 403


def test_with_the_role_backend_an_auditor_reads_the_other_console_pages_and_a_console_login_alone_does_not(
    settings: Any, audrey: User
) -> None:
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend", "pedigree.roles.RoleBackend"]
    assert _console(audrey).get("/admin/policies/policydecision/").status_code == 200
    assert _console(audrey).get("/admin/serving/consumer/add/").status_code == 403
    staff = User.objects.create_user("sid", password="pw-sid", is_staff=True)
    assert _console(staff).get("/admin/policies/policydecision/").status_code == 403


def test_searching_versions_by_digest_does_not_confirm_another_teams_file(
    api_client: Any, mallory: User, erin: User, version: DatasetVersion
) -> None:
    query = {"sha256": version.sha256}
    assert api_client(mallory).get("/api/v1/versions/", query).json()["results"] == []
    assert [v["number"] for v in api_client(erin).get("/api/v1/versions/", query).json()["results"]] == [1]


def test_transfers_are_seen_by_the_dataset_team_and_the_receiving_side_only(
    api_client: Any, alice: User, mallory: User, support_team: Group, claims_dataset: Dataset
) -> None:
    url = DATASETS + "claims-2024/transfers/"
    dana = User.objects.create_user("dana", password="pw")
    dana.groups.add(Group.objects.get_or_create(name="research")[0])
    transfer = do_request_dataset_transfer(
        actor=alice, dataset=claims_dataset, owner_group=support_team, steward=mallory, reason="claims line moves to support"
    )
    assert [t["id"] for t in api_client(alice).get(url).json()["results"]] == [transfer.pk]
    assert [t["id"] for t in api_client(mallory).get(url).json()["results"]] == [transfer.pk]  # the receiving side
    assert api_client(dana).get(url).json()["results"] == []
    assert api_client(dana).get(f"{url}{transfer.pk}/").status_code == 404
