"""Rewrite a version's bytes with its PII replaced, masked, hashed or dropped.

Texts are analysed exactly as a scan analyses them (same configuration, long
texts in overlapping chunks, offsets of the whole text) and anonymised with
presidio-anonymizer. The fields are the ones a scan reads (every string value:
``records.walk_strings`` for JSONL, every CSV column through the one CSV line
reader, every Parquet string column). Output keeps the input's format, layout
and other fields, and a record in which nothing was redacted keeps its bytes;
it is written to a temporary file and then ingested like an upload.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from governance.choices import DataFormat
from governance.ingest.formats import csv_lines
from governance.pii.config import ENTITY_TYPE, ScanConfig
from governance.pii.engine import get_analyzer
from governance.pii.records import (
    _decode,
    _lines,
    parquet_string_columns,
    scannable_text,
    walk_strings,
)
from governance.pii.scanner import split_text
from pedigree.errors import InvalidInput

OPERATOR_TYPES = ("replace", "mask", "hash", "drop", "keep")
DEFAULT_KEY = "DEFAULT"


@dataclass
class RedactionStats:
    """What a redaction did."""

    records_in: int = 0
    records_out: int = 0
    records_dropped: int = 0
    entities: Counter[str] = field(default_factory=Counter)  # replaced, masked or hashed
    dropped_entities: Counter[str] = field(default_factory=Counter)  # found in a record that was dropped
    kept_entities: Counter[str] = field(default_factory=Counter)  # found and kept ({"type": "keep"})

    @property
    def removed_types(self) -> list[str]:
        """The entity types this redaction actually took out of the data."""
        return sorted(set(self.entities) | set(self.dropped_entities))

    @property
    def changed_anything(self) -> bool:
        return bool(self.entities) or self.records_dropped > 0


class _DropRecord(Exception):
    pass


def validate_operators(operators: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Check operators given by a steward: ``{ENTITY_TYPE|DEFAULT: {"type": ..., params}}``."""
    if not isinstance(operators, dict) or not operators:
        raise InvalidInput(
            'operators must be an object such as {"DEFAULT": {"type": "replace"}, "US_SSN": {"type": "hash"}}',
            field="operators",
        )
    clean: dict[str, dict[str, Any]] = {}
    for entity, spec in operators.items():
        if entity != DEFAULT_KEY and not ENTITY_TYPE.match(str(entity)):
            raise InvalidInput(f"operators: {entity!r} is not an entity type", field="operators")
        if isinstance(spec, str):
            spec = {"type": spec}
        if not isinstance(spec, dict) or spec.get("type") not in OPERATOR_TYPES:
            raise InvalidInput(
                f"operators.{entity}: type must be one of {', '.join(OPERATOR_TYPES)}", field="operators"
            )
        kind = spec["type"]
        params: dict[str, Any] = {"type": kind}
        if kind == "mask":
            masking_char = spec.get("masking_char", "*")
            if not isinstance(masking_char, str) or len(masking_char) != 1:
                raise InvalidInput(f"operators.{entity}.masking_char must be one character", field="operators")
            keep_last = spec.get("keep_last", 0)
            if not isinstance(keep_last, int) or not 0 <= keep_last <= 8:
                raise InvalidInput(f"operators.{entity}.keep_last must be 0 to 8", field="operators")
            params.update(masking_char=masking_char, keep_last=keep_last)
        elif kind == "hash":
            hash_type = spec.get("hash_type", "sha256")
            if hash_type not in ("sha256", "sha512"):
                raise InvalidInput(f"operators.{entity}.hash_type must be sha256 or sha512", field="operators")
            params["hash_type"] = hash_type
        elif kind == "replace" and "new_value" in spec:
            if not isinstance(spec["new_value"], str):
                raise InvalidInput(f"operators.{entity}.new_value must be a string", field="operators")
            params["new_value"] = spec["new_value"]
        clean[str(entity)] = params
    clean.setdefault(DEFAULT_KEY, {"type": "replace"})
    return clean


