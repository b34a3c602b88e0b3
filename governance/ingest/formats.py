"""Format detection and streaming validation of dataset files.

Each validator pulls chunks of bytes from an iterator, checks every record,
and returns a ``Layout``: the record count, the record layout, the fields and
which of them hold text. Memory is bounded by one chunk plus the longest
allowed record, whatever the file's size. A bad record raises ``InvalidInput``
naming the file, the line (or row) and the field.
"""

from __future__ import annotations

import codecs
import csv
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import simdjson

from governance.choices import DataFormat, RecordLayout
from pedigree.errors import InvalidInput

# Types and text fields are read off the first records; the required fields
# of the layout are checked on every record.
SAMPLE_RECORDS = 1000

_EXTENSIONS = {
    ".jsonl": DataFormat.JSONL,
    ".ndjson": DataFormat.JSONL,
    ".json": DataFormat.JSONL,
    ".csv": DataFormat.CSV,
    ".txt": DataFormat.TEXT,
    ".text": DataFormat.TEXT,
    ".md": DataFormat.TEXT,
    ".parquet": DataFormat.PARQUET,
    ".pq": DataFormat.PARQUET,
}


@dataclass
class Layout:
    """What validation learned about a file."""

    format: str
    layout: str
    record_count: int
    fields: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text_fields(self) -> list[str]:
        return [f["name"] for f in self.fields if f["text"]]


def detect_format(filename: str, head: bytes, declared: str | None = None) -> str:
    """Choose the format: as declared, else by extension, else by the first bytes."""
    if declared:
        if declared not in DataFormat.values:
            raise InvalidInput(
                f"unknown format {declared!r}: use one of {', '.join(DataFormat.values)}",
                file=filename,
                field="format",
            )
        return declared
    extension = os.path.splitext(filename.lower())[1]
    if extension in _EXTENSIONS:
        return _EXTENSIONS[extension]
    if head.startswith(b"PAR1"):
        return DataFormat.PARQUET
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        return DataFormat.JSONL
    lines = stripped.split(b"\n", 2)
    if len(lines) >= 2 and lines[0].count(b",") >= 1 and lines[0].count(b",") == lines[1].count(b","):
        return DataFormat.CSV
    return DataFormat.TEXT


def validate(
    chunks: Iterable[bytes], *, data_format: str, filename: str, max_record_bytes: int
) -> Layout:
    """Validate a whole file of ``data_format``, pulled from ``chunks``."""
    validators = {
        DataFormat.JSONL: _validate_jsonl,
        DataFormat.CSV: _validate_csv,
        DataFormat.TEXT: _validate_text,
        DataFormat.PARQUET: _validate_parquet,
    }
    layout = validators[DataFormat(data_format)](iter(chunks), filename, max_record_bytes)
    if layout.record_count == 0:
        raise InvalidInput(f"{filename} holds no records", file=filename)
    return layout


# --- Lines ------------------------------------------------------------------------


def _lines(chunks: Iterator[bytes], filename: str, max_record_bytes: int) -> Iterator[list[bytes]]:
    """Yield batches of complete lines (without the newline), bounded in length."""
    pending = b""
    line_number = 0
    for chunk in chunks:
        buffer = pending + chunk if pending else chunk
        cut = buffer.rfind(b"\n")
        if cut < 0:
            pending = buffer
        else:
            pending = buffer[cut + 1 :]
            batch = buffer[:cut].split(b"\n")
            line_number += len(batch)
            longest = max(map(len, batch)) if len(batch) < 64 else _longest(batch)
            if longest > max_record_bytes:
                index = next(i for i, line in enumerate(batch) if len(line) > max_record_bytes)
                _too_long(filename, line_number - len(batch) + index + 1, max_record_bytes)
            yield batch
        if len(pending) > max_record_bytes:
            _too_long(filename, line_number + 1, max_record_bytes)
    if pending:
        yield [pending]


def _longest(batch: list[bytes]) -> int:
    return max(map(len, batch))


def _too_long(filename: str, line: int, limit: int) -> None:
    raise InvalidInput(
        f"{filename}: line {line} is longer than the {limit:,}-byte record limit "
        "(is the file missing line breaks?)",
        file=filename,
        line=line,
    )


