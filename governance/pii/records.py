"""Stream every string value of a dataset version, record by record.

Every string value is scanned, not only the layout's text fields: a JSONL
record's fields at any depth (nested objects and lists included, each named
by its path: ``customer.email``, ``notes[]``, chat message contents as
``messages.<role>``), every CSV column, every Parquet string column. Integers
are scanned too (an SSN or a card number stored as a number). Reports are per
field path, and redaction (``governance.pii.redaction``) walks the same paths
with ``walk_strings``.

The reader never holds more than one chunk of bytes and one record in memory
(Parquet is spooled to a local temporary file, because its schema lives in the
footer). It is forgiving where ingest is strict: the scanner must report on
whatever bytes are stored, so undecodable bytes are replaced (and reported),
a line that is not JSON is reported and skipped, and nothing stops the rest
of the file from being scanned.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from governance.choices import DataFormat
from governance.ingest.formats import csv_lines

MAX_DEPTH = 32  # deeper JSON is reported, not walked


@dataclass
class Record:
    """One record's string values (field path, text) in file order, and what was wrong with it."""

    index: int
    texts: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    empty_fields: int = 0


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        buffer = pending + chunk if pending else chunk
        parts = buffer.split(b"\n")
        pending = parts.pop()
        yield from parts
    if pending:
        yield pending


def _decode(raw: bytes, where: str, problems: list[str]) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        problems.append(
            f"{where}: undecodable bytes at byte {error.start + 1} (replaced with U+FFFD and scanned)"
        )
        return raw.decode("utf-8", "replace")


