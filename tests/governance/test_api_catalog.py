"""The catalog REST API: behaviour and every permission rule."""

from __future__ import annotations

import hashlib

import pytest

from governance.models import Dataset, DatasetVersion
from tests.conftest import jsonl

pytestmark = pytest.mark.django_db

DATASETS = "/api/v1/datasets/"
VERSIONS = "/api/v1/datasets/claims-2024/versions/"


def upload_raw(client, data: bytes, query: str = "licence=MIT&filename=d.jsonl", dataset: str = "claims-2024"):
    return client.post(
        f"/api/v1/datasets/{dataset}/versions/?{query}", data=data, content_type="application/octet-stream"
    )


class TestAuthentication:
    @pytest.mark.parametrize(
        ("method", "url"),
        [
            ("get", DATASETS),
            ("get", DATASETS + "claims-2024/"),
            ("get", VERSIONS),
            ("post", VERSIONS),
            ("get", VERSIONS + "1/download/"),
            ("post", VERSIONS + "1/revoke/"),
        ],
    )
    def test_anonymous_requests_get_401(self, api_client, claims_dataset, make_version, method, url):
        make_version(claims_dataset)
        response = getattr(api_client(None), method)(url)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"


class TestDatasets:
    def test_a_team_member_creates_a_dataset_owned_by_the_team(self, api_client, alice):
        response = api_client(alice).post(
            DATASETS,
            {"name": "claims-2025", "owner_group": "claims-team", "title": "Claims", "labels": {"pii": "yes"}},
            format="json",
        )
        assert response.status_code == 201, response.json()
        assert response.json()["steward"] == "alice"
        assert response.json()["version_count"] == 0

    def test_an_outsider_cannot_create_a_dataset_for_another_team(self, api_client, mallory, claims_team):
        response = api_client(mallory).post(DATASETS, {"name": "x", "owner_group": "claims-team"}, format="json")
        assert response.status_code == 403
        assert not Dataset.objects.filter(name="x").exists()

    def test_a_duplicate_name_is_a_400_naming_the_field(self, api_client, alice, claims_dataset):
        response = api_client(alice).post(DATASETS, {"name": "claims-2024", "owner_group": "claims-team"}, format="json")
        assert response.status_code == 400
        assert "name" in response.json()["error"]["fields"]

    def test_any_signed_in_user_reads_the_catalog(self, api_client, mallory, claims_dataset):
        response = api_client(mallory).get(DATASETS + "claims-2024/")
        assert response.status_code == 200 and response.json()["owner_group"] == "claims-team"

    def test_an_outsider_cannot_change_another_teams_dataset(self, api_client, mallory, claims_dataset):
        response = api_client(mallory).patch(DATASETS + "claims-2024/", {"description": "mine now"}, format="json")
        assert response.status_code == 403
        claims_dataset.refresh_from_db()
        assert claims_dataset.description == ""

    def test_a_teammate_updates_description_and_labels(self, api_client, erin, claims_dataset):
        response = api_client(erin).patch(
            DATASETS + "claims-2024/", {"description": "2024 claims", "labels": {"tier": "gold"}}, format="json"
        )
        assert response.status_code == 200, response.json()
        assert (response.json()["description"], response.json()["labels"], response.json()["steward"]) == (
            "2024 claims", {"tier": "gold"}, "alice",
        )

    def test_the_name_cannot_be_changed(self, api_client, alice, claims_dataset):
        api_client(alice).patch(DATASETS + "claims-2024/", {"name": "renamed"}, format="json")
        assert Dataset.objects.filter(name="claims-2024").exists()

    def test_filters_by_licence_owner_label_domain_status_and_search(self, api_client, alice, claims_dataset, make_version, erin):
        from governance.services import do_create_dataset

        other = do_create_dataset(actor=alice, name="notes", owner_group=claims_dataset.owner_group, domain="hr",
                                  labels={"tier": "bronze"}, description="meeting notes")
        make_version(claims_dataset, licence="CC-BY-4.0")
        make_version(other, licence="MIT")
        client = api_client(erin)

        def names(query: str) -> list[str]:
            response = client.get(DATASETS + "?" + query)
            assert response.status_code == 200, response.json()
            return [d["name"] for d in response.json()["results"]]

        assert names("licence=cc-by-4.0") == ["claims-2024"]
        assert names("owner=claims-team") == ["claims-2024", "notes"]
        assert names("label=tier:bronze") == ["notes"]
        assert names("label=tier") == ["notes"]
        assert names("domain=HR") == ["notes"]
        assert names("status=active") == ["claims-2024", "notes"]
        assert names("status=revoked") == []
        assert names("search=meeting") == ["notes"]

    def test_the_list_is_paginated_with_a_constant_number_of_queries(
        self, api_client, alice, claims_team, make_version, django_assert_max_num_queries
    ):
        from governance.services import do_create_dataset

        for index in range(12):
            make_version(do_create_dataset(actor=alice, name=f"ds-{index}", owner_group=claims_team))
        client = api_client(alice)
        with django_assert_max_num_queries(3):  # token, count, page
            response = client.get(DATASETS + "?limit=10")
        assert response.json()["count"] == 12 and len(response.json()["results"]) == 10


