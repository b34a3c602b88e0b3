"""Accuracy of the scanner on a generated evaluation set with seeded PII.

Precision and recall per entity type are computed against the known type and
position of every seeded value, and asserted: recall at least 0.9 for the
pattern-based types; the NER types (names, places) have their own floor.
"""

from __future__ import annotations

import pytest

from governance.pii.config import load_config
from governance.pii.scanner import analyze_texts
from tests.governance.pii_evalset import NER_TYPES, PATTERN_TYPES, Span, generate, precision_recall

MIN_PATTERN_RECALL = 0.9
MIN_PATTERN_PRECISION = {"PHONE_NUMBER": 0.7}  # digits of SSNs and cards also parse as phone numbers
MIN_NER_RECALL = 0.85
MIN_NER_PRECISION = 0.85


@pytest.fixture(scope="module")
def scores() -> dict[str, dict[str, float]]:
    items = generate(count=400, seed=7)
    results = analyze_texts(load_config(), [text for text, _ in items])
    predictions = [[Span(entity, start, end) for entity, start, end, *_ in findings] for findings, _ in results]
    measured = precision_recall(items, predictions, PATTERN_TYPES + NER_TYPES)
    for entity, figures in measured.items():  # shown with -s; the report quotes them
        print(f"{entity:14} precision {figures['precision']:.3f} recall {figures['recall']:.3f} (seeded {figures['seeded']})")
    return measured


@pytest.mark.parametrize("entity", PATTERN_TYPES)
def test_pattern_based_types_are_found_with_recall_of_at_least_0_9(scores: dict[str, dict[str, float]], entity: str) -> None:
    assert scores[entity]["seeded"] >= 25
    assert scores[entity]["recall"] >= MIN_PATTERN_RECALL


@pytest.mark.parametrize("entity", PATTERN_TYPES)
def test_pattern_based_findings_are_precise(scores: dict[str, dict[str, float]], entity: str) -> None:
    assert scores[entity]["precision"] >= MIN_PATTERN_PRECISION.get(entity, 0.95)


@pytest.mark.parametrize("entity", NER_TYPES)
def test_names_and_places_are_found_by_the_ner_model(scores: dict[str, dict[str, float]], entity: str) -> None:
    assert scores[entity]["recall"] >= MIN_NER_RECALL
    assert scores[entity]["precision"] >= MIN_NER_PRECISION
