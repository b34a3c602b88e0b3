"""Adapter files are loaded only after sha256 verification (serving/runtime/verify.py).

Attacker's side: a tampered file, a file slipped into the folder, a missing
file, a malformed or absent digest map, a path escaping the folder: all refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from serving.runtime.errors import AdapterVerificationError, InvalidRequest, NotFound
from serving.runtime.verify import (
    directory_digests,
    stage_verified_adapter,
    verify_directory,
)

pytestmark = pytest.mark.no_database


@pytest.fixture
def adapter_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"r": 8}')
    (folder / "adapter_model.safetensors").write_bytes(b"weights" * 100)
    return folder


def test_matching_digests_stage_a_byte_identical_private_copy(adapter_dir: Path, tmp_path: Path) -> None:
    staged = stage_verified_adapter(adapter_dir, directory_digests(adapter_dir), tmp_path / "staging")
    assert staged.parent == tmp_path / "staging"
    assert staged != adapter_dir
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (staged / name).read_bytes() == (adapter_dir / name).read_bytes()


def test_digests_accept_the_sha256_prefix_and_upper_case(adapter_dir: Path, tmp_path: Path) -> None:
    expected = {n: "sha256:" + d.upper() for n, d in directory_digests(adapter_dir).items()}
    assert stage_verified_adapter(adapter_dir, expected, tmp_path / "staging").is_dir()


def test_a_tampered_file_is_refused_naming_the_file_and_both_digests(adapter_dir: Path, tmp_path: Path) -> None:
    expected = directory_digests(adapter_dir)
    (adapter_dir / "adapter_model.safetensors").write_bytes(b"evil" * 100)
    actual = hashlib.sha256(b"evil" * 100).hexdigest()
    with pytest.raises(AdapterVerificationError) as info:
        stage_verified_adapter(adapter_dir, expected, tmp_path / "staging")
    message = info.value.message
    assert "adapter_model.safetensors" in message
    assert expected["adapter_model.safetensors"] in message and actual in message
    assert info.value.status == 400
    assert list((tmp_path / "staging").iterdir()) == []  # no partial copy is left to load


def test_a_file_without_an_expected_digest_is_refused(adapter_dir: Path, tmp_path: Path) -> None:
    expected = directory_digests(adapter_dir)
    (adapter_dir / "extra.py").write_text("import os")
    with pytest.raises(AdapterVerificationError, match="extra.py have no expected sha256"):
        stage_verified_adapter(adapter_dir, expected, tmp_path / "staging")


def test_an_expected_file_that_is_missing_is_refused(adapter_dir: Path, tmp_path: Path) -> None:
    expected = directory_digests(adapter_dir)
    (adapter_dir / "adapter_config.json").unlink()
    with pytest.raises(AdapterVerificationError, match="adapter_config.json are missing"):
        stage_verified_adapter(adapter_dir, expected, tmp_path / "staging")


@pytest.mark.parametrize("expected", [None, {}, ["adapter_config.json"], "abc"])
def test_absent_or_empty_digest_maps_are_refused(adapter_dir: Path, tmp_path: Path, expected: object) -> None:
    with pytest.raises(AdapterVerificationError, match="sha256"):
        stage_verified_adapter(adapter_dir, expected, tmp_path / "staging")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "digest", "fragment"),
    [
        ("adapter_config.json", "abc123", "is not a sha256 digest"),
        ("adapter_config.json", 42, "expected a hex string"),
        ("../adapter_config.json", "0" * 64, "is not a plain file name"),
    ],
)
def test_malformed_digest_entries_are_refused(
    adapter_dir: Path, tmp_path: Path, name: str, digest: object, fragment: str
) -> None:
    expected: dict[str, object] = dict(directory_digests(adapter_dir))
    expected[name] = digest
    with pytest.raises(InvalidRequest, match=fragment):
        stage_verified_adapter(adapter_dir, expected, tmp_path / "staging")  # type: ignore[arg-type]


def test_a_missing_adapter_folder_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as info:
        stage_verified_adapter(tmp_path / "nope", {"a": "0" * 64}, tmp_path / "staging")
    assert info.value.status == 404


def test_a_staged_copy_changed_later_fails_verification(adapter_dir: Path, tmp_path: Path) -> None:
    expected = directory_digests(adapter_dir)
    staged = stage_verified_adapter(adapter_dir, expected, tmp_path / "staging")
    verify_directory(staged, expected)
    target = staged / "adapter_config.json"
    target.chmod(0o600)
    target.write_text('{"r": 64}')
    with pytest.raises(AdapterVerificationError, match="adapter_config.json has sha256"):
        verify_directory(staged, expected)
