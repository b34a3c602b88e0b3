"""Rewrite a version's bytes with its PII replaced, masked, hashed or dropped.

Texts are analysed exactly as a scan analyses them (same configuration, long
texts in overlapping chunks, offsets of the whole text) and anonymised with
presidio-anonymizer. Output keeps the input's format, layout and non-text
fields; it is written to a temporary file and then ingested like an upload.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from governance.choices import DataFormat
from governance.pii.config import ENTITY_TYPE, ScanConfig
from governance.pii.engine import get_analyzer
from governance.pii.records import _decode, _lines
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
    entities: Counter[str] = field(default_factory=Counter)


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
        self.skip = set(skip_types) | {entity for entity, spec in operators.items() if spec["type"] == "keep"}
        self.anonymizer = AnonymizerEngine()

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

    def findings(self, text: str) -> list[Any]:
        """Findings in a whole text (chunked like a scan), offsets of the whole text."""
        from presidio_anonymizer.entities import RecognizerResult

        results: list[Any] = []
        chunks = list(split_text(text, self.config.chunk_chars, self.config.chunk_overlap))
        analyzed = [(offset, chunk, owned_start, owned_end) for offset, chunk, owned_start, owned_end in chunks]
        nlp = self.analyzer.engine.nlp_engine
        artifacts = nlp.process_batch([chunk for _, chunk, _, _ in analyzed], language=self.config.language, batch_size=8)
        for (offset, chunk, owned_start, owned_end), (_, nlp_artifacts) in zip(analyzed, artifacts, strict=True):
            for result in self.analyzer.analyze(chunk, nlp_artifacts=nlp_artifacts):
                if owned_start <= result.start < owned_end and result.entity_type not in self.skip:
                    results.append(
                        RecognizerResult(result.entity_type, result.start + offset, result.end + offset, result.score)
                    )
        return results

    def redact(self, text: str, stats: RedactionStats) -> str:
        """The text with its PII redacted; raises ``_DropRecord`` for a drop operator."""
        if not text or not text.strip():
            return text
        results = self.findings(text)
        if not results:
            return text
        if any(self._operator_for(r.entity_type)["type"] == "drop" for r in results):
            raise _DropRecord()
        operators = {r.entity_type: self._presidio_operator(r.entity_type) for r in results}
        outcome = self.anonymizer.anonymize(text=text, analyzer_results=results, operators=operators)
        for item in outcome.items:
            stats.entities[item.entity_type] += 1
        return str(outcome.text)


def _redact_jsonl(chunks: Iterable[bytes], redactor: Redactor, text_fields: list[str], out: IO[bytes], stats: RedactionStats) -> None:
    for raw in _lines(chunks):
        if not raw.strip():
            continue
        stats.records_in += 1
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            record = orjson.loads(_decode(raw, "", []).encode())
        try:
            for name in text_fields:
                if name == "messages" and isinstance(record.get("messages"), list):
                    for message in record["messages"]:
                        if isinstance(message, dict) and isinstance(message.get("content"), str):
                            message["content"] = redactor.redact(message["content"], stats)
                elif isinstance(record.get(name), str):
                    record[name] = redactor.redact(record[name], stats)
        except _DropRecord:
            stats.records_dropped += 1
            continue
        out.write(orjson.dumps(record) + b"\n")
        stats.records_out += 1


def _redact_text(chunks: Iterable[bytes], redactor: Redactor, out: IO[bytes], stats: RedactionStats) -> None:
    for raw in _lines(chunks):
        if not raw.strip():
            continue
        stats.records_in += 1
        try:
            line = redactor.redact(_decode(raw.rstrip(b"\r"), "", []), stats)
        except _DropRecord:
            stats.records_dropped += 1
            continue
        out.write(line.replace("\n", " ").encode() + b"\n")
        stats.records_out += 1


def _redact_csv(chunks: Iterable[bytes], redactor: Redactor, text_fields: list[str], out: IO[bytes], stats: RedactionStats) -> None:
    def lines() -> Iterator[str]:
        pending = ""
        for chunk in chunks:
            parts = (pending + chunk.decode("utf-8", "replace")).splitlines(keepends=True)
            pending = parts.pop() if parts and not parts[-1].endswith(("\n", "\r")) else ""
            yield from parts
        if pending:
            yield pending

    csv.field_size_limit(1 << 30)
    reader = csv.reader(lines())
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text, lineterminator="\n")
    header = next(reader)
    positions = [index for index, name in enumerate(header) if name.strip() in text_fields]
    writer.writerow(header)
    for row in reader:
        if not row:
            continue
        stats.records_in += 1
        try:
            for index in positions:
                if index < len(row):
                    row[index] = redactor.redact(row[index], stats)
        except _DropRecord:
            stats.records_dropped += 1
            continue
        writer.writerow(row)
        stats.records_out += 1
    text.detach()


def _redact_parquet(chunks: Iterable[bytes], redactor: Redactor, text_fields: list[str], out: IO[bytes], stats: RedactionStats) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.NamedTemporaryFile(prefix="pedigree-redact-", suffix=".parquet") as spool:
        for chunk in chunks:
            spool.write(chunk)
        spool.flush()
        parquet = pq.ParquetFile(spool.name)
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


def redact_stream(
    chunks: Iterable[bytes], *, data_format: str, text_fields: list[str], redactor: Redactor, out: IO[bytes]
) -> RedactionStats:
    """Write the redacted file to ``out``; return what was done."""
    stats = RedactionStats()
    if data_format == DataFormat.JSONL:
        _redact_jsonl(chunks, redactor, text_fields, out, stats)
    elif data_format == DataFormat.TEXT:
        _redact_text(chunks, redactor, out, stats)
    elif data_format == DataFormat.CSV:
        _redact_csv(chunks, redactor, text_fields, out, stats)
    elif data_format == DataFormat.PARQUET:
        _redact_parquet(chunks, redactor, text_fields, out, stats)
    else:
        raise InvalidInput(f"cannot redact format {data_format!r}")
    return stats
