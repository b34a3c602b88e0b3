"""PII scan throughput and memory: Pedigree's scanner against per-record Presidio.

Generates 20,000 support-ticket records (about a third with seeded PII:
names, emails, phone numbers, SSNs, cards, IBANs, IP addresses, places), then
in one run on the same machine:

- baseline: a loop calling ``AnalyzerEngine.analyze`` once per record, in one
  process, with Presidio's stock spaCy pipeline and the same recognizers,
  threshold and entity types;
- Pedigree: ``scan_records`` over the same file streamed from disk: texts
  batched through ``nlp.pipe`` on a process pool with one worker per core.

It confirms the two found the same entities (per entity type: count, records
affected and a checksum of every finding's record and offsets), prints
records/s for each and the ratio (target >= 3 on 2 cores), and the memory the
scan grew by. Then it streams a 1 GB file through the scanner's reader, batcher
and process pool (analysis stubbed out: at this machine's NLP speed 1 GB takes
hours) to show memory stays flat whatever the input size.

    .venv/bin/python benchmarks/pii_scan.py [--records 20000] [--memory-gb 1.0]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pedigree.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
os.environ.setdefault("PEDIGREE_VAR", tempfile.mkdtemp(prefix="pedigree-bench-"))

import django  # noqa: E402

django.setup()

import psutil  # noqa: E402

from governance.pii import scanner  # noqa: E402
from governance.pii.config import load_config  # noqa: E402
from governance.pii.engine import build_analyzer, get_analyzer  # noqa: E402
from governance.pii.records import iter_records  # noqa: E402

FIRST = ["Maria", "James", "Aisha", "Robert", "Linda", "Michael", "Sarah", "David", "Emily", "Daniel"]
LAST = ["Garcia", "Smith", "Johnson", "Williams", "Brown", "Miller", "Davis", "Wilson", "Anderson", "Taylor"]
CITIES = ["Boston", "Chicago", "Seattle", "Denver", "Berlin", "Madrid", "Dublin", "Toronto"]
PRODUCTS = ["router", "thermostat", "camera", "smart plug", "doorbell", "speaker", "hub", "light strip"]
PROBLEMS = [
    "keeps disconnecting from the wifi after the last update",
    "does not turn on any more although the light blinks twice",
    "shows the wrong temperature since this morning",
    "was charged twice on my last invoice",
    "stopped recording at night and the app shows an error",
]


def ticket(rng: random.Random, index: int) -> str:
    product, problem = rng.choice(PRODUCTS), rng.choice(PROBLEMS)
    text = f"Ticket {index}: my {product} {problem}. I already tried restarting it and resetting the app."
    if rng.random() < 0.35:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        extra = rng.choice(
            [
                f" I'm {first} {last} from {rng.choice(CITIES)}, email {first.lower()}.{last.lower()}@example.com.",
                f" Call me on ({rng.choice([212, 617, 415])}) {rng.randint(201, 989)}-{rng.randint(1000, 9999)} please.",
                f" My SSN is {rng.randint(101, 665)}-{rng.randint(10, 99)}-{rng.randint(1001, 9998)} for the warranty form.",
                f" Refund to card 4111 1111 1111 1111 or IBAN DE89 3704 0044 0532 0130 00, from {first} {last}.",
                f" The hub at 10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)} is unreachable.",
            ]
        )
        text += extra
    return text + " Thanks for your help."


def generate(path: Path, count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    texts = [ticket(rng, index) for index in range(count)]
    with path.open("w") as out:
        for text in texts:
            out.write(json.dumps({"text": text, "channel": "email"}) + "\n")
    return texts


def file_chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as stream:
        while chunk := stream.read(size):
            yield chunk


class RssSampler(threading.Thread):
    """Samples the memory of this process and its children every 0.5 s.

    Uses PSS (proportional set size): forked workers share the parent's pages
    (the spaCy model) copy-on-write, and summing their RSS would count those
    pages once per process."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process()
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def rss_mb(self) -> float:
        total = self.process.memory_full_info().pss
        for child in self.process.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # a worker may exit meanwhile
                total += child.memory_full_info().pss
        return total / 1e6

    def run(self) -> None:
        start = time.monotonic()
        while not self.stop.is_set():
            self.samples.append((time.monotonic() - start, self.rss_mb()))
            time.sleep(0.5)

    def finish(self) -> list[tuple[float, float]]:
        self.stop.set()
        self.join()
        return self.samples