class Redactor:
    """Analyse and anonymise texts with one configuration and one set of operators."""

    def __init__(self, config: ScanConfig, operators: dict[str, dict[str, Any]], *, salt: str, skip_types: Iterable[str] = ()) -> None:
        from presidio_anonymizer import AnonymizerEngine

        self.config = config
        self.analyzer = get_analyzer(config)
        self.operators = operators
        self.salt = salt
        self.dismissed = set(skip_types)
        self.anonymizer = AnonymizerEngine()
        # Called for every text: the service's heartbeat (throttled there), so a
        # redaction whose worker died is seen as stale and recovered.
        self.heartbeat: Callable[[], None] | None = None

    def keeps(self, entity: str) -> bool:
        """Whether ``entity`` is left as it is: dismissed by a steward, or kept by its operator."""
        return entity in self.dismissed or self._operator_for(entity)["type"] == "keep"

    def _operator_for(self, entity: str) -> dict[str, Any]:
        return self.operators.get(entity, self.operators[DEFAULT_KEY])

    def _presidio_operator(self, entity: str, value_length: int = 0) -> Any:
        from presidio_anonymizer.entities import OperatorConfig

        spec = self._operator_for(entity)
        if spec["type"] == "mask":
            return OperatorConfig(
                "custom",
                {"lambda": lambda value, s=spec: s["masking_char"] * max(len(value) - s["keep_last"], 0) + (value[len(value) - s["keep_last"] :] if s["keep_last"] else "")},
            )
        if spec["type"] == "hash":
            return OperatorConfig("hash", {"hash_type": spec["hash_type"], "salt": self.salt})
        return OperatorConfig("replace", {"new_value": spec.get("new_value", f"<{entity}>")})

    def findings(self, text: str, stats: RedactionStats | None = None) -> list[Any]:
        """Findings to redact in a whole text (chunked like a scan), offsets of
        the whole text; kept and dismissed types are counted, not returned."""
        from presidio_anonymizer.entities import RecognizerResult

        results: list[Any] = []
        analyzed = list(split_text(text, self.config.chunk_chars, self.config.chunk_overlap))
        nlp = self.analyzer.engine.nlp_engine
        artifacts = nlp.process_batch([chunk for _, chunk, _, _ in analyzed], language=self.config.language, batch_size=8)
        for (offset, chunk, owned_start, owned_end), (_, nlp_artifacts) in zip(analyzed, artifacts, strict=True):
            for result in self.analyzer.analyze(chunk, nlp_artifacts=nlp_artifacts):
                if not owned_start <= result.start < owned_end:
                    continue
                if self.keeps(result.entity_type):
                    if stats is not None:
                        stats.kept_entities[result.entity_type] += 1
                    continue
                results.append(RecognizerResult(result.entity_type, result.start + offset, result.end + offset, result.score))
        return results

    def redact(self, text: str, stats: RedactionStats) -> str:
        """The text with its PII redacted; raises ``_DropRecord`` for a drop operator."""
        if self.heartbeat is not None:
            self.heartbeat()
        if not text or not text.strip():
            return text
        results = self.findings(text, stats)
        if not results:
            return text
        if any(self._operator_for(r.entity_type)["type"] == "drop" for r in results):
            for result in results:
                stats.dropped_entities[result.entity_type] += 1
            raise _DropRecord()
        operators = {r.entity_type: self._presidio_operator(r.entity_type) for r in results}
        outcome = self.anonymizer.anonymize(text=text, analyzer_results=results, operators=operators)
        for item in outcome.items:
            stats.entities[item.entity_type] += 1
        return str(outcome.text)

    def redact_value(self, value: Any, stats: RedactionStats) -> Any:
        """A scalar value redacted like ``redact`` (a number the scan reads is
        replaced by a string only when something in it was redacted)."""
        text = scannable_text(value)
        if text is None:
            return value
        redacted = self.redact(text, stats)
        return value if redacted == text else redacted


def _redact_jsonl(chunks: Iterable[bytes], redactor: Redactor, out: IO[bytes], stats: RedactionStats) -> None:
    for raw in _lines(chunks):
        if not raw.strip():
            continue
        stats.records_in += 1
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            record = orjson.loads(_decode(raw, "", []).encode())
        changed = False

        def visit(path: str, value: Any) -> Any:
            nonlocal changed
            redacted = redactor.redact_value(value, stats)
            changed = changed or redacted is not value
            return redacted

        try:
            redacted = walk_strings(record, "", visit)
        except _DropRecord:
            stats.records_dropped += 1
            continue
        out.write((orjson.dumps(redacted) if changed else raw.rstrip(b"\r")) + b"\n")
        stats.records_out += 1


