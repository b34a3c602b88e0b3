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


def _broker_down(client):
    from pedigree.celery import app

    previous = app.conf.broker_url
    app.conf.broker_url = "redis://:hunter2@127.0.0.1:1/0"
    try:
        return client.get("/readyz")
    finally:
        app.conf.broker_url = previous


@pytest.mark.django_db
def test_readyz_tells_an_anonymous_caller_which_check_failed_but_not_the_exception(client, caplog):
    response = _broker_down(client)
    assert response.status_code == 503
    error = response.json()["checks"]["broker"]["error"]
    assert error == "broker is unreachable (details in the server log)"
    assert "127.0.0.1" not in response.content.decode() and "Error" not in response.content.decode()
    assert any("readiness check broker failed" in record.getMessage() for record in caplog.records)


@pytest.mark.django_db
def test_readyz_shows_the_exception_to_a_signed_in_admin(client, root):
    client.force_login(root)
    error = _broker_down(client).json()["checks"]["broker"]["error"]
    assert "Error" in error and error != "broker is unreachable (details in the server log)"


def test_manage_py_reads_the_generated_secret_key_when_none_is_set(tmp_path):
    """In a fresh shell after `make run` (DEBUG off, no SECRET_KEY), README commands work."""
    (tmp_path / "secret_key").write_text("k" * 50 + "\n")
    clean = {key: value for key, value in os.environ.items() if key not in {"SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
    env = {**clean, "PEDIGREE_VAR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", "from django.conf import settings; print(settings.DEBUG, len(settings.SECRET_KEY))"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == ["False", "50"]
    (tmp_path / "secret_key").unlink()
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "SECRET_KEY is not set" in result.stderr and "var/secret_key" in result.stderr


def test_the_database_file_and_the_artifact_folder_are_created_private(tmp_path):
    """Other local users can read neither: 0600 for the database, 0700 for the folders."""
    var = tmp_path / "var"
    clean = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "PEDIGREE_ARTIFACTS", "DJANGO_SETTINGS_MODULE"}}
    env = {**clean, "PEDIGREE_VAR": str(var), "DEBUG": "0", "SECRET_KEY": "x" * 50}
    code = "from pedigree.storage import get_store; get_store().check()"
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env={**env, "PYTHONWARNINGS": "ignore"},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    modes = {path.name: oct(path.stat().st_mode & 0o777) for path in [var, *var.iterdir()]}
    assert modes["pedigree.sqlite3"] == "0o600", modes
    assert modes["var"] == modes["artifacts"] == "0o700", modes
    for companion in ("pedigree.sqlite3-wal", "pedigree.sqlite3-shm"):
        if companion in modes:
            assert modes[companion] == "0o600", modes


def test_a_private_folder_is_private_whatever_the_umask(tmp_path):
    from pedigree.files import create_private_dir, create_private_file

    previous = os.umask(0)
    try:
        create_private_file(tmp_path / "a" / "b" / "db.sqlite3")
    finally:
        os.umask(previous)
    assert oct((tmp_path / "a").stat().st_mode & 0o777) == "0o700"
    assert oct((tmp_path / "a" / "b" / "db.sqlite3").stat().st_mode & 0o777) == "0o600"
    create_private_dir(tmp_path / "a")  # an existing folder is left as it is
