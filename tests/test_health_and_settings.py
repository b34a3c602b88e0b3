"""Health endpoints and settings that refuse bad configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_database_broker_and_storage(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    assert set(response.json()["checks"]) == {"database", "broker", "storage"}


@pytest.mark.django_db
def test_readyz_is_503_naming_the_broker_when_it_is_unreachable(client, settings):
    from pedigree.celery import app

    previous = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = client.get("/readyz")
    finally:
        app.conf.broker_url = previous
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
    assert response.json()["checks"]["database"]["ok"] is True


def _settings_process(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if key not in {"SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE"}}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", "import django; from django.conf import settings; django.setup(); print(settings.DEBUG)"],
        cwd=ROOT, env={**clean, "DJANGO_SETTINGS_MODULE": "pedigree.settings"}, capture_output=True, text=True, timeout=60,
    )


def test_production_settings_refuse_to_start_without_a_secret_key():
    result = _settings_process(DEBUG="0")
    assert result.returncode != 0 and "SECRET_KEY is not set" in result.stderr


def test_production_settings_refuse_the_development_key():
    result = _settings_process(DEBUG="0", SECRET_KEY="pedigree-insecure-development-key")
    assert result.returncode != 0 and "development default" in result.stderr


def test_a_bad_boolean_names_the_variable():
    result = _settings_process(DEBUG="maybe")
    assert result.returncode != 0 and "DEBUG='maybe' is not a boolean" in result.stderr


def test_production_settings_start_with_a_real_key():
    result = _settings_process(DEBUG="0", SECRET_KEY="x" * 50)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