def _redact_text(chunks: Iterable[bytes], redactor: Redactor, out: IO[bytes], stats: RedactionStats) -> None:
    for raw in _lines(chunks):
        if not raw.strip():
            continue
        stats.records_in += 1
        original = _decode(raw.rstrip(b"\r"), "", [])
        try:
            line = redactor.redact(original, stats)
        except _DropRecord:
            stats.records_dropped += 1
            continue
        out.write(raw.rstrip(b"\r") + b"\n" if line == original else line.replace("\n", " ").encode() + b"\n")
        stats.records_out += 1


def _redact_csv(chunks: Iterable[bytes], redactor: Redactor, out: IO[bytes], stats: RedactionStats) -> None:
    consumed: list[str] = []  # the lines of the row just read (csv.reader never reads ahead)

    def lines() -> Iterator[str]:
        for line in csv_lines(chunks, on_undecodable=lambda: None):
            consumed.append(line)
            yield line

    csv.field_size_limit(1 << 30)
    reader = csv.reader(lines())
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text, lineterminator="\n")
    try:
        next(reader)
    except StopIteration:
        raise InvalidInput("the CSV file has no header row", field="format") from None
    header = "".join(consumed)
    text.write(header if header.endswith(("\n", "\r")) else header + "\n")
    consumed.clear()
    for row in reader:
        original = "".join(consumed)
        consumed.clear()
        if not row:
            continue
        stats.records_in += 1
        try:
            redacted = [redactor.redact(value, stats) for value in row]
        except _DropRecord:
            stats.records_dropped += 1
            continue
        if redacted == row:
            text.write(original if original.endswith(("\n", "\r")) else original + "\n")
        else:
            writer.writerow(redacted)
        stats.records_out += 1
    text.detach()


def _redact_parquet(chunks: Iterable[bytes], redactor: Redactor, out: IO[bytes], stats: RedactionStats) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.NamedTemporaryFile(prefix="pedigree-redact-", suffix=".parquet") as spool:
        for chunk in chunks:
            spool.write(chunk)
        spool.flush()
        parquet = pq.ParquetFile(spool.name)
        text_fields = parquet_string_columns(parquet.schema_arrow)
        writer = pq.ParquetWriter(out, parquet.schema_arrow)
        try:
            for batch in parquet.iter_batches(batch_size=2048):
                columns = {name: batch.column(name).to_pylist() for name in batch.schema.names}
                keep: list[int] = []
                for row in range(batch.num_rows):
                    stats.records_in += 1
                    try:
                        for name in text_fields:
                            value = columns.get(name, [None] * batch.num_rows)[row]
                            if isinstance(value, str):
                                columns[name][row] = redactor.redact(value, stats)
                    except _DropRecord:
                        stats.records_dropped += 1
                        continue
                    keep.append(row)
                if keep:
                    table = pa.table(
                        {name: pa.array([columns[name][i] for i in keep], type=batch.schema.field(name).type) for name in batch.schema.names},
                        schema=batch.schema,
                    )
                    writer.write_table(table)
                    stats.records_out += len(keep)
        finally:
            writer.close()


def redact_stream(chunks: Iterable[bytes], *, data_format: str, redactor: Redactor, out: IO[bytes]) -> RedactionStats:
    """Write the redacted file to ``out``; return what was done."""
    stats = RedactionStats()
    if data_format == DataFormat.JSONL:
        _redact_jsonl(chunks, redactor, out, stats)
    elif data_format == DataFormat.TEXT:
        _redact_text(chunks, redactor, out, stats)
    elif data_format == DataFormat.CSV:
        _redact_csv(chunks, redactor, out, stats)
    elif data_format == DataFormat.PARQUET:
        _redact_parquet(chunks, redactor, out, stats)
    else:
        raise InvalidInput(f"cannot redact format {data_format!r}")
    return stats
