"""The streaming ingest pipeline: hash, store and validate in one pass.

The source is read once, in chunks. One background thread hashes each chunk and
another writes it to a ``BlobWriter`` (both release the GIL), while the calling
thread validates the records. Only when the whole file is valid is the blob committed
under its content-addressed key; any error aborts the writer, so a failed
ingest leaves no blob behind. Memory stays bounded by a few chunks plus the
longest allowed record.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

from governance.ingest.formats import Layout, detect_format, validate
from pedigree.errors import InvalidInput
from pedigree.storage import ArtifactStore, content_key

CHUNK_BYTES = 4 * 1024 * 1024
_QUEUE_DEPTH = 4
_DONE = object()


@dataclass
class IngestResult:
    """A validated, stored blob and what validation learned about it."""

    sha256: str
    size_bytes: int
    storage_uri: str
    layout: Layout
    already_stored: bool


class _Consumer(threading.Thread):
    """Applies one operation to every chunk, on its own thread.

    ``hashlib`` and file or socket writes release the GIL, so hashing and
    writing proceed in parallel with each other and with validation.
    """

    def __init__(self, name: str, operation: Callable[[bytes], object]) -> None:
        super().__init__(name=f"ingest-{name}", daemon=True)
        self.operation = operation
        self.inbox: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            item = self.inbox.get()
            if item is _DONE:
                return
            if self.error is not None:
                continue  # drain without work so the producer never blocks
            try:
                self.operation(item)  # type: ignore[arg-type]
            except BaseException as error:  # reported to the producer
                self.error = error

    def put(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.inbox.put(chunk)

    def finish(self) -> None:
        self.inbox.put(_DONE)
        self.join()
        if self.error is not None:
            raise self.error


def ingest_stream(
    source: IO[bytes],
    *,
    filename: str,
    store: ArtifactStore,
    max_bytes: int,
    max_record_bytes: int,
    declared_format: str | None = None,
    expected_sha256: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Read ``source`` to its end, validate it and store it content-addressed.

    Raises ``InvalidInput`` (nothing stored) when the file is empty, too large,
    malformed, or its digest differs from ``expected_sha256``.
    """
    first = source.read(CHUNK_BYTES)
    if not first:
        raise InvalidInput(f"{filename} is empty", file=filename)
    data_format = detect_format(filename, first[:65536], declared_format)

    writer = store.open_writer()
    digest = hashlib.sha256()
    consumers = [_Consumer("hash", digest.update), _Consumer("write", writer.write)]
    for consumer in consumers:
        consumer.start()
    total = 0

    def chunks() -> Iterator[bytes]:
        nonlocal total
        chunk = first
        while chunk:
            total += len(chunk)
            if total > max_bytes:
                raise InvalidInput(
                    f"{filename} is larger than the upload limit of {max_bytes:,} bytes",
                    file=filename,
                    limit=max_bytes,
                )
            for consumer in consumers:
                consumer.put(chunk)
            if on_progress is not None:
                on_progress(total)
            yield chunk
            chunk = source.read(CHUNK_BYTES)

    try:
        try:
            layout = validate(
                chunks(), data_format=data_format, filename=filename, max_record_bytes=max_record_bytes
            )
        finally:
            for consumer in consumers:
                consumer.finish()
        sha256 = digest.hexdigest()
        if expected_sha256 and expected_sha256.lower() != sha256:
            raise InvalidInput(
                # Never the real digest: it would let anyone who can name a file
                # learn its fingerprint (and then claim the blob by digest).
                f"{filename}: its sha256 is not the expected {expected_sha256}; nothing was stored",
                file=filename,
                field="sha256",
            )
        key = content_key(sha256)
        already_stored = store.exists(key)
        uri = writer.commit(key)
    except BaseException:
        writer.abort()
        raise
    return IngestResult(
        sha256=sha256, size_bytes=total, storage_uri=uri, layout=layout, already_stored=already_stored
    )
