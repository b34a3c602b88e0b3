"""Tasks travel through a real Redis broker, as they do when users scale out."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
import redis

from pedigree.celery import app

REQUIRE_SERVICES = os.environ.get("PEDIGREE_REQUIRE_SERVICES") == "1"


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        if REQUIRE_SERVICES:
            pytest.fail("TEST_REDIS_URL is not set: run the suite through `make test`")
        pytest.skip("no Redis: set TEST_REDIS_URL (make test provides one)")
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


def test_a_scan_task_is_queued_on_the_scans_queue_in_redis(redis_url: str) -> None:
    with app.connection_for_write(redis_url) as connection:
        app.send_task("governance.scan_dataset_version", args=[42], queue="scans", connection=connection)
    client = redis.Redis.from_url(redis_url)
    assert client.llen("scans") == 1
    raw = client.lpop("scans")
    assert isinstance(raw, bytes)
    message = json.loads(raw)
    assert message["headers"]["task"] == "governance.scan_dataset_version"
    assert message["properties"]["delivery_info"]["routing_key"] == "scans"


def test_readyz_reports_a_redis_broker_reachable(client, db, redis_url: str) -> None:
    previous = app.conf.broker_url
    app.conf.broker_url = redis_url
    try:
        response = client.get("/readyz")
    finally:
        app.conf.broker_url = previous
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["broker"]["ok"] is True
