"""Artifact storage: one small interface, a local-folder and an S3 implementation.

Blobs are written through a ``BlobWriter`` that first writes to a temporary
location and only becomes visible under its final key on ``commit``: a local
temp file renamed into place, or an S3 multipart upload to a temporary key then
copied server-side. A writer that is aborted (or garbage collected without a
commit) leaves nothing behind. Keys are relative POSIX paths checked so that
they can never escape the configured root.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

from pedigree.files import create_private_dir

_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]*$")
_S3_MIN_PART = 8 * 1024 * 1024


class StorageError(Exception):
    """A storage operation failed; the message names the key or URI."""


class InvalidKey(StorageError):
    """A key that is empty, absolute, or would escape the store's root."""


class BlobNotFound(StorageError):
    """No blob is stored under the key."""


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative path, else raise ``InvalidKey``.

    Each part must start with a letter or digit and hold only ``[A-Za-z0-9._=-]``,
    which rules out ``..``, hidden files, backslashes and absolute paths.
    """
    if not key or key.startswith("/"):
        raise InvalidKey(f"storage key {key!r} must be a non-empty relative path")
    parts = key.split("/")
    for part in parts:
        if not _KEY_PART.match(part) or part in {".", ".."}:
            raise InvalidKey(f"storage key {key!r} has an unsafe part {part!r}")
    return key


def content_key(sha256: str) -> str:
    """The content-addressed key of a blob with this sha256 digest."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise InvalidKey(f"{sha256!r} is not a sha256 hex digest")
    return f"blobs/sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


class BlobWriter(ABC):
    """A blob being written. Call ``write`` any number of times, then ``commit`` or ``abort``."""

    bytes_written: int = 0

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def commit(self, key: str) -> str:
        """Make the blob visible under ``key``; returns its URI. If a blob is
        already stored under ``key`` it is kept (content-addressed keys hold
        identical bytes) and the temporary copy is discarded."""

    @abstractmethod
    def abort(self) -> None:
        """Discard everything written. Safe to call more than once."""

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.abort()


