"""Stream the text fields of a dataset version, record by record.

The reader never holds more than one chunk of bytes and one record in memory
(Parquet is spooled to a local temporary file, because its schema lives in the
footer). It is forgiving where ingest is strict: the scanner must report on
whatever bytes are stored, so undecodable bytes are replaced (and reported),
a line that is not JSON is reported and skipped, and nothing stops the rest
of the file from being scanned.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from governance.choices import DataFormat, RecordLayout

_NOT_SCANNED_FIELD_TYPES = (dict, list)


@dataclass
class Record:
    """One record's text fields, in file order, and what was wrong with it."""

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


def _add_text(record: Record, name: str, value: Any) -> None:
    if value is None or (isinstance(value, str) and not value.strip()):
        record.empty_fields += 1
        return
    if not isinstance(value, str):
        if isinstance(value, _NOT_SCANNED_FIELD_TYPES):
            record.problems.append(f"record {record.index + 1}: field {name!r} is not text; not scanned")
            return
        value = str(value)
    record.texts.append((name, value))


def _jsonl_records(chunks: Iterable[bytes], layout: str, text_fields: list[str], start: int) -> Iterator[Record]:
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
        if layout == RecordLayout.CHAT or "messages" in text_fields:
            messages = data.get("messages")
            if isinstance(messages, list):
                for message in messages:
                    if isinstance(message, dict):
                        role = message.get("role")
                        role_name = role if isinstance(role, str) and role.isidentifier() else "unknown"
                        _add_text(record, f"messages.{role_name}", message.get("content"))
            else:
                record.problems.append(f"{where}: 'messages' is not a list; not scanned")
        for name in text_fields:
            if name != "messages":
                _add_text(record, name, data.get(name))
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


def _decoded_text(chunks: Iterable[bytes], problems: list[str]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")("replace")
    reported = False
    for chunk in chunks:
        text = decoder.decode(chunk)
        if "\ufffd" in text and not reported:
            problems.append("undecodable bytes in the file were replaced with U+FFFD and scanned")
            reported = True
        yield text
    yield decoder.decode(b"", final=True)


def _csv_records(chunks: Iterable[bytes], text_fields: list[str], start: int) -> Iterator[Record]:
    file_problems: list[str] = []

    def lines() -> Iterator[str]:
        pending = ""
        for text in _decoded_text(chunks, file_problems):
            parts = (pending + text).splitlines(keepends=True)
            pending = parts.pop() if parts and not parts[-1].endswith(("\n", "\r")) else ""
            yield from parts
        if pending:
            yield pending

    csv.field_size_limit(1 << 30)
    reader = csv.reader(lines())
    try:
        header = [name.strip() for name in next(reader)]
    except (StopIteration, csv.Error):
        yield Record(0, problems=["the CSV header cannot be read; nothing scanned"])
        return
    wanted = [(position, name) for position, name in enumerate(header) if name in text_fields]
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
        for position, name in wanted:
            _add_text(record, name, row[position] if position < len(row) else None)
        yield record


def _parquet_records(chunks: Iterable[bytes], text_fields: list[str], start: int) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.NamedTemporaryFile(prefix="pedigree-scan-", suffix=".parquet") as spool:
        for chunk in chunks:
            spool.write(chunk)
        spool.flush()
        try:
            parquet = pq.ParquetFile(spool.name)
            columns = [name for name in parquet.schema_arrow.names if name in text_fields]
            index = -1
            for batch in parquet.iter_batches(columns=columns or None, batch_size=2048):
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


def iter_records(
    chunks: Iterable[bytes], *, data_format: str, layout: str, text_fields: list[str], start: int = 0
) -> Iterator[Record]:
    """Yield every record from ``start`` (0-based) on, with its text fields."""
    if data_format == DataFormat.JSONL:
        return _jsonl_records(chunks, layout, text_fields, start)
    if data_format == DataFormat.TEXT:
        return _text_records(chunks, start)
    if data_format == DataFormat.CSV:
        return _csv_records(chunks, text_fields, start)
    if data_format == DataFormat.PARQUET:
        return _parquet_records(chunks, text_fields, start)
    raise ValueError(f"unknown data format {data_format!r}")


def iter_bytes(data: bytes, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """Chunks of an in-memory file (for tests and small inputs)."""
    stream = io.BytesIO(data)
    while chunk := stream.read(chunk_size):
        yield chunk
