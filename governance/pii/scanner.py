"""The scanning engine: texts in, an aggregate report out, never raw PII.

Records stream in from ``records.iter_records``. Their text fields are cut
into segments (long texts into overlapping chunks, so offsets stay those of
the whole text and an entity on a boundary is found once), grouped into
batches and analysed on a pool of worker processes: each batch goes through
the NLP pipeline in one ``nlp.pipe`` call, then through every recognizer.
Batches are submitted with a bounded window and their results applied in
order, so memory stays flat whatever the file's size and progress is always
a whole number of records (a checkpoint from which a scan can resume).

Workers return findings with the value already masked; the parent keeps
counts, records affected, a score histogram and a few masked samples per
field and entity type.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from governance.pii.config import ScanConfig
from governance.pii.engine import get_analyzer
from governance.pii.records import Record

HISTOGRAM_BUCKETS = 10
MAX_PROBLEMS = 100
# Below this many records a pool costs more than it saves.
POOL_MIN_RECORDS = 2000
# Texts a pool worker analyses before the pool is replaced (see scan_records).
POOL_RECYCLE_TEXTS = 5000
# Bounds the characters in flight per batch, whatever the batch size.
BATCH_MAX_CHARS = 400_000

Finding = tuple[str, int, int, float, str, str]  # entity, start, end, score, masked, recognizer


# --- Masking ----------------------------------------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)


def _mask_word(match: re.Match[str]) -> str:
    word = match.group(0)
    return word[0] + "***" if len(word) >= 3 else "*"


def mask_value(value: str) -> str:
    """Mask a found value so a report shows its shape, never the value itself.

    ``john.smith@example.com`` becomes ``j***@e***.com``; other values keep the
    first character of each word of three or more characters: ``Maria Garcia``
    becomes ``M*** G***``, ``123-45-6789`` becomes ``1***-*-6***``.
    """
    value = value.strip()
    if "@" in value:
        local, _, domain = value.rpartition("@")
        labels = domain.split(".")
        suffix = "." + labels[-1] if len(labels) > 1 and labels[-1].isalpha() else ""
        return f"{local[:1]}***@{labels[0][:1]}***{suffix}"
    masked = _WORD.sub(_mask_word, value)
    return masked[:64] + ("…" if len(masked) > 64 else "")


def _is_non_latin(text: str) -> bool:
    """Whether most letters of ``text`` are outside the Latin script (the
    English pipeline's NER does not know such text)."""
    if text.isascii():
        return False
    letters = [char for char in text if char.isalpha()]
    if len(letters) < 8:
        return False
    foreign = sum(1 for char in letters if ord(char) > 0x24F)
    return foreign * 2 > len(letters)


# --- Work done in the pool ----------------------------------------------------------

_worker_config: ScanConfig | None = None
_worker_force_no_ner = False


def _init_worker(config: ScanConfig, force_no_ner: bool) -> None:
    global _worker_config, _worker_force_no_ner
    _worker_config, _worker_force_no_ner = config, force_no_ner


# Repeated texts (a chat dataset's system prompt, a CSV column of city names)
# are analysed once per process: analysis is deterministic, so the findings
# are the same. Only short texts are kept, and only this many.
RESULT_CACHE_SIZE = 4096
RESULT_CACHE_MAX_CHARS = 2000
_result_cache: OrderedDict[tuple[str, str], tuple[list[Finding], bool]] = OrderedDict()


def analyze_texts(config: ScanConfig, texts: list[str], force_no_ner: bool = False) -> list[tuple[list[Finding], bool]]:
    """Analyse a batch of texts: the NLP pipeline over the whole batch, then
    every recognizer over each text. Returns masked findings and whether the
    text looks like a language the pipeline does not know."""
    analyzer = get_analyzer(config, force_no_ner=force_no_ner)
    nlp_engine = analyzer.engine.nlp_engine
    key_prefix = config.digest + ("/no-ner" if force_no_ner else "")
    known: dict[str, tuple[list[Finding], bool]] = {}
    todo: list[str] = []
    for text in texts:
        if text in known:
            continue
        cached = _result_cache.get((key_prefix, text)) if len(text) <= RESULT_CACHE_MAX_CHARS else None
        if cached is not None:
            _result_cache.move_to_end((key_prefix, text))
            known[text] = cached
        else:
            known[text] = ([], False)  # placeholder: analysed below
            todo.append(text)
    artifacts = nlp_engine.process_batch(todo, language=config.language, batch_size=max(len(todo), 1)) if todo else []
    for text, (_, nlp_artifacts) in zip(todo, artifacts, strict=True):
        results = analyzer.analyze(text, nlp_artifacts=nlp_artifacts)
        findings = [
            (
                result.entity_type,
                result.start,
                result.end,
                float(result.score),
                mask_value(text[result.start : result.end]),
                str((result.recognition_metadata or {}).get("recognizer_name", "")),
            )
            for result in results
        ]
        known[text] = (findings, _is_non_latin(text))
        if len(text) <= RESULT_CACHE_MAX_CHARS:
            _result_cache[(key_prefix, text)] = known[text]
            if len(_result_cache) > RESULT_CACHE_SIZE:
                _result_cache.popitem(last=False)
    return [known[text] for text in texts]


def _pool_analyze(texts: list[str]) -> list[tuple[list[Finding], bool]]:
    assert _worker_config is not None
    return analyze_texts(_worker_config, texts, _worker_force_no_ner)


# --- Segments and batches -------------------------------------------------------------


@dataclass
class _Segment:
    record: int
    field: str
    offset: int  # of the chunk in the whole text
    owned_start: int  # findings starting in [owned_start, owned_end) of the chunk are kept
    owned_end: int


@dataclass
class _Batch:
    texts: list[str] = field(default_factory=list)
    # In order: a _Segment (one per text) or a finished Record.
    events: list[_Segment | Record] = field(default_factory=list)
    chars: int = 0


def split_text(text: str, chunk_chars: int, overlap: int) -> Iterator[tuple[int, str, int, int]]:
    """Cut a long text into overlapping chunks: (offset, chunk, owned_start, owned_end).

    Each position of the text is owned by exactly one chunk; a finding is kept
    by the chunk that owns its start, so an entity shorter than half the
    overlap is found whole, and once.
    """
    if len(text) <= chunk_chars:
        yield 0, text, 0, len(text)
        return
    half = overlap // 2
    step = chunk_chars - overlap
    start = 0
    while True:
        last = start + chunk_chars >= len(text)
        owned_start = 0 if start == 0 else half
        owned_end = len(text) - start if last else chunk_chars - half
        yield start, text[start : start + chunk_chars], owned_start, owned_end
        if last:
            return
        start += step


def _batches(records: Iterable[Record], config: ScanConfig, stats: dict[str, int]) -> Iterator[_Batch]:
    batch = _Batch()
    for record in records:
        for name, text in record.texts:
            chunks = list(split_text(text, config.chunk_chars, config.chunk_overlap)) if len(text) > config.chunk_chars else [(0, text, 0, len(text))]
            if len(chunks) > 1:
                stats["chunked_texts"] = stats.get("chunked_texts", 0) + 1
            for offset, chunk, owned_start, owned_end in chunks:
                batch.texts.append(chunk)
                batch.events.append(_Segment(record.index, name, offset, owned_start, owned_end))
                batch.chars += len(chunk)
                if len(batch.texts) >= config.batch_size or batch.chars >= BATCH_MAX_CHARS:
                    yield batch
                    batch = _Batch()
        batch.events.append(record)
        if len(batch.events) >= config.batch_size * 4:
            yield batch
            batch = _Batch()
    if batch.events:
        yield batch


# --- Aggregation -----------------------------------------------------------------------


def new_report_state() -> dict[str, Any]:
    """An empty aggregate (JSON values only, so it can be checkpointed)."""
    return {
        "records_scanned": 0,
        "texts_scanned": 0,
        "characters_scanned": 0,
        "empty_fields": 0,
        "chunked_texts": 0,
        "non_latin_records": 0,
        "problem_count": 0,
        "problems": [],
        "findings": {},
        "entities": {},
    }


class _Aggregator:
    def __init__(self, state: dict[str, Any], samples_per_type: int) -> None:
        self.state = state
        self.samples = samples_per_type
        self.current: int | None = None
        self.record_findings: list[tuple[str, Finding]] = []
        self.record_non_latin = False

    def add_text(self, segment: _Segment, text_length: int, findings: list[Finding], non_latin: bool) -> None:
        state = self.state
        if segment.offset == 0:
            state["texts_scanned"] += 1
        state["characters_scanned"] += segment.owned_end - segment.owned_start
        self.record_non_latin = self.record_non_latin or non_latin
        for entity, start, end, score, masked, recognizer in findings:
            if not segment.owned_start <= start < segment.owned_end:
                continue  # the neighbouring chunk owns it
            self.record_findings.append(
                (segment.field, (entity, start + segment.offset, end + segment.offset, score, masked, recognizer))
            )

    def end_record(self, record: Record) -> None:
        state = self.state
        state["records_scanned"] += 1
        state["empty_fields"] += record.empty_fields
        if record.problems:
            state["problem_count"] += len(record.problems)
            room = MAX_PROBLEMS - len(state["problems"])
            state["problems"].extend(record.problems[: max(room, 0)])
        if self.record_non_latin:
            state["non_latin_records"] += 1
        seen_pairs: set[tuple[str, str]] = set()
        seen_entities: set[str] = set()
        findings = state["findings"]
        for name, (entity, start, end, score, masked, recognizer) in self.record_findings:
            summary = findings.setdefault(name, {}).get(entity)
            if summary is None:
                summary = findings[name][entity] = {
                    "count": 0,
                    "records": 0,
                    "histogram": [0] * HISTOGRAM_BUCKETS,
                    "min": score,
                    "max": score,
                    "sum": 0.0,
                    "samples": [],
                }
            summary["count"] += 1
            summary["histogram"][min(int(score * HISTOGRAM_BUCKETS), HISTOGRAM_BUCKETS - 1)] += 1
            summary["min"] = min(summary["min"], score)
            summary["max"] = max(summary["max"], score)
            summary["sum"] += score
            if (name, entity) not in seen_pairs:
                seen_pairs.add((name, entity))
                summary["records"] += 1
            if len(summary["samples"]) < self.samples and all(s["masked"] != masked for s in summary["samples"]):
                summary["samples"].append(
                    {"record": record.index + 1, "masked": masked, "score": round(score, 3), "recognizer": recognizer, "start": start}
                )
            total = state["entities"].setdefault(entity, {"count": 0, "records": 0, "fingerprint": 0})
            total["count"] += 1
            # An order-independent checksum of where each finding is, so two scans
            # (pool and single process, resumed and whole) can be shown to agree.
            total["fingerprint"] = (total["fingerprint"] + position_key(record.index, start, end)) % FINGERPRINT_MODULUS
            if entity not in seen_entities:
                seen_entities.add(entity)
                total["records"] += 1
        self.record_findings = []
        self.record_non_latin = False


FINGERPRINT_MODULUS = (1 << 61) - 1


def position_key(record: int, start: int, end: int) -> int:
    """The contribution of one finding at (record, start, end) to an entity's fingerprint."""
    return (record * 1_000_003 + start) * 1_000_033 + end


# --- The scan loop ---------------------------------------------------------------------


class ScanStopped(Exception):
    """The progress callback asked the scan to stop (cancelled)."""


@contextlib.contextmanager
def _children_allowed() -> Iterator[None]:
    """Let a daemonic process (a Celery prefork child) start a process pool.

    multiprocessing refuses children of daemonic processes so that they are not
    orphaned; the pool here is shut down before the scan returns, and its
    workers exit on their own if this process is killed.
    """
    process = multiprocessing.current_process()
    config = getattr(process, "_config", {})
    was_daemon = config.get("daemon", False)
    if was_daemon:
        config["daemon"] = False
    try:
        yield
    finally:
        if was_daemon:
            config["daemon"] = True


def worker_count(config: ScanConfig) -> int:
    """How many worker processes a scan uses: as configured, else one per core."""
    if config.workers:
        return config.workers
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def scan_records(
    records: Iterable[Record],
    config: ScanConfig,
    *,
    state: dict[str, Any] | None = None,
    workers: int | None = None,
    force_no_ner: bool = False,
    on_progress: Callable[[int, dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """Scan ``records`` and return the aggregate report state.

    ``state`` continues an earlier, interrupted scan. After each batch,
    ``on_progress(records_done, state)`` is called at a record boundary; if it
    returns False the scan stops with ``ScanStopped``.
    """
    state = state if state is not None else new_report_state()
    aggregator = _Aggregator(state, config.samples_per_type)
    stats: dict[str, int] = {}
    count = workers if workers is not None else worker_count(config)
    # Build the analyzer here first: forked workers inherit it ready to use.
    get_analyzer(config, force_no_ner=force_no_ner)

    def apply(batch: _Batch, results: list[tuple[list[Finding], bool]]) -> None:
        position = 0
        for event in batch.events:
            if isinstance(event, Record):
                aggregator.end_record(event)
            else:
                findings, non_latin = results[position]
                aggregator.add_text(event, len(batch.texts[position]), findings, non_latin)
                position += 1
        state["chunked_texts"] = state.get("chunked_texts", 0) + stats.pop("chunked_texts", 0)
        if on_progress is not None and not on_progress(state["records_scanned"], state):
            raise ScanStopped()

    if count <= 1:
        for batch in _batches(records, config, stats):
            apply(batch, analyze_texts(config, batch.texts, force_no_ner) if batch.texts else [])
        return state

    context = multiprocessing.get_context("fork")
    batches = _batches(records, config, stats)
    exhausted = False
    while not exhausted:
        # A fresh pool every POOL_RECYCLE_TEXTS texts per worker: spaCy's string
        # store grows with every new token and forked workers slowly un-share
        # the parent's pages, so recycling keeps memory flat on any input size.
        with _children_allowed(), ProcessPoolExecutor(
            max_workers=count, mp_context=context, initializer=_init_worker, initargs=(config, force_no_ner)
        ) as pool:
            pending: deque[tuple[_Batch, Future[list[tuple[list[Finding], bool]]] | None]] = deque()
            submitted = 0
            exhausted = True
            try:
                for batch in batches:
                    future = pool.submit(_pool_analyze, batch.texts) if batch.texts else None
                    pending.append((batch, future))
                    submitted += len(batch.texts)
                    while len(pending) > count * 2:
                        done, done_future = pending.popleft()
                        apply(done, done_future.result() if done_future else [])
                    if submitted >= POOL_RECYCLE_TEXTS * count:
                        exhausted = False
                        break
                while pending:
                    done, done_future = pending.popleft()
                    apply(done, done_future.result() if done_future else [])
            except BaseException:
                for _, future in pending:
                    if future is not None:
                        future.cancel()
                raise
    return state


def summarize(state: dict[str, Any]) -> dict[str, Any]:
    """Per field and entity type, the figures a report shows (mean score added)."""
    rows = []
    for name, entities in sorted(state["findings"].items()):
        for entity, summary in sorted(entities.items()):
            rows.append(
                {
                    "field": name,
                    "entity_type": entity,
                    "count": summary["count"],
                    "records": summary["records"],
                    "score_min": round(summary["min"], 3),
                    "score_max": round(summary["max"], 3),
                    "score_mean": round(summary["sum"] / summary["count"], 3) if summary["count"] else 0.0,
                    "histogram": summary["histogram"],
                    "samples": summary["samples"],
                }
            )
    return {"rows": rows, "entities": state["entities"]}
