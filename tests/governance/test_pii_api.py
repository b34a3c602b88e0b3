"""PII over REST, in the admin console and from the command line."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from governance.models import Dataset, DatasetVersion
from governance.models.pii import PiiScan
from tests.governance.pii_support import EMAIL, jsonl_bytes, pii_records, scan_now

MakeVersion = Callable[..., DatasetVersion]
Clients = Callable[[User | None], APIClient]
BASE = "/api/v1/datasets/claims-2024/versions/1/pii/"


@pytest.fixture
def version(claims_dataset: Dataset, make_version: MakeVersion) -> DatasetVersion:
    return make_version(claims_dataset, pii_records())


@pytest.fixture
def scanned(version: DatasetVersion, alice: User) -> PiiScan:
    return scan_now(version, actor=alice)


def test_starting_a_scan_returns_202_and_its_task_completes_it(
    version: DatasetVersion, alice: User, api_client: Clients, django_capture_on_commit_callbacks: Any
) -> None:
    # The task runs eagerly here (in this process); tests/test_worker_celery.py
    # runs it on a real worker process through Redis and the filesystem broker.
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(alice).post(BASE + "scans/", {}, format="json")
    assert response.status_code == 202, response.content
    scan = api_client(alice).get(BASE + f"scans/{response.json()['id']}/").json()
    assert scan["status"] == "completed"
    assert scan["progress"] == {"records_done": 4, "records_total": 4, "fraction": 1.0}


def test_a_scan_can_be_started_with_another_threshold(version: DatasetVersion, alice: User, api_client: Clients) -> None:
    response = api_client(alice).post(BASE + "scans/", {"score_threshold": 0.9, "entities": ["EMAIL_ADDRESS"]}, format="json")
    assert response.json()["config"]["score_threshold"] == 0.9
    assert response.json()["config"]["entities"] == ["EMAIL_ADDRESS"]


def test_an_outsider_cannot_start_a_scan_over_rest(version: DatasetVersion, mallory: User, api_client: Clients) -> None:
    response = api_client(mallory).post(BASE + "scans/", {}, format="json")
    assert response.status_code == 403
    assert "mallory may not scan" in response.json()["error"]["message"]


def test_the_report_lists_findings_per_field_and_type_with_masked_samples(
    scanned: PiiScan, alice: User, api_client: Clients
) -> None:
    report = api_client(alice).get(BASE + "report/").json()
    email = next(f for f in report["findings"] if f["entity_type"] == "EMAIL_ADDRESS")
    assert report["pii_status"] == "pii_found"
    assert email["count"] == 2 and email["samples"][0]["masked"] == "m***@e***.com"
    assert EMAIL not in str(report)


def test_the_report_of_an_unscanned_version_is_404(version: DatasetVersion, alice: User, api_client: Clients) -> None:
    response = api_client(alice).get(BASE + "report/")
    assert response.status_code == 404
    assert "no completed PII scan" in response.json()["error"]["message"]


def test_a_queued_scan_can_be_cancelled(version: DatasetVersion, alice: User, api_client: Clients) -> None:
    scan = api_client(alice).post(BASE + "scans/", {}, format="json").json()
    response = api_client(alice).post(BASE + f"scans/{scan['id']}/cancel/")
    assert response.json()["status"] == "cancelled"


def test_a_steward_confirms_an_entity_type_over_rest(scanned: PiiScan, alice: User, api_client: Clients) -> None:
    response = api_client(alice).post(
        BASE + "reviews/", {"entity_type": "US_SSN", "decision": "confirmed", "reason": "real customers"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert "US_SSN" in response.json()["pii_types"]


def test_a_review_without_a_reason_is_a_400(scanned: PiiScan, alice: User, api_client: Clients) -> None:
    response = api_client(alice).post(BASE + "reviews/", {"entity_type": "US_SSN", "decision": "confirmed"}, format="json")
    assert response.status_code == 400


def test_a_redacted_version_is_created_over_rest(
    scanned: PiiScan, alice: User, api_client: Clients, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(alice).post(BASE + "redact/", {"operators": {"DEFAULT": {"type": "replace"}}}, format="json")
    assert response.status_code == 202, response.content
    redaction = api_client(alice).get(BASE + f"redactions/{response.json()['id']}/").json()
    assert redaction["status"] == "completed" and redaction["result"] == "claims-2024 v2"
    report = api_client(alice).get("/api/v1/datasets/claims-2024/versions/2/pii/report/").json()
    assert report["redacted_from"]["version"] == "claims-2024 v1"
    assert "EMAIL_ADDRESS" not in report["redacted_from"]["residual_pii"]


def test_datasets_can_be_filtered_by_pii_status_and_type(
    scanned: PiiScan, alice: User, api_client: Clients, support_team: Any, make_version: MakeVersion
) -> None:
    from governance.services import do_create_dataset

    other = do_create_dataset(actor=alice, name="clean-notes", owner_group=scanned.version.dataset.owner_group)
    scan_now(make_version(other, jsonl_bytes("nothing personal")), actor=alice)
    client = api_client(alice)
    assert [d["name"] for d in client.get("/api/v1/datasets/?pii_status=pii_found").json()["results"]] == ["claims-2024"]
    assert [d["name"] for d in client.get("/api/v1/datasets/?pii_status=clean").json()["results"]] == ["clean-notes"]
    assert [d["name"] for d in client.get("/api/v1/datasets/?pii_type=us_ssn").json()["results"]] == ["claims-2024"]
    assert client.get("/api/v1/versions/?pii_type=IBAN_CODE").json()["results"] == []


def test_a_dismissed_type_no_longer_matches_the_type_filter(scanned: PiiScan, alice: User, api_client: Clients) -> None:
    client = api_client(alice)
    client.post(BASE + "reviews/", {"entity_type": "US_SSN", "decision": "dismissed", "reason": "fake test data"}, format="json")
    assert client.get("/api/v1/datasets/?pii_type=US_SSN").json()["results"] == []


def test_the_admin_report_page_shows_counts_masked_samples_and_review_buttons(scanned: PiiScan, root: User) -> None:
    client = Client()
    client.force_login(root)
    page = client.get(f"/admin/governance/piiscan/{scanned.pk}/change/").content.decode()
    assert "EMAIL_ADDRESS: 2 findings in 2 records" in page
    assert "m***@e***.com" in page
    assert "Confirm US_SSN" in page and "Dismiss US_SSN" in page
    assert EMAIL not in page


def test_confirming_in_the_admin_records_the_decision(scanned: PiiScan, root: User) -> None:
    client = Client()
    client.force_login(root)
    response = client.post(
        f"/admin/governance/piiscan/{scanned.pk}/review/",
        {"entity_type": "EMAIL_ADDRESS", "decision": "confirmed", "reason": "customer emails"},
    )
    assert response.status_code == 302
    scanned.version.refresh_from_db()
    assert "EMAIL_ADDRESS" in scanned.version.pii_types
    assert scanned.version.pii_reviews.get(entity_type="EMAIL_ADDRESS").decision == "confirmed"


def test_the_scan_command_scans_and_prints_the_report(version: DatasetVersion, alice: User) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("scan", "claims-2024", "1", "--user", "alice", stdout=out, stderr=err)
    assert "completed, pii_found" in out.getvalue()
    assert "US_SSN" in out.getvalue() and "5***-*-8***" in out.getvalue()
    assert "4/4" in err.getvalue()  # the progress bar


def test_the_scan_command_names_an_unknown_version(version: DatasetVersion, alice: User) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no version 9 of a dataset named 'claims-2024'"):
        call_command("scan", "claims-2024", "9", "--user", "alice")


def test_a_report_without_a_ner_model_says_names_and_places_were_not_scanned(
    version: DatasetVersion, alice: User, api_client: Clients
) -> None:
    from governance.pii.config import load_config

    scan_now(version, actor=alice, config=load_config().with_overrides(nlp_engine="none"))
    report = api_client(alice).get(BASE + "report/").json()
    assert report["ner_available"] is False
    assert {"PERSON", "LOCATION"} <= set(report["not_scanned_entities"])
    assert "names and places (LOCATION, NRP, PERSON) were NOT scanned" in report["notes"][0]
    assert "PERSON" not in report["found_entity_types"]


def test_a_redaction_that_drops_every_record_fails_with_the_reason(
    claims_dataset: Dataset, make_version: MakeVersion, alice: User, api_client: Clients, django_capture_on_commit_callbacks: Any
) -> None:
    version = make_version(claims_dataset, jsonl_bytes("mail ann@example.com", "mail bob@example.org"))
    scan_now(version, actor=alice)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(alice).post(BASE + "redact/", {"operators": {"DEFAULT": {"type": "drop"}}}, format="json")
    [redaction] = api_client(alice).get(BASE + "redactions/").json()
    assert response.status_code == 202
    assert redaction["status"] == "failed" and "drops all 2 records" in redaction["error"]
    assert redaction["result"] is None


def test_a_version_page_links_to_its_pii_scans_and_offers_a_scan(scanned: PiiScan, root: User) -> None:
    client = Client()
    client.force_login(root)
    page = client.get(f"/admin/governance/datasetversion/{scanned.version_id}/change/").content.decode()
    assert f"/admin/governance/piiscan/?version__id__exact={scanned.version_id}" in page and "Scan for PII" in page
    listing = client.get(f"/admin/governance/piiscan/?version__id__exact={scanned.version_id}")
    assert listing.status_code == 200 and "claims-2024 v1" in listing.content.decode()


def test_scan_for_pii_in_the_admin_queues_a_scan(version: DatasetVersion, root: User) -> None:
    client = Client()
    client.force_login(root)
    response = client.post(f"/admin/governance/piiscan/scan-version/{version.pk}/")
    scan = PiiScan.objects.get(version=version)
    assert response.status_code == 302 and response["Location"].endswith(f"/piiscan/{scan.pk}/change/")
