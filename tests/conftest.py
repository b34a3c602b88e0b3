"""Shared fixtures: personas, API clients, artifact stores (local and S3)."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from governance.models import Dataset, DatasetVersion
from governance.services import GovernanceInput, do_create_dataset, do_ingest_dataset_version
from pedigree import storage

REQUIRE_SERVICES = os.environ.get("PEDIGREE_REQUIRE_SERVICES") == "1"


@pytest.fixture(autouse=True)
def no_decision_log_leftovers() -> Iterator[None]:
    """Decisions a test queued die with its database: none may be written later
    (at exit, into the real database the settings name)."""
    from policies.decision_log import decision_log

    yield
    decision_log.discard()  # first: stopping the writer thread flushes what is queued
    decision_log.stop()


@pytest.fixture(autouse=True)
def artifacts_dir(settings: Any, tmp_path: Path) -> Path:
    """Every test gets its own local artifact store and import folder."""
    root = tmp_path / "artifacts"
    settings.PEDIGREE_ARTIFACTS = str(root)
    settings.AWS_ENDPOINT_URL = None
    imports = tmp_path / "imports"
    imports.mkdir()
    settings.PEDIGREE_IMPORT_ROOTS = [str(imports)]
    storage._cached_store.cache_clear()
    return root


@pytest.fixture
def import_dir(settings: Any) -> Path:
    return Path(settings.PEDIGREE_IMPORT_ROOTS[0])


# --- Personas ------------------------------------------------------------------
# claims-team owns the claims data: alice is its steward, erin a teammate.
# mallory is in support-team: she may read the catalog but not change or
# download claims data. root is an admin.


def _user(username: str, *groups: str, **extra: Any) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username, **extra)
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture
def claims_team(db: Any) -> Group:
    return Group.objects.get_or_create(name="claims-team")[0]


@pytest.fixture
def support_team(db: Any) -> Group:
    return Group.objects.get_or_create(name="support-team")[0]


@pytest.fixture
def alice(claims_team: Group) -> User:
    """Steward of the claims data, member of claims-team."""
    return _user("alice", "claims-team")


@pytest.fixture
def erin(claims_team: Group) -> User:
    """A teammate of alice in claims-team."""
    return _user("erin", "claims-team")


@pytest.fixture
def mallory(support_team: Group) -> User:
    """An outsider: member of support-team only."""
    return _user("mallory", "support-team")


@pytest.fixture
def root(db: Any) -> User:
    """A platform admin."""
    return User.objects.create_superuser("root", "root@example.com", "pw-root")


def api_client_for(user: User | None) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api_client() -> Callable[[User | None], APIClient]:
    return api_client_for


# --- Catalog factories -----------------------------------------------------------


def jsonl(*records: dict[str, Any]) -> bytes:
    import json

    return ("\n".join(json.dumps(r) for r in records) + "\n").encode()


@pytest.fixture
def claims_dataset(alice: User, claims_team: Group) -> Dataset:
    return do_create_dataset(actor=alice, name="claims-2024", owner_group=claims_team, title="Claims")


@pytest.fixture
def make_version(alice: User) -> Callable[..., DatasetVersion]:
    """Ingest bytes as a new version (default: three text records, MIT)."""

    def make(
        dataset: Dataset,
        data: bytes | None = None,
        *,
        filename: str = "data.jsonl",
        actor: User | None = None,
        **governance: Any,
    ) -> DatasetVersion:
        payload = data if data is not None else jsonl({"text": f"record {uuid.uuid4()}"}, {"text": "b"}, {"text": "c"})
        outcome = do_ingest_dataset_version(
            actor=actor or alice,
            dataset=dataset,
            source=io.BytesIO(payload),
            filename=filename,
            governance=GovernanceInput(**{"licence": "MIT", **governance}),
        )
        return outcome.version

    return make


# --- S3 (moto server started by scripts/test.sh) -----------------------------------


@pytest.fixture
def s3_endpoint() -> str:
    endpoint = os.environ.get("TEST_S3_ENDPOINT")
    if not endpoint:
        if REQUIRE_SERVICES:
            pytest.fail("TEST_S3_ENDPOINT is not set: run the suite through `make test`")
        pytest.skip("no S3 server: set TEST_S3_ENDPOINT (make test starts moto)")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return endpoint


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> Iterator[str]:
    """A fresh bucket on the S3 server."""
    client = storage.s3_client(s3_endpoint)
    name = f"pedigree-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield name


@pytest.fixture
def s3_artifacts(settings: Any, s3_endpoint: str, s3_bucket: str) -> storage.ArtifactStore:
    """Point the configured artifact store at the S3 server."""
    settings.PEDIGREE_ARTIFACTS = f"s3://{s3_bucket}/pedigree"
    settings.AWS_ENDPOINT_URL = s3_endpoint
    storage._cached_store.cache_clear()
    return storage.get_store()
