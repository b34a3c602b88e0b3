"""sha256 verification of adapter files before any engine reads them.

The caller (the gateway, from the model registry) passes the expected digest of
every file. The files are hashed while they are copied into a private staging
folder, and the engine loads that copy: a file swapped after the check is never
the one loaded. Anything not covered fails closed: a file without an expected
digest, an expected file that is missing, a digest that differs.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from serving.runtime.errors import AdapterVerificationError, InvalidRequest, NotFound

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def directory_digests(directory: str | os.PathLike[str]) -> dict[str, str]:
    """Digests of every regular file directly inside ``directory`` (what a caller registers)."""
    root = Path(directory)
    return {p.name: sha256_file(p) for p in sorted(root.iterdir()) if p.is_file()}


def normalize_digests(expected: object) -> dict[str, str]:
    """Check the caller's ``{file name: sha256}`` map and return it lower-cased.

    Accepts ``"sha256:<hex>"`` or bare hex. Names must be plain file names.
    """
    if not isinstance(expected, Mapping) or not expected:
        raise AdapterVerificationError(
            "sha256: a map of every adapter file name to its expected sha256 digest is required",
            param="sha256",
        )
    result: dict[str, str] = {}
    for name, value in expected.items():
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in {".", ".."}:
            raise InvalidRequest(f"sha256: {name!r} is not a plain file name", param="sha256")
        if not isinstance(value, str):
            raise InvalidRequest(f"sha256[{name!r}]: expected a hex string", param="sha256")
        digest = value.lower().removeprefix("sha256:")
        if not _HEX64.match(digest):
            raise InvalidRequest(
                f"sha256[{name!r}]: {value!r} is not a sha256 digest (64 hex characters)",
                param="sha256",
            )
        result[name] = digest
    return result


def _source_files(source: Path, expected: Mapping[str, str]) -> list[Path]:
    if not source.is_dir():
        raise NotFound(f"adapter path {str(source)!r} does not exist or is not a folder", param="lora_path")
    entries = sorted(source.iterdir())
    unexpected = [p.name for p in entries if p.name not in expected]
    if unexpected:
        raise AdapterVerificationError(
            f"adapter {str(source)!r}: file(s) {', '.join(unexpected)} have no expected sha256 digest; "
            "refusing to load unverified files",
            param="sha256",
        )
    missing = sorted(set(expected) - {p.name for p in entries})
    if missing:
        raise AdapterVerificationError(
            f"adapter {str(source)!r}: expected file(s) {', '.join(missing)} are missing",
            param="sha256",
        )
    not_files = [p.name for p in entries if not p.is_file()]
    if not_files:
        raise AdapterVerificationError(
            f"adapter {str(source)!r}: {', '.join(not_files)} are not regular files", param="lora_path"
        )
    return entries


def stage_verified_adapter(
    source: str | os.PathLike[str],
    expected: Mapping[str, str],
    staging_root: str | os.PathLike[str],
) -> Path:
    """Copy an adapter folder into a new private folder under ``staging_root``,
    hashing each file as it is copied, and return the copy's path.

    Raises ``AdapterVerificationError`` naming the file, the expected and the
    actual digest when any file differs (the partial copy is removed), and
    ``NotFound`` when ``source`` is not a folder.
    """
    digests = normalize_digests(expected)
    source_path = Path(source)
    files = _source_files(source_path, digests)
    Path(staging_root).mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix="adapter-", dir=staging_root))
    try:
        for path in files:
            digest = hashlib.sha256()
            with open(path, "rb") as src, open(staged / path.name, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
            actual = digest.hexdigest()
            if actual != digests[path.name]:
                raise AdapterVerificationError(
                    f"adapter {str(source_path)!r}: {path.name} has sha256 {actual}, "
                    f"expected {digests[path.name]}; refusing to load it",
                    param="sha256",
                )
            os.chmod(staged / path.name, 0o400)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return staged


def verify_directory(directory: str | os.PathLike[str], expected: Mapping[str, str]) -> None:
    """Check that ``directory`` holds exactly the expected files with the expected digests.

    Used again before an evicted adapter is reloaded from its staged copy.
    """
    digests = normalize_digests(expected)
    root = Path(directory)
    for path in _source_files(root, digests):
        actual = sha256_file(path)
        if actual != digests[path.name]:
            raise AdapterVerificationError(
                f"adapter {str(root)!r}: {path.name} has sha256 {actual}, expected "
                f"{digests[path.name]}; refusing to load it",
                param="sha256",
            )