def _utf8_error(filename: str, line_number: int, line: bytes) -> InvalidInput | None:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as error:
        return InvalidInput(
            f"{filename}: line {line_number}: invalid UTF-8 at byte {error.start + 1} of the line",
            file=filename,
            line=line_number,
        )
    return None


# --- JSONL ------------------------------------------------------------------------

_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def _json_type(value: Any) -> str:
    if isinstance(value, simdjson.Object):
        return "object"
    if isinstance(value, simdjson.Array):
        return "array"
    return _JSON_TYPES.get(type(value), "unknown")


def _jsonl_layout(record: Any) -> str | None:
    if "messages" in record:
        return RecordLayout.CHAT
    if "prompt" in record and "completion" in record:
        return RecordLayout.PROMPT_COMPLETION
    if "text" in record:
        return RecordLayout.TEXT
    return None


def _check_string(record: Any, name: str, filename: str, line: int) -> None:
    value = record.get(name)
    if value is None:
        raise InvalidInput(
            f"{filename}: line {line}: record has no {name!r} field", file=filename, line=line, field=name
        )
    if not isinstance(value, str):
        raise InvalidInput(
            f"{filename}: line {line}: field {name!r} must be a string, not {_json_type(value)}",
            file=filename,
            line=line,
            field=name,
        )


def _check_messages(record: Any, filename: str, line: int) -> None:
    messages = record.get("messages")
    if not isinstance(messages, simdjson.Array) or len(messages) == 0:
        raise InvalidInput(
            f"{filename}: line {line}: 'messages' must be a non-empty list of {{role, content}} objects",
            file=filename,
            line=line,
            field="messages",
        )
    for index, message in enumerate(messages):
        if (
            not isinstance(message, simdjson.Object)
            or not isinstance(message.get("role"), str)
            or not isinstance(message.get("content"), str)
        ):
            raise InvalidInput(
                f"{filename}: line {line}: messages[{index}] needs string 'role' and 'content'",
                file=filename,
                line=line,
                field=f"messages[{index}]",
            )


_REQUIRED_TEXT: dict[str, tuple[str, ...]] = {
    RecordLayout.TEXT: ("text",),
    RecordLayout.PROMPT_COMPLETION: ("prompt", "completion"),
    RecordLayout.CHAT: (),
}


def _validate_jsonl(chunks: Iterator[bytes], filename: str, max_record_bytes: int) -> Layout:
    """Every line a JSON object holding the layout's text fields as strings.

    The inner loop is the ingest hot path: it parses with simdjson and checks
    the required fields inline; the slower checks run only on a bad record.
    """
    parser = simdjson.Parser()
    json_object = simdjson.Object
    layout: str | None = None
    required: tuple[str, ...] = ()
    line_number = 0
    records = 0
    field_types: dict[str, str] = {}
    for batch in _lines(chunks, filename, max_record_bytes):
        for line in batch:
            line_number += 1
            try:
                record = parser.parse(line)
            except (ValueError, UnicodeDecodeError) as error:
                if not line.strip():
                    continue  # blank lines are allowed
                raise _utf8_error(filename, line_number, line) or InvalidInput(
                    f"{filename}: line {line_number}: malformed JSON ({str(error).split(':')[0]})",
                    file=filename,
                    line=line_number,
                ) from None
            if type(record) is not json_object:
                del record
                raise InvalidInput(
                    f"{filename}: line {line_number}: each line must be a JSON object",
                    file=filename,
                    line=line_number,
                )
            if layout is None:
                layout = _jsonl_layout(record)
                if layout is None:
                    del record
                    raise InvalidInput(
                        f"{filename}: line {line_number}: record has no text field: expected "
                        "'text', 'prompt' and 'completion', or 'messages'",
                        file=filename,
                        line=line_number,
                        field="text",
                    )
                required = _REQUIRED_TEXT[layout]
            for name in required:
                if type(record.get(name)) is not str:
                    _check_string(record, name, filename, line_number)
            if layout == RecordLayout.CHAT:
                _check_messages(record, filename, line_number)
            if records < SAMPLE_RECORDS:
                for key in record.keys():  # noqa: SIM118 (simdjson Object iterates keys lazily)
                    field_types.setdefault(key, _json_type(record[key]))
            records += 1
            del record
    names_by_layout: dict[str, set[str]] = {
        RecordLayout.TEXT: {"text"},
        RecordLayout.PROMPT_COMPLETION: {"prompt", "completion"},
        RecordLayout.CHAT: {"messages"},
    }
    text_names = names_by_layout.get(layout or "", set())
    fields = [{"name": name, "type": kind, "text": name in text_names} for name, kind in field_types.items()]
    return Layout(DataFormat.JSONL, layout or RecordLayout.TEXT, records, fields)