def baseline_findings(texts: list[str], config: Any) -> tuple[dict[str, dict[str, int]], float, float]:
    stock = build_analyzer(config.with_overrides(exclude_components=[]))  # Presidio's stock pipeline
    engine, entities = stock.engine, list(stock.entities)
    totals: dict[str, dict[str, int]] = {}
    started = time.perf_counter()
    cpu_started = time.process_time()
    for index, text in enumerate(texts):
        results = engine.analyze(text=text, language=config.language, entities=entities, score_threshold=config.score_threshold)
        seen: set[str] = set()
        for result in results:
            total = totals.setdefault(result.entity_type, {"count": 0, "records": 0, "fingerprint": 0})
            total["count"] += 1
            total["fingerprint"] = (total["fingerprint"] + scanner.position_key(index, result.start, result.end)) % scanner.FINGERPRINT_MODULUS
            if result.entity_type not in seen:
                seen.add(result.entity_type)
                total["records"] += 1
    return totals, time.perf_counter() - started, time.process_time() - cpu_started


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its exited children (the pool's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def memory_run(directory: Path, size_gb: float, config: Any) -> tuple[float, float, float]:
    """Stream ``size_gb`` of ~2 KB records through reader, batcher and pool with
    analysis stubbed; returns (bytes, seconds, RSS growth in MB)."""
    path = directory / "large.jsonl"
    rng = random.Random(5)
    target = int(size_gb * 1e9)
    written = 0
    with path.open("w") as out:
        while written < target:
            text = " ".join(ticket(rng, written) for _ in range(12))
            line = json.dumps({"text": text}) + "\n"
            out.write(line)
            written += len(line)

    def stub(config: Any, texts: list[str], force_no_ner: bool = False) -> list[tuple[list[Any], bool]]:
        return [([], False) for _ in texts]

    real = scanner.analyze_texts
    scanner.analyze_texts = stub  # type: ignore[assignment]  # inherited by the forked workers
    sampler = RssSampler()
    before = sampler.rss_mb()
    sampler.start()
    started = time.perf_counter()
    try:
        records = iter_records(file_chunks(path), data_format="jsonl")
        state = scanner.scan_records(records, config)
    finally:
        scanner.analyze_texts = real  # type: ignore[assignment]
    seconds = time.perf_counter() - started
    samples = sampler.finish()
    path.unlink()
    peak = max(rss for _, rss in samples)
    print(f"1 GB stream: {written / 1e9:.2f} GB, {state['records_scanned']:,} records in {seconds:.1f} s; "
          f"memory (PSS) before {before:.0f} MB, peak {peak:.0f} MB (this process and its workers)")
    return written, seconds, peak - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--memory-gb", type=float, default=1.0, help="size of the memory run (0 to skip)")
    args = parser.parse_args()
    config = load_config()
    workers = scanner.worker_count(config)
    print(f"cores available: {workers}; presidio config {config.digest[:12]}, threshold {config.score_threshold}")
    with tempfile.TemporaryDirectory(prefix="pedigree-pii-bench-") as tmp:
        directory = Path(tmp)
        path = directory / "tickets.jsonl"
        texts = generate(path, args.records)
        print(f"generated {len(texts):,} records ({path.stat().st_size / 1e6:.1f} MB)")

        get_analyzer(config)  # load both engines before timing
        print(f"load average before: {os.getloadavg()[0]:.2f} (other processes on this machine compete for its cores)")
        baseline, baseline_seconds, baseline_cpu = baseline_findings(texts, config)
        baseline_rate = len(texts) / baseline_seconds
        print(f"baseline (AnalyzerEngine.analyze per record, 1 process): {baseline_rate:,.0f} records/s ({baseline_seconds:.1f} s)")

        sampler = RssSampler()
        before = sampler.rss_mb()
        sampler.start()
        started = time.perf_counter()
        cpu_before = _cpu_seconds()
        records = iter_records(file_chunks(path), data_format="jsonl")
        state = scanner.scan_records(records, config, workers=workers)
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu_before
        samples = sampler.finish()
        rate = state["records_scanned"] / seconds
        first_half = max((rss for t, rss in samples if t < seconds / 2), default=before)
        second_half = max((rss for t, rss in samples if t >= seconds / 2), default=first_half)
        peak_growth = max(rss for _, rss in samples) - before
        print(f"Pedigree (batched nlp.pipe, {workers} worker processes): {rate:,.0f} records/s ({seconds:.1f} s)")
        ratio = rate / baseline_rate
        print(f"ratio: {ratio:.2f}x (target >= 3 on 2 cores); load average now {os.getloadavg()[0]:.2f}")
        baseline_cpu_ms = 1000 * baseline_cpu / len(texts)
        cpu_ms = 1000 * cpu / state["records_scanned"]
        efficiency = baseline_cpu_ms / cpu_ms
        print(
            f"CPU time per record: baseline {baseline_cpu_ms:.2f} ms, Pedigree {cpu_ms:.2f} ms (this process and its "
            f"workers): {efficiency:.2f}x less work; on {workers} otherwise idle cores that projects to {efficiency * workers:.2f}x"
        )
        ours = {entity: dict(figures) for entity, figures in state["entities"].items()}
        same = ours == baseline
        for entity in sorted(set(ours) | set(baseline)):
            a, b = ours.get(entity, {}), baseline.get(entity, {})
            mark = "same" if a == b else "DIFFERENT"
            print(f"  {entity:18} pedigree {a.get('count', 0):6} in {a.get('records', 0):6} records | baseline {b.get('count', 0):6} in {b.get('records', 0):6} records  {mark}")
        print(f"same entities found: {same}")
        print(
            f"scan memory (PSS, this process and its workers): {before:.0f} MB before, peak {before + peak_growth:.0f} MB; "
            f"peak in the second half {second_half - first_half:+.1f} MB against the first half"
        )

        figures: dict[str, dict[str, Any]] = {
            "pedigree_records_per_s": {"value": round(rate, 1), "unit": "records/s", "target": None, "higher_is_better": True},
            "baseline_records_per_s": {"value": round(baseline_rate, 1), "unit": "records/s", "target": None, "higher_is_better": True},
            "speedup_ratio": {"value": round(ratio, 2), "unit": "x", "target": 3, "higher_is_better": True},
            "baseline_cpu_per_record": {"value": round(baseline_cpu_ms, 3), "unit": "ms", "target": None, "higher_is_better": False},
            "pedigree_cpu_per_record": {"value": round(cpu_ms, 3), "unit": "ms", "target": None, "higher_is_better": False},
            "projected_ratio_on_idle_cores": {"value": round(efficiency * workers, 2), "unit": "x", "target": None, "higher_is_better": True},
            "same_entities": {"value": 1 if same else 0, "unit": "bool", "target": 1, "higher_is_better": True},
            "scan_memory_peak_growth": {"value": round(peak_growth, 1), "unit": "MB", "target": None, "higher_is_better": False},
            "scan_memory_second_half_minus_first": {"value": round(second_half - first_half, 1), "unit": "MB", "target": None, "higher_is_better": False},
        }
        if args.memory_gb > 0:
            size, stream_seconds, stream_growth = memory_run(directory, args.memory_gb, config)
            figures["stream_1gb_memory_growth"] = {"value": round(stream_growth, 1), "unit": "MB", "target": 200, "higher_is_better": False}
            figures["stream_throughput"] = {"value": round(size / 1e6 / stream_seconds, 1), "unit": "MB/s", "target": None, "higher_is_better": True}
    print(json.dumps({"benchmark": "pii_scan", "figures": figures}))


if __name__ == "__main__":
    main()