class TestUpload:
    def test_a_raw_body_upload_creates_version_one(self, api_client, alice, claims_dataset):
        data = jsonl({"prompt": "q", "completion": "a"})
        response = upload_raw(api_client(alice), data, "licence=CC-BY-4.0&filename=qa.jsonl&residency_regions=eu,us&allowed_purposes=support")
        assert response.status_code == 201, response.json()
        body = response.json()
        assert (body["number"], body["created"], body["sha256"]) == (1, True, hashlib.sha256(data).hexdigest())
        assert (body["layout"], body["residency_regions"], body["allowed_purposes"]) == ("prompt_completion", ["eu", "us"], ["support"])
        assert body["permissions"] == {"training": True, "commercial_use": True, "attribution": True, "share_alike": False}

    def test_the_same_bytes_again_return_the_existing_version_with_200(self, api_client, alice, claims_dataset):
        data = jsonl({"text": "a"})
        upload_raw(api_client(alice), data)
        response = upload_raw(api_client(alice), data)
        assert response.status_code == 200 and response.json()["created"] is False
        assert DatasetVersion.objects.count() == 1

    def test_a_multipart_upload_with_governance_fields(self, api_client, alice, claims_dataset):
        from django.core.files.uploadedfile import SimpleUploadedFile

        upload = SimpleUploadedFile("claims.csv", b"id,description\n1,broken window\n2,flooded basement\n")
        response = api_client(alice).post(
            VERSIONS,
            {"file": upload, "licence": "proprietary", "licence_text": "Internal only", "copyright_holder": "Acme",
             "residency_regions": ["us"], "consent_basis": "contract", "expires_at": "2099-01-01"},
            format="multipart",
        )
        assert response.status_code == 201, response.json()
        body = response.json()
        assert (body["format"], body["record_count"], body["text_fields"]) == ("csv", 2, ["description"])
        assert (body["licence"], body["copyright_holder"], body["expires_at"]) == ("proprietary", "Acme", "2099-01-01")

    @pytest.mark.parametrize(
        ("data", "query", "expected"),
        [
            (b'{"text": "a"}\n{"text": \n', "licence=MIT&filename=x.jsonl", {"file": "x.jsonl", "line": 2}),
            (b"a,b\n1,2\n3\n", "licence=MIT&filename=t.csv", {"file": "t.csv", "line": 3, "row": 3}),
            (b'{"text": "ok"}\n{"other": "no text"}\n', "licence=MIT&filename=x.jsonl", {"line": 2, "field": "text"}),
            (b'{"text": "\xc3\x28"}\n', "licence=MIT&filename=x.jsonl", {"line": 1}),
            (b'{"text": "a"}\n', "licence=NOPE&filename=x.jsonl", {"field": "licence"}),
            (b'{"text": "a"}\n', "licence=MIT&filename=x.jsonl&expires_at=2001-01-01", {"field": "expires_at"}),
            (b'{"text": "a"}\n', "licence=MIT&residency_regions=mars", {"field": "residency_regions"}),
        ],
        ids=["malformed-json", "csv-columns", "no-text-field", "invalid-utf8", "unknown-licence", "past-expiry", "unknown-region"],
    )
    def test_bad_input_is_a_400_naming_the_problem_and_nothing_is_stored(self, api_client, alice, claims_dataset, artifacts_dir, data, query, expected):
        response = upload_raw(api_client(alice), data, query)
        assert response.status_code == 400, response.json()
        error = response.json()["error"]
        assert expected.items() <= error.items(), error
        assert DatasetVersion.objects.count() == 0
        assert not (artifacts_dir / "blobs").exists() or not any((artifacts_dir / "blobs").rglob("*.*"))

    def test_an_empty_body_is_a_400(self, api_client, alice, claims_dataset):
        response = upload_raw(api_client(alice), b"")
        assert response.status_code == 400 and "empty" in response.json()["error"]["message"]

    def test_a_50_mb_single_line_is_refused_by_the_record_limit(self, api_client, alice, claims_dataset):
        response = upload_raw(api_client(alice), b'{"text": "' + b"x" * (50 * 1024 * 1024) + b'"}\n')
        assert response.status_code == 400
        assert "line 1 is longer than the 16,777,216-byte record limit" in response.json()["error"]["message"]

    def test_a_file_over_the_configured_size_limit_is_a_400(self, api_client, alice, claims_dataset, settings):
        settings.PEDIGREE_MAX_UPLOAD_BYTES = 64
        response = upload_raw(api_client(alice), jsonl(*({"text": "x" * 10} for _ in range(10))))
        assert response.status_code == 400 and response.json()["error"]["limit"] == 64

    def test_an_outsider_cannot_upload_to_another_teams_dataset(self, api_client, mallory, claims_dataset):
        assert upload_raw(api_client(mallory), jsonl({"text": "a"})).status_code == 403
        assert DatasetVersion.objects.count() == 0

    def test_uploading_to_an_unknown_dataset_is_a_404(self, api_client, alice):
        assert upload_raw(api_client(alice), jsonl({"text": "a"}), dataset="nope").status_code == 404