def scannable_text(value: Any) -> str | None:
    """The text to scan for a scalar value (strings, and integers: an SSN stored as a number)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _add_text(record: Record, name: str, value: Any) -> None:
    text = scannable_text(value)
    if value is None or (text is not None and not text.strip()):
        record.empty_fields += 1
        return
    if text is not None:
        record.texts.append((name, text))


def walk_strings(
    value: Any, path: str, visit: Callable[[str, Any], Any], *, depth: int = 0, on_too_deep: Callable[[str], None] | None = None
) -> Any:
    """Call ``visit(path, scalar)`` for every scalar inside a JSON value and
    return the value rebuilt from what ``visit`` returns.

    Paths: ``a.b`` for object keys, ``a[]`` for list items; a chat message's
    content under the top-level ``messages`` list is ``messages.<role>`` (its
    other keys ``messages.<role>.<key>``). The scan and the redaction use this
    one walk, so they cover the same fields under the same names.
    """
    if depth > MAX_DEPTH:
        if on_too_deep is not None:
            on_too_deep(path)
        return value
    if isinstance(value, dict):
        if path == "messages[]":
            role = value.get("role")
            role_name = role if isinstance(role, str) and role.isidentifier() else "unknown"
            base = f"messages.{role_name}"
            return {
                key: item if key == "role" else walk_strings(
                    item, base if key == "content" else f"{base}.{key}", visit, depth=depth + 1, on_too_deep=on_too_deep
                )
                for key, item in value.items()
            }
        return {
            key: walk_strings(item, f"{path}.{key}" if path else str(key), visit, depth=depth + 1, on_too_deep=on_too_deep)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [walk_strings(item, f"{path}[]", visit, depth=depth + 1, on_too_deep=on_too_deep) for item in value]
    return visit(path, value)


def _jsonl_records(chunks: Iterable[bytes], start: int) -> Iterator[Record]:
    index = -1
    for line_number, raw in enumerate(_lines(chunks), start=1):
        if not raw.strip():
            continue
        index += 1
        if index < start:
            continue
        record = Record(index)
        where = f"record {index + 1} (line {line_number})"
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            try:
                data = json.loads(_decode(raw, where, record.problems))
            except ValueError:
                record.problems.append(f"{where}: not valid JSON; not scanned")
                yield record
                continue
        if not isinstance(data, dict):
            record.problems.append(f"{where}: not a JSON object; not scanned")
            yield record
            continue

        def visit(path: str, value: Any, record: Record = record) -> Any:
            _add_text(record, path, value)
            return value

        def too_deep(path: str, record: Record = record, where: str = where) -> None:
            record.problems.append(f"{where}: field {path!r} is nested deeper than {MAX_DEPTH} levels; not scanned")

        walk_strings(data, "", visit, on_too_deep=too_deep)
        yield record


def _text_records(chunks: Iterable[bytes], start: int) -> Iterator[Record]:
    index = -1
    for line_number, raw in enumerate(_lines(chunks), start=1):
        if not raw.strip():
            continue
        index += 1
        if index < start:
            continue
        record = Record(index)
        record.texts.append(("text", _decode(raw.rstrip(b"\r"), f"record {index + 1} (line {line_number})", record.problems)))
        yield record


def _csv_records(chunks: Iterable[bytes], start: int) -> Iterator[Record]:
    file_problems: list[str] = []

    def undecodable() -> None:
        file_problems.append("undecodable bytes in the file were replaced with U+FFFD and scanned")

    csv.field_size_limit(1 << 30)
    reader = csv.reader(csv_lines(chunks, on_undecodable=undecodable))
    try:
        header = [name.strip() for name in next(reader)]
    except (StopIteration, csv.Error):
        yield Record(0, problems=["the CSV header cannot be read; nothing scanned"])
        return
    index = -1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            index += 1
            if index >= start:
                yield Record(index, problems=[f"record {index + 1} (line {reader.line_num}): {error}; not scanned"])
            continue
        if not row:
            continue
        index += 1
        if index < start:
            continue
        record = Record(index)
        if file_problems:
            record.problems.extend(file_problems)
            file_problems.clear()
        if len(row) != len(header):
            record.problems.append(
                f"record {index + 1} (line {reader.line_num}) has {len(row)} columns, the header {len(header)}"
            )
        for position, value in enumerate(row):
            name = header[position] if position < len(header) else f"column {position + 1}"
            _add_text(record, name, value)
        yield record


def parquet_string_columns(schema: Any) -> list[str]:
    """The Parquet columns that hold strings: the ones scanned and redacted."""
    import pyarrow as pa

    return [column.name for column in schema if pa.types.is_string(column.type) or pa.types.is_large_string(column.type)]


def _parquet_records(chunks: Iterable[bytes], start: int) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.NamedTemporaryFile(prefix="pedigree-scan-", suffix=".parquet") as spool:
        for chunk in chunks:
            spool.write(chunk)
        spool.flush()
        try:
            parquet = pq.ParquetFile(spool.name)
            columns = parquet_string_columns(parquet.schema_arrow)
            if not columns:
                return
            index = -1
            for batch in parquet.iter_batches(columns=columns, batch_size=2048):
                values = {name: batch.column(name).to_pylist() for name in columns}
                for row in range(batch.num_rows):
                    index += 1
                    if index < start:
                        continue
                    record = Record(index)
                    for name in columns:
                        _add_text(record, name, values[name][row])
                    yield record
        except (pa.ArrowInvalid, OSError) as error:
            yield Record(max(start, 0), problems=[f"unreadable Parquet data: {error}; the rest was not scanned"])


def iter_records(chunks: Iterable[bytes], *, data_format: str, start: int = 0) -> Iterator[Record]:
    """Yield every record from ``start`` (0-based) on, with every string value in it."""
    if data_format == DataFormat.JSONL:
        return _jsonl_records(chunks, start)
    if data_format == DataFormat.TEXT:
        return _text_records(chunks, start)
    if data_format == DataFormat.CSV:
        return _csv_records(chunks, start)
    if data_format == DataFormat.PARQUET:
        return _parquet_records(chunks, start)
    raise ValueError(f"unknown data format {data_format!r}")


def iter_bytes(data: bytes, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Chunks of an in-memory file (for tests and small inputs)."""
    stream = io.BytesIO(data)
    while chunk := stream.read(chunk_size):
        yield chunk