class ArtifactStore(ABC):
    """Where Pedigree keeps dataset blobs, checkpoints and reports."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """The URI of ``key`` in this store (``file:///...`` or ``s3://...``)."""

    @abstractmethod
    def key_from_uri(self, uri: str) -> str:
        """The key of a URI of this store; ``InvalidKey`` if the URI is elsewhere."""

    @abstractmethod
    def open_writer(self) -> BlobWriter: ...

    @abstractmethod
    def open_read(self, key: str) -> IO[bytes]:
        """A binary stream of the blob; raises ``BlobNotFound``."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the blob if present."""

    @abstractmethod
    def check(self) -> None:
        """Raise ``StorageError`` if the store cannot be reached (for /readyz)."""

    def iter_chunks(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Yield the blob's bytes in chunks, closing the stream at the end."""
        stream = self.open_read(key)
        try:
            while chunk := stream.read(chunk_size):
                yield chunk
        finally:
            stream.close()


# --- Local folder -----------------------------------------------------------------


class _LocalWriter(BlobWriter):
    def __init__(self, store: LocalArtifactStore) -> None:
        self._store = store
        tmp_dir = store.root / ".tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
        self._path: Path | None = Path(name)
        self._file: IO[bytes] | None = os.fdopen(fd, "wb", buffering=0)
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise StorageError("write after commit or abort")
        self._file.write(data)
        self.bytes_written += len(data)

    def commit(self, key: str) -> str:
        if self._file is None or self._path is None:
            raise StorageError("commit after commit or abort")
        final = self._store.path_for(key)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            self._path.unlink(missing_ok=True)
        else:
            os.replace(self._path, final)
            os.chmod(final, 0o444)
        self._path = None
        return self._store.uri(key)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            self._path = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.abort()


class LocalArtifactStore(ArtifactStore):
    """Blobs as read-only files under a root folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        create_private_dir(self.root)  # 0700: blobs are customer data

    def path_for(self, key: str) -> Path:
        path = (self.root / validate_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidKey(f"storage key {key!r} escapes the store root")
        return path

    def uri(self, key: str) -> str:
        return self.path_for(key).as_uri()

    def key_from_uri(self, uri: str) -> str:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise InvalidKey(f"{uri!r} is not a file:// URI of this store")
        path = Path(parsed.path).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidKey(f"{uri!r} is outside the store root {self.root}")
        return validate_key(path.relative_to(self.root).as_posix())

    def open_writer(self) -> BlobWriter:
        return _LocalWriter(self)

    def open_read(self, key: str) -> IO[bytes]:
        try:
            return self.path_for(key).open("rb")
        except FileNotFoundError:
            raise BlobNotFound(f"no blob stored under {key!r}") from None

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self.path_for(key).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"no blob stored under {key!r}") from None

    def delete(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"artifact folder {self.root} is not writable")
        usage = shutil.disk_usage(self.root)
        if usage.free < 64 * 1024 * 1024:
            raise StorageError(f"artifact folder {self.root} has under 64 MiB free")


# --- S3 ---------------------------------------------------------------------------


class _S3Writer(BlobWriter):
    """A multipart upload to a temporary key, copied to the final key on commit.

    Memory stays bounded by one part (8 MiB) whatever the blob's size.
    """

    def __init__(self, store: S3ArtifactStore) -> None:
        self._store = store
        self._tmp_key = store.full_key(f"tmp/upload-{uuid.uuid4().hex}")
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = store.client.create_multipart_upload(
            Bucket=store.bucket, Key=self._tmp_key
        )["UploadId"]
        self.bytes_written = 0

    def _flush_part(self) -> None:
        number = len(self._parts) + 1
        response = self._store.client.upload_part(
            Bucket=self._store.bucket,
            Key=self._tmp_key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self._buffer.clear()

    def write(self, data: bytes) -> None:
        if self._upload_id is None:
            raise StorageError("write after commit or abort")
        self._buffer += data
        self.bytes_written += len(data)
        if len(self._buffer) >= _S3_MIN_PART:
            self._flush_part()

    def commit(self, key: str) -> str:
        if self._upload_id is None:
            raise StorageError("commit after commit or abort")
        client, bucket = self._store.client, self._store.bucket
        if self._buffer or not self._parts:
            self._flush_part()
        client.complete_multipart_upload(
            Bucket=bucket,
            Key=self._tmp_key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._upload_id = None
        final = self._store.full_key(key)
        try:
            if not self._store.exists(key):
                client.copy({"Bucket": bucket, "Key": self._tmp_key}, bucket, final)
        finally:
            client.delete_object(Bucket=bucket, Key=self._tmp_key)
        return self._store.uri(key)

    def abort(self) -> None:
        if self._upload_id is not None:
            with contextlib.suppress(Exception):
                self._store.client.abort_multipart_upload(
                    Bucket=self._store.bucket, Key=self._tmp_key, UploadId=self._upload_id
                )
            self._upload_id = None
        self._buffer = bytearray()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.abort()


def s3_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client, pointed at ``endpoint_url`` (or AWS_ENDPOINT_URL) when given."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )


class S3ArtifactStore(ArtifactStore):
    """Blobs as objects under ``s3://bucket/prefix``."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            validate_key(self.prefix)
        self.client = s3_client(endpoint_url)

    def full_key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.full_key(key)}"

    def key_from_uri(self, uri: str) -> str:
        parsed = urlparse(uri)
        path = parsed.path.lstrip("/")
        if parsed.scheme != "s3" or parsed.netloc != self.bucket:
            raise InvalidKey(f"{uri!r} is not in bucket {self.bucket!r}")
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                raise InvalidKey(f"{uri!r} is outside prefix {self.prefix!r}")
            path = path[len(self.prefix) + 1 :]
        return validate_key(path)

    def open_writer(self) -> BlobWriter:
        return _S3Writer(self)

    def open_read(self, key: str) -> IO[bytes]:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.full_key(key))["Body"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                raise BlobNotFound(f"no blob stored under {key!r}") from None
            raise StorageError(f"reading {self.uri(key)} failed: {error}") from error

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.full_key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}:
                return None
            raise StorageError(f"reading {self.uri(key)} failed: {error}") from error

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise BlobNotFound(f"no blob stored under {key!r}")
        return int(head["ContentLength"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.full_key(key))

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as error:
            raise StorageError(f"bucket {self.bucket!r} is not reachable: {error}") from error


def store_from_location(location: str, endpoint_url: str | None = None) -> ArtifactStore:
    """Build a store from ``PEDIGREE_ARTIFACTS``: a folder path or ``s3://bucket/prefix``."""
    if location.startswith("s3://"):
        parsed = urlparse(location)
        if not parsed.netloc:
            raise StorageError(f"PEDIGREE_ARTIFACTS={location!r} names no bucket")
        return S3ArtifactStore(parsed.netloc, parsed.path, endpoint_url=endpoint_url)
    if "://" in location and not location.startswith("file://"):
        raise StorageError(f"PEDIGREE_ARTIFACTS={location!r}: use a folder path or s3://bucket/prefix")
    if location.startswith("file://"):
        location = urlparse(location).path
    return LocalArtifactStore(location)


@functools.cache
def _cached_store(location: str, endpoint_url: str | None) -> ArtifactStore:
    return store_from_location(location, endpoint_url)


def get_store() -> ArtifactStore:
    """The store configured by settings (cached per location)."""
    from django.conf import settings

    return _cached_store(settings.PEDIGREE_ARTIFACTS, settings.AWS_ENDPOINT_URL)