class TestRegisterByUri:
    def test_a_local_file_in_the_import_folder_is_registered_after_its_digest_is_verified(self, api_client, alice, claims_dataset, import_dir):
        data = jsonl({"text": "registered"})
        (import_dir / "r.jsonl").write_bytes(data)
        response = api_client(alice).post(
            VERSIONS + "register/",
            {"uri": str(import_dir / "r.jsonl"), "sha256": hashlib.sha256(data).hexdigest(), "licence": "MIT"},
            format="json",
        )
        assert response.status_code == 201, response.json()
        assert response.json()["source_uri"] == str(import_dir / "r.jsonl")

    def test_a_digest_mismatch_is_refused_and_nothing_is_stored(self, api_client, alice, claims_dataset, import_dir):
        (import_dir / "r.jsonl").write_bytes(jsonl({"text": "registered"}))
        response = api_client(alice).post(
            VERSIONS + "register/", {"uri": f"file://{import_dir}/r.jsonl", "sha256": "0" * 64, "licence": "MIT"}, format="json"
        )
        assert response.status_code == 400 and response.json()["error"]["field"] == "sha256"
        assert DatasetVersion.objects.count() == 0

    def test_a_path_outside_the_import_folders_is_refused(self, api_client, alice, claims_dataset):
        response = api_client(alice).post(
            VERSIONS + "register/", {"uri": "/etc/passwd", "sha256": "0" * 64, "licence": "MIT"}, format="json"
        )
        assert response.status_code == 400 and "outside the import folders" in response.json()["error"]["message"]

    @pytest.mark.s3
    def test_an_object_in_s3_is_registered_after_its_digest_is_verified(self, api_client, alice, claims_dataset, s3_bucket, s3_endpoint, settings):
        from pedigree.storage import s3_client

        settings.AWS_ENDPOINT_URL = s3_endpoint
        settings.PEDIGREE_IMPORT_BUCKETS = [s3_bucket]  # none by default
        data = b"id,text\n1,hello\n"
        s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key="raw/hello.csv", Body=data)
        response = api_client(alice).post(
            VERSIONS + "register/",
            {"uri": f"s3://{s3_bucket}/raw/hello.csv", "sha256": hashlib.sha256(data).hexdigest(), "licence": "MIT"},
            format="json",
        )
        assert response.status_code == 201, response.json()
        assert response.json()["format"] == "csv"


class TestDownload:
    def test_the_steward_downloads_the_exact_bytes(self, api_client, alice, claims_dataset, make_version):
        data = jsonl({"text": "secret claim"})
        version = make_version(claims_dataset, data)
        response = api_client(alice).get(VERSIONS + "1/download/")
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == data
        assert response["X-Content-SHA256"] == version.sha256
        assert 'filename="claims-2024-v1.jsonl"' in response["Content-Disposition"]

    def test_another_team_cannot_download_by_guessing_the_url(self, api_client, mallory, claims_dataset, make_version):
        make_version(claims_dataset)
        response = api_client(mallory).get(VERSIONS + "1/download/")
        assert response.status_code == 403
        assert "mallory may not download dataset claims-2024" in response.json()["error"]["message"]

    def test_an_admin_may_download(self, api_client, root, claims_dataset, make_version):
        make_version(claims_dataset)
        assert api_client(root).get(VERSIONS + "1/download/").status_code == 200

    def test_a_revoked_version_cannot_be_downloaded(self, api_client, alice, claims_dataset, make_version):
        make_version(claims_dataset)
        api_client(alice).post(VERSIONS + "1/revoke/", {"reason": "consent withdrawn"}, format="json")
        response = api_client(alice).get(VERSIONS + "1/download/")
        assert response.status_code == 409 and "revoked" in response.json()["error"]["message"]

    def test_downloads_are_recorded_in_the_history(self, api_client, alice, claims_dataset, make_version):
        make_version(claims_dataset)
        b"".join(api_client(alice).get(VERSIONS + "1/download/").streaming_content)
        actions = [e["action"] for e in api_client(alice).get(VERSIONS + "1/history/").json()]
        assert actions == ["dataset_version.created", "dataset_version.downloaded"]


