"""A bounded fuzz run of the OpenAPI schema (schemathesis): no operation answers 500.

Every operation in /api/schema/ gets generated path, query and body values
(valid and invalid by the schema), sent as an admin through the WSGI app, with
real objects behind the common names so that some requests get past the 404s.
Bounded to a few examples per operation so the whole run stays near a minute;
``PEDIGREE_FUZZ_EXAMPLES`` raises it for a longer hunt.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token

EXAMPLES = int(os.environ.get("PEDIGREE_FUZZ_EXAMPLES", "4"))


from pedigree.wsgi import application  # noqa: E402  (Django is set up by pytest-django before collection)

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture(autouse=True)
def connection_kept_open() -> Iterator[None]:
    """As Django's test client does: a finished request must not close the database
    connection, which would end the test's transaction on PostgreSQL."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def admin_token(root: Any, claims_dataset: Any, make_version: Any) -> str:
    make_version(claims_dataset)
    return f"Token {Token.objects.get_or_create(user=root)[0].key}"


@pytest.mark.slow
@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_500_to_generated_input(case: Any, admin_token: str) -> None:
    response = case.call(headers={"Authorization": admin_token})
    assert response.status_code < 500, f"{case.method} {case.formatted_path} {case.query} {case.body!r:.300}: {response.status_code} {response.text[:500]}"
