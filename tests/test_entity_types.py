"""PII entity types: clearances and reviews name only types the scanner reports."""

from __future__ import annotations

from typing import Any

import pytest

from governance.models.pii import PiiEntityReview
from governance.pii.config import load_config
from governance.pii.entity_types import (
    PRESIDIO_ENTITY_TYPES,
    known_entity_types,
    unknown_entity_types,
)


@pytest.mark.slow
def test_known_entity_types_cover_everything_the_real_scanner_reports() -> None:
    """The list kept without importing Presidio matches the installed Presidio's real analyzer."""
    from presidio_analyzer import predefined_recognizers

    from governance.pii.engine import get_analyzer

    config = load_config()
    analyzer = get_analyzer(config)
    supported = set(analyzer.engine.get_supported_entities(config.language))
    assert supported <= known_entity_types(config), sorted(supported - known_entity_types(config))
    # Every pattern recognizer Presidio ships (enable_predefined may switch any on) is known too.
    for name in dir(predefined_recognizers):
        recognizer_class = getattr(predefined_recognizers, name)
        entity = getattr(recognizer_class, "PATTERNS", None) and getattr(recognizer_class, "__init__", None)
        if entity is None:
            continue
        try:
            recognizer = recognizer_class(supported_language=config.language)
        except Exception:  # needs a remote service or a model: not a pattern recognizer
            continue
        assert set(recognizer.supported_entities) <= PRESIDIO_ENTITY_TYPES, name


def test_unknown_entity_types_are_named_in_order() -> None:
    assert unknown_entity_types(["PERSON", "person", "BOGUS", "EMPLOYEE_ID"]) == ["person", "BOGUS"]


@pytest.mark.django_db
@pytest.mark.parametrize("entity_type", ["BOGUS", "person", "EMAIL"])
def test_a_review_of_an_entity_type_the_scanner_does_not_know_is_a_400(
    api_client: Any, alice: Any, claims_dataset: Any, make_version: Any, entity_type: str
) -> None:
    version = make_version(claims_dataset)
    url = f"/api/v1/datasets/{claims_dataset.name}/versions/{version.number}/pii/reviews/"
    response = api_client(alice).post(
        url, {"entity_type": entity_type, "decision": "confirmed", "reason": "seen it"}, format="json"
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert "entity_type" in error["fields"] and "unknown PII entity type" in error["message"]
    assert not PiiEntityReview.objects.exists()