class TestGovernanceActions:
    def test_governance_metadata_changes_with_a_reason_and_shows_in_history(self, api_client, erin, claims_dataset, make_version):
        make_version(claims_dataset)
        response = api_client(erin).post(
            VERSIONS + "1/governance/",
            {"licence": "CC-BY-NC-4.0", "allowed_purposes": ["research"], "reason": "legal review #42"},
            format="json",
        )
        assert response.status_code == 200, response.json()
        assert response.json()["permissions"]["commercial_use"] is False
        history = api_client(erin).get(VERSIONS + "1/history/").json()
        assert history[-1]["reason"] == "legal review #42" and history[-1]["actor"] == "erin"

    def test_a_governance_change_without_a_reason_is_a_400(self, api_client, alice, claims_dataset, make_version):
        make_version(claims_dataset)
        response = api_client(alice).post(VERSIONS + "1/governance/", {"notes": "x"}, format="json")
        assert response.status_code == 400 and "reason" in response.json()["error"]["fields"]

    def test_an_admin_overrides_permissions_with_a_recorded_reason(self, api_client, root, claims_dataset, make_version):
        make_version(claims_dataset, licence="CC-BY-NC-4.0")
        response = api_client(root).post(
            VERSIONS + "1/governance/",
            {"permissions": {"commercial_use": True}, "reason": "separate commercial agreement #7"},
            format="json",
        )
        assert response.status_code == 200, response.json()
        assert response.json()["permissions_overridden"] is True
        assert response.json()["permissions"]["commercial_use"] is True

    def test_an_outsider_can_neither_change_nor_revoke(self, api_client, mallory, claims_dataset, make_version):
        make_version(claims_dataset)
        client = api_client(mallory)
        assert client.post(VERSIONS + "1/governance/", {"notes": "x", "reason": "r"}, format="json").status_code == 403
        assert client.post(VERSIONS + "1/revoke/", {"reason": "r"}, format="json").status_code == 403
        assert DatasetVersion.objects.get().status == "active"

    def test_revoke_needs_a_reason_and_cannot_repeat(self, api_client, alice, claims_dataset, make_version):
        make_version(claims_dataset)
        client = api_client(alice)
        assert client.post(VERSIONS + "1/revoke/", {}, format="json").status_code == 400
        assert client.post(VERSIONS + "1/revoke/", {"reason": "withdrawn"}, format="json").json()["status"] == "revoked"
        assert client.post(VERSIONS + "1/revoke/", {"reason": "again"}, format="json").status_code == 409


class TestVersionLists:
    def test_versions_list_newest_first_with_a_constant_number_of_queries(
        self, api_client, alice, claims_dataset, make_version, django_assert_max_num_queries
    ):
        for _ in range(5):
            make_version(claims_dataset)
        client = api_client(alice)
        # token, dataset, count, page, the user's roles, the datasets whose details they see
        with django_assert_max_num_queries(6):
            response = client.get(VERSIONS)
        assert [v["number"] for v in response.json()["results"]] == [5, 4, 3, 2, 1]

    def test_all_versions_filter_by_licence_and_status(self, api_client, alice, claims_dataset, make_version):
        make_version(claims_dataset, licence="MIT")
        make_version(claims_dataset, licence="CC0-1.0")
        response = api_client(alice).get("/api/v1/versions/?licence=CC0-1.0")
        assert [v["number"] for v in response.json()["results"]] == [2]

    def test_the_licence_list_tells_what_each_permits(self, api_client, alice):
        licences = {lic["id"]: lic for lic in api_client(alice).get("/api/v1/licences/").json()}
        assert licences["CC-BY-NC-4.0"]["permissions"]["commercial_use"] is False
        assert licences["proprietary"]["requires_text"] is True


def test_the_openapi_schema_and_docs_are_served(client):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
