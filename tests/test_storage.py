"""The artifact store: the same behaviour on a local folder and on an S3 server."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from pedigree.storage import (
    BlobNotFound,
    InvalidKey,
    LocalArtifactStore,
    S3ArtifactStore,
    content_key,
    s3_client,
    store_from_location,
    validate_key,
)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request, tmp_path):
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "store")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return S3ArtifactStore(bucket, "root/prefix", endpoint_url=endpoint)


def listing(store) -> list[str]:
    if isinstance(store, LocalArtifactStore):
        return sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file())
    response = store.client.list_objects_v2(Bucket=store.bucket)
    return sorted(obj["Key"] for obj in response.get("Contents", []))


def uploads_in_progress(store) -> int:
    if isinstance(store, LocalArtifactStore):
        return 0
    return len(store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []))


def test_a_committed_blob_reads_back_and_exists(store):
    writer = store.open_writer()
    writer.write(b"hello ")
    writer.write(b"world")
    uri = writer.commit("blobs/a")
    assert store.exists("blobs/a") and store.size("blobs/a") == 11
    assert b"".join(store.iter_chunks("blobs/a", 4)) == b"hello world"
    assert store.key_from_uri(uri) == "blobs/a"


def test_nothing_is_visible_before_commit_and_abort_leaves_nothing(store):
    writer = store.open_writer()
    writer.write(b"partial")
    assert not store.exists("blobs/never")
    writer.abort()
    writer.abort()  # idempotent
    assert listing(store) == [] and uploads_in_progress(store) == 0


# Python allocations (tracemalloc) a store may hold while streaming: local
# writes and reads hold about one chunk; S3 holds one part (8 MiB) being
# filled plus the copy sent and the client's buffers.
STREAMING_MEMORY_LIMIT = {"local": 4 * 1024 * 1024, "s3": 32 * 1024 * 1024}


def _chunks(count: int) -> Iterator[bytes]:
    """``count`` distinct 1 MiB chunks, made one at a time (never all held)."""
    for index in range(count):
        yield index.to_bytes(4, "big") * (256 * 1024)


def test_a_large_blob_is_written_and_read_in_parts_with_bounded_memory(store):
    count = 64  # MiB: well above either limit, so a store that buffers the blob fails
    limit = STREAMING_MEMORY_LIMIT["local" if isinstance(store, LocalArtifactStore) else "s3"]
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        writer = store.open_writer()
        for chunk in _chunks(count):
            writer.write(chunk)
            digest.update(chunk)
        writer.commit(content_key(digest.hexdigest()))
        write_peak = tracemalloc.get_traced_memory()[1] - baseline
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        read = hashlib.sha256()
        for part in store.iter_chunks(content_key(digest.hexdigest())):
            read.update(part)
        del part
        read_peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert read.hexdigest() == digest.hexdigest()
    assert store.size(content_key(digest.hexdigest())) == count * 1024 * 1024
    assert write_peak < limit, f"writing {count} MiB held {write_peak / 2**20:.1f} MiB (limit {limit / 2**20:.0f})"
    assert read_peak < limit, f"reading {count} MiB held {read_peak / 2**20:.1f} MiB (limit {limit / 2**20:.0f})"


def test_committing_to_an_existing_content_key_keeps_one_copy(store):
    for _ in range(2):
        writer = store.open_writer()
        writer.write(b"same")
        writer.commit("blobs/same")
    assert [key for key in listing(store) if key.endswith("blobs/same")] and len(listing(store)) == 1


def test_reading_a_missing_blob_raises_blob_not_found(store):
    with pytest.raises(BlobNotFound):
        store.open_read("blobs/missing")
    with pytest.raises(BlobNotFound):
        store.size("blobs/missing")


def test_delete_removes_the_blob(store):
    writer = store.open_writer()
    writer.write(b"x")
    writer.commit("blobs/x")
    store.delete("blobs/x")
    assert not store.exists("blobs/x")


def test_the_store_check_passes_when_reachable(store):
    store.check()


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", ".hidden", "a\\b", "a/ b"])
def test_keys_that_could_escape_the_root_are_refused(key):
    with pytest.raises(InvalidKey):
        validate_key(key)


def test_a_symlink_cannot_lead_a_key_outside_the_local_root(tmp_path):
    store = LocalArtifactStore(tmp_path / "store")
    outside = tmp_path / "outside"
    outside.mkdir()
    (store.root / "link").symlink_to(outside)
    with pytest.raises(InvalidKey, match="escapes the store root"):
        store.path_for("link/file")


def test_local_blobs_are_read_only_and_no_temp_file_remains(tmp_path):
    store = LocalArtifactStore(tmp_path / "store")
    writer = store.open_writer()
    writer.write(b"x")
    writer.commit("blobs/ro")
    assert (store.path_for("blobs/ro").stat().st_mode & 0o222) == 0
    assert list((store.root / ".tmp").iterdir()) == []


def test_content_keys_are_sharded_by_digest():
    digest = hashlib.sha256(b"x").hexdigest()
    assert content_key(digest) == f"blobs/sha256/{digest[:2]}/{digest[2:4]}/{digest}"
    with pytest.raises(InvalidKey):
        content_key("../../etc")


def test_the_location_setting_selects_the_implementation(tmp_path):
    assert isinstance(store_from_location(str(tmp_path / "a")), LocalArtifactStore)
    assert isinstance(store_from_location(f"file://{tmp_path}/b"), LocalArtifactStore)
    s3 = store_from_location("s3://bucket/some/prefix", endpoint_url="http://127.0.0.1:1")
    assert isinstance(s3, S3ArtifactStore) and (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    with pytest.raises(Exception, match="use a folder path or s3://"):
        store_from_location("ftp://x")


@pytest.mark.s3
@pytest.mark.django_db
def test_ingest_stores_versions_in_s3_and_downloads_them(s3_artifacts, claims_dataset, make_version, api_client, alice):
    data = b'{"text": "in the bucket"}\n'
    version = make_version(claims_dataset, data)
    assert version.storage_uri.startswith(f"s3://{s3_artifacts.bucket}/pedigree/blobs/sha256/")
    response = api_client(alice).get("/api/v1/datasets/claims-2024/versions/1/download/")
    assert b"".join(response.streaming_content) == data


@pytest.mark.s3
@pytest.mark.django_db
def test_a_failed_ingest_to_s3_leaves_no_object_and_no_open_upload(s3_artifacts, claims_dataset, alice):
    from governance.services import GovernanceInput, do_ingest_dataset_version
    from pedigree.errors import InvalidInput

    with pytest.raises(InvalidInput):
        do_ingest_dataset_version(
            actor=alice, dataset=claims_dataset, source=io.BytesIO(b'{"text": "a"}\n{bad\n'),
            filename="bad.jsonl", governance=GovernanceInput(licence="MIT"),
        )
    client = s3_client(s3_artifacts.client.meta.endpoint_url)
    assert client.list_objects_v2(Bucket=s3_artifacts.bucket).get("KeyCount", 0) == 0
    assert client.list_multipart_uploads(Bucket=s3_artifacts.bucket).get("Uploads", []) == []


def test_a_local_store_creates_its_root(tmp_path: Path) -> None:
    """LocalArtifactStore creates its root on construction."""
    LocalArtifactStore(tmp_path / "new" / "root")
    assert (tmp_path / "new" / "root").is_dir()