# --- Text -------------------------------------------------------------------------


def _validate_text(chunks: Iterator[bytes], filename: str, max_record_bytes: int) -> Layout:
    """Plain text: each non-blank line is a record."""
    line_number = 0
    records = 0
    for batch in _lines(chunks, filename, max_record_bytes):
        joined = b"\n".join(batch)
        try:
            joined.decode("utf-8")
        except UnicodeDecodeError:
            for offset, line in enumerate(batch, start=line_number + 1):
                error = _utf8_error(filename, offset, line)
                if error:
                    raise error from None
        line_number += len(batch)
        records += sum(1 for line in batch if line.strip())
    fields = [{"name": "text", "type": "string", "text": True}]
    return Layout(DataFormat.TEXT, RecordLayout.TEXT, records, fields)


# --- CSV --------------------------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|\.\d+)([eE][+-]?\d+)?$")
_BOOLEAN = {"true", "false", "yes", "no", "0", "1"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$")


def _cell_type(value: str) -> str:
    if value.lower() in _BOOLEAN:
        return "boolean"
    if _NUMBER.match(value):
        return "number"
    if _DATE.match(value):
        return "date"
    return "string"


def _column_type(kinds: set[str]) -> str:
    """A column's type from the kinds of its sampled cells (strings win)."""
    if not kinds or "string" in kinds:
        return "string"
    if kinds == {"boolean"}:
        return "boolean"
    if kinds <= {"boolean", "number"}:
        return "number"
    if kinds == {"date"}:
        return "date"
    return "string"


def csv_lines(
    chunks: Iterable[bytes],
    *,
    filename: str = "the file",
    max_record_bytes: int | None = None,
    on_undecodable: Callable[[], None] | None = None,
) -> Iterator[str]:
    """THE line reader for CSV files: ingest, the PII scan and redaction all read through it.

    Decodes UTF-8 incrementally with ``utf-8-sig`` (a leading byte-order mark
    is dropped, so the first column is named and read like the others, and a
    character split across two chunks is decoded whole), and yields text lines
    with their line endings, ready for ``csv.reader``.

    Strict by default (ingest): invalid UTF-8 raises ``InvalidInput`` naming
    the line. With ``on_undecodable`` (scan, redaction: they must read
    whatever bytes are stored), invalid bytes become U+FFFD and the callback
    is called once per file.
    """
    strict = on_undecodable is None
    decoder = codecs.getincrementaldecoder("utf-8-sig")("strict" if strict else "replace")
    line_number = 0
    pending = ""
    reported = False
    for chunk in chunks:
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as error:
            good = chunk[: error.start].decode("utf-8", "ignore")
            bad_line = line_number + (pending + good).count("\n") + 1
            raise InvalidInput(
                f"{filename}: line {bad_line}: invalid UTF-8", file=filename, line=bad_line
            ) from None
        if not strict and not reported and "\ufffd" in text:
            reported = True
            assert on_undecodable is not None
            on_undecodable()
        text = pending + text
        lines = text.splitlines(keepends=True)
        pending = lines.pop() if lines and not lines[-1].endswith(("\n", "\r")) else ""
        for line in lines:
            line_number += 1
            yield line
        if max_record_bytes is not None and len(pending) > max_record_bytes:
            _too_long(filename, line_number + 1, max_record_bytes)
    try:
        tail = decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise InvalidInput(
            f"{filename}: line {line_number + 1}: invalid UTF-8 at the end of the file",
            file=filename,
            line=line_number + 1,
        ) from None
    if tail and not strict and not reported and "\ufffd" in tail:
        assert on_undecodable is not None
        on_undecodable()
    pending += tail
    if pending:
        yield pending


def _validate_csv(chunks: Iterator[bytes], filename: str, max_record_bytes: int) -> Layout:
    csv.field_size_limit(max_record_bytes)
    reader = csv.reader(csv_lines(chunks, filename=filename, max_record_bytes=max_record_bytes), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(f"{filename} is empty", file=filename) from None
    except csv.Error as error:
        raise InvalidInput(f"{filename}: line 1: {error}", file=filename, line=1) from None
    names = [name.strip() for name in header]
    if not any(names):
        raise InvalidInput(f"{filename}: line 1: the header row is empty", file=filename, line=1)
    for index, name in enumerate(names):
        if not name:
            raise InvalidInput(
                f"{filename}: line 1: column {index + 1} of the header has no name",
                file=filename,
                line=1,
                field=f"column {index + 1}",
            )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidInput(
            f"{filename}: line 1: duplicate column names: {', '.join(duplicates)}",
            file=filename,
            line=1,
            field=duplicates[0],
        )
    width = len(names)
    types: list[dict[str, int]] = [{} for _ in names]
    records = 0
    row_number = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            line = reader.line_num
            raise InvalidInput(
                f"{filename}: row {row_number + 1} (line {line}): {error}", file=filename, line=line, row=row_number + 1
            ) from None
        row_number += 1
        if not row:
            continue
        if len(row) != width:
            line = reader.line_num
            raise InvalidInput(
                f"{filename}: row {row_number} (line {line}) has {len(row)} columns; the header has {width}",
                file=filename,
                line=line,
                row=row_number,
            )
        if records < SAMPLE_RECORDS:
            for index, value in enumerate(row):
                if value:
                    kind = _cell_type(value)
                    types[index][kind] = types[index].get(kind, 0) + 1
        records += 1
    fields = []
    for name, counts in zip(names, types, strict=True):
        kind = _column_type(set(counts))
        fields.append({"name": name, "type": kind, "text": kind == "string"})
    if records and not any(f["text"] for f in fields):
        raise InvalidInput(
            f"{filename}: no column holds text (all are numbers, booleans, dates or empty)",
            file=filename,
            field="columns",
        )
    lowered = {name.lower() for name in names}
    if {"prompt", "completion"} <= lowered:
        layout = RecordLayout.PROMPT_COMPLETION
    elif "text" in lowered:
        layout = RecordLayout.TEXT
    else:
        layout = RecordLayout.TABLE
    return Layout(DataFormat.CSV, layout, records, fields)


# --- Parquet ----------------------------------------------------------------------


def _validate_parquet(chunks: Iterator[bytes], filename: str, max_record_bytes: int) -> Layout:
    """Parquet keeps its schema in a footer, so the file is spooled locally first."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.NamedTemporaryFile(prefix="pedigree-parquet-", suffix=".parquet") as spool:
        for chunk in chunks:
            spool.write(chunk)
        spool.flush()
        try:
            parquet = pq.ParquetFile(spool.name)
        except (pa.ArrowInvalid, OSError) as error:
            raise InvalidInput(f"{filename} is not a valid Parquet file: {error}", file=filename) from None
        schema = parquet.schema_arrow
        fields = []
        for column in schema:
            is_text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
            fields.append({"name": column.name, "type": str(column.type), "text": is_text})
        text_columns = [f["name"] for f in fields if f["text"]]
        if not text_columns:
            raise InvalidInput(f"{filename}: no column holds text (string)", file=filename, field="columns")
        try:
            # Read every text column once: catches truncated pages and bad UTF-8.
            for batch in parquet.iter_batches(columns=text_columns, batch_size=8192):
                del batch
        except (pa.ArrowInvalid, OSError) as error:
            raise InvalidInput(f"{filename}: unreadable Parquet data: {error}", file=filename) from None
        records = parquet.metadata.num_rows
    lowered = {name.lower() for name in text_columns}
    if {"prompt", "completion"} <= lowered:
        layout = RecordLayout.PROMPT_COMPLETION
    elif "text" in lowered:
        layout = RecordLayout.TEXT
    elif "messages" in {f["name"] for f in fields}:
        layout = RecordLayout.CHAT
    else:
        layout = RecordLayout.TABLE
    return Layout(DataFormat.PARQUET, layout, records, fields)
