"""PII scanner accuracy on the hard evaluation set, per entity type, by exact span.

Generates the evaluation set of ``tests/governance/pii_evalset.py`` (seeded
PII in varied formats and languages, free text, look-alike negatives), then in
one run:

- Pedigree: ``analyze_texts`` with the configured scanner (what a scan runs);
- baseline: Presidio's stock spaCy pipeline (no component excluded), with the
  same recognizers, threshold and entity types, one ``analyze`` per text.

Scores each by exact span (type, start and end equal to a seeded value's),
counting every other finding as a false positive of its own type. Prints a
table per scanner (seeded, found, exact matches, precision, recall), the
ratio of Pedigree's micro-averaged F1 to the baseline's (target >= 1: the
speed-ups must not cost accuracy), then one JSON line with every type's
precision and recall as measured (no targets: these are measurements, and
``tests/governance/test_pii_accuracy.py`` asserts floors just below them).

    .venv/bin/python benchmarks/pii_accuracy.py [--count 720] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pedigree.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
os.environ.setdefault("PEDIGREE_VAR", tempfile.mkdtemp(prefix="pedigree-bench-"))

import django  # noqa: E402

django.setup()

from governance.pii.config import load_config  # noqa: E402
from governance.pii.engine import build_analyzer  # noqa: E402
from governance.pii.scanner import analyze_texts  # noqa: E402
from tests.governance.pii_evalset import Span, generate, score, table  # noqa: E402


def f1(figures: dict[str, Any]) -> float:
    precision, recall = figures["precision"], figures["recall"] or 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=720)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    config = load_config()
    items = generate(count=args.count, seed=args.seed)
    texts = [text for text, _ in items]
    print(f"evaluation set: {len(items)} texts, {sum(len(gold) for _, gold in items)} seeded values; config {config.digest[:12]}")

    started = time.perf_counter()
    ours = [[Span(entity, start, end) for entity, start, end, *_ in findings] for findings, _ in analyze_texts(config, texts)]
    ours_seconds = time.perf_counter() - started
    stock = build_analyzer(config.with_overrides(exclude_components=[]))
    started = time.perf_counter()
    theirs = [
        [Span(r.entity_type, r.start, r.end) for r in stock.engine.analyze(text=text, language=config.language, entities=list(stock.entities), score_threshold=config.score_threshold)]
        for text in texts
    ]
    theirs_seconds = time.perf_counter() - started

    pedigree_scores = score(items, ours)
    baseline_scores = score(items, theirs)
    print(f"\nPedigree scanner ({ours_seconds:.1f} s):\n{table(pedigree_scores)}")
    print(f"\nbaseline: Presidio stock pipeline ({theirs_seconds:.1f} s):\n{table(baseline_scores)}")
    ratio = f1(pedigree_scores["ALL"]) / f1(baseline_scores["ALL"]) if f1(baseline_scores["ALL"]) else float("inf")
    print(
        f"\nmicro F1 (exact spans, every false positive): Pedigree {f1(pedigree_scores['ALL']):.3f}, "
        f"baseline {f1(baseline_scores['ALL']):.3f}, ratio {ratio:.3f} (target >= 1)"
    )

    figures: dict[str, dict[str, Any]] = {
        "micro_f1": {"value": round(f1(pedigree_scores["ALL"]), 3), "unit": "F1", "target": None, "higher_is_better": True},
        "micro_f1_ratio_vs_presidio_stock": {"value": round(ratio, 3), "unit": "x", "target": 1.0, "higher_is_better": True},
    }
    for entity, measured in pedigree_scores.items():
        key = entity.lower()
        figures[f"{key}_precision"] = {"value": round(measured["precision"], 3), "unit": "ratio", "target": None, "higher_is_better": True}
        if measured["recall"] is not None:
            figures[f"{key}_recall"] = {"value": round(measured["recall"], 3), "unit": "ratio", "target": None, "higher_is_better": True}
        else:
            figures[f"{key}_false_positives"] = {"value": int(measured["predicted"]), "unit": "findings", "target": None, "higher_is_better": False}
    print(json.dumps({"benchmark": "pii_accuracy", "figures": figures}))


if __name__ == "__main__":
    main()
