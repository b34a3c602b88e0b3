"""Loading policy files: read, parse and validate them against the schema.

Pure Python on top of ``cedarpy`` (no Django import). ``compile_policies``
checks a set of policy files against the schema and builds one pre-parsed
``PolicySet``; every problem is reported with its file, line and message
(``PolicyInvalid``).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cedarpy

from pedigree.errors import InvalidInput
from policies.owner_rules import line_of_code_token, owner_rule_refusal

SCHEMA_FILE = "schema.cedarschema"
OWNERS_FOLDER = "owners"
_POLICY_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


# --- Problems -----------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyProblem:
    """One thing wrong with the policy files: where, and what."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values (API bodies, reports)."""
        return {"file": self.file, "line": self.line, "message": self.message}


class PolicyInvalid(InvalidInput):
    """The policy files do not parse or do not validate against the schema."""

    code = "policy_invalid"

    def __init__(self, problems: Sequence[PolicyProblem]) -> None:
        self.problems = list(problems)
        first = self.problems[0]
        message = "; ".join(str(problem) for problem in self.problems)
        super().__init__(
            f"invalid policies: {message}",
            file=first.file,
            line=first.line,
            problems=[problem.as_dict() for problem in self.problems],
        )


# --- Loading ----------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyInfo:
    """One policy of the set: its ``@id``, where it is written, what it does."""

    id: str
    file: str
    line: int
    effect: str
    reason: str
    text: str


@dataclass(frozen=True)
class PolicyBundle:
    """A validated policy set, parsed once, with the schema and a digest of the files."""

    policy_set: cedarpy.PolicySet
    schema: cedarpy.Schema
    digest: str
    policies: Mapping[str, PolicyInfo]
    sources: Mapping[str, str]
    loaded_at: float = field(default_factory=time.time)

    @property
    def files(self) -> list[str]:
        """The relative paths of the schema and policy files."""
        return sorted(self.sources)


def read_policy_sources(directory: Path | str) -> dict[str, str]:
    """The schema and every ``*.cedar`` file (also under ``owners/``), by relative path."""
    root = Path(directory)
    if not root.is_dir():
        raise PolicyInvalid([PolicyProblem(str(root), 0, "the policy folder does not exist")])
    sources: dict[str, str] = {}
    for path in _policy_paths(root):
        relative = path.relative_to(root).as_posix()
        try:
            sources[relative] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise PolicyInvalid([PolicyProblem(relative, 0, f"cannot be read: {error}")]) from None
    return sources


def _policy_paths(root: Path) -> list[Path]:
    paths = [root / SCHEMA_FILE] if (root / SCHEMA_FILE).exists() else []
    paths += sorted(root.glob("*.cedar")) + sorted((root / OWNERS_FOLDER).glob("*.cedar"))
    return paths


def sources_signature(directory: Path | str) -> tuple[tuple[str, int, int], ...]:
    """A cheap fingerprint of the policy files (name, mtime, size) to notice changes."""
    root = Path(directory)
    signature = []
    for path in _policy_paths(root):
        try:
            stat = path.stat()
        except OSError:
            continue
        signature.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(signature)


def sources_digest(sources: Mapping[str, str]) -> str:
    """sha256 over every file's path and text: the identity of a policy set."""
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    return digest.hexdigest()


def load_policy_directory(directory: Path | str) -> PolicyBundle:
    """Read, check and parse the policy folder; raise ``PolicyInvalid`` naming each problem."""
    return compile_policies(read_policy_sources(directory))


def compile_policies(sources: Mapping[str, str]) -> PolicyBundle:
    """Check every policy file against the schema and build one pre-parsed policy set.

    Rules beyond Cedar's own: every policy carries a unique ``@id`` (the name
    decisions report), templates are not used, and a file in ``owners/``
    belongs to the team it is named after: it may only ``forbid``, and each of
    its policies must be limited to that team's data
    (``resource.owners.contains("<team>")``).
    """
    problems: list[PolicyProblem] = []
    schema_text = sources.get(SCHEMA_FILE)
    if schema_text is None:
        raise PolicyInvalid([PolicyProblem(SCHEMA_FILE, 0, "the schema file is missing")])
    try:
        schema = cedarpy.Schema.from_str(schema_text)
    except ValueError as error:
        line = _line_of_message_token(str(error), schema_text, 1)
        raise PolicyInvalid([PolicyProblem(SCHEMA_FILE, line, f"schema: {error}")]) from None
    policies: dict[str, PolicyInfo] = {}
    documents: dict[str, Any] = {}
    for name in sorted(sources):
        if name == SCHEMA_FILE:
            continue
        problems += _compile_file(name, sources[name], schema, policies, documents)
    if not policies and not problems:
        problems.append(PolicyProblem(SCHEMA_FILE, 0, "no policies: every request would be denied"))
    if problems:
        raise PolicyInvalid(problems)
    combined = {"staticPolicies": documents, "templates": {}, "templateLinks": []}
    try:
        policy_set = cedarpy.PolicySet.from_json_str(json.dumps(combined))
    except ValueError as error:  # pragma: no cover - each policy parsed on its own above
        raise PolicyInvalid([PolicyProblem(SCHEMA_FILE, 0, f"cannot combine the policies: {error}")]) from None
    return PolicyBundle(
        policy_set=policy_set,
        schema=schema,
        digest=sources_digest(sources),
        policies=policies,
        sources=dict(sources),
    )


def _compile_file(
    name: str,
    text: str,
    schema: cedarpy.Schema,
    policies: dict[str, PolicyInfo],
    documents: dict[str, Any],
) -> list[PolicyProblem]:
    problems: list[PolicyProblem] = []
    chunks, trailing_line = split_policies(text)
    if trailing_line:
        problems.append(PolicyProblem(name, trailing_line, "a policy is not finished: missing ';' at its end?"))
    owner = Path(name).stem if name.startswith(OWNERS_FOLDER + "/") else None
    for start_line, chunk in chunks:
        try:
            parsed = json.loads(cedarpy.policies_to_json_str(chunk))
        except ValueError as error:
            line = _line_of_message_token(str(error), chunk, start_line)
            problems.append(PolicyProblem(name, line, f"does not parse: {error}"))
            continue
        if parsed.get("templates"):
            problems.append(PolicyProblem(name, start_line, "templates (?principal, ?resource) are not supported"))
            continue
        document = next(iter(parsed["staticPolicies"].values()))
        annotations = document.get("annotations", {})
        policy_id = annotations.get("id", "")
        if not policy_id or not _POLICY_ID.match(policy_id):
            problems.append(
                PolicyProblem(name, start_line, 'every policy needs an @id("lower-case-words") annotation')
            )
            continue
        if policy_id in policies:
            other = policies[policy_id]
            problems.append(
                PolicyProblem(name, start_line, f"@id {policy_id!r} is also used at {other.file}:{other.line}")
            )
            continue
        result = cedarpy.validate_policies(chunk, schema)
        for issue in result.errors:
            line = _line_of_message_token(issue.error, chunk, start_line)
            detail = re.sub(r"^for policy `policy\d+`, ", "", issue.error)
            problems.append(PolicyProblem(name, line, f"policy {policy_id}: {detail}"))
        if owner is not None:
            if document["effect"] != "forbid":
                problems.append(
                    PolicyProblem(name, start_line, f"policy {policy_id}: owner files may only forbid, never permit")
                )
            else:
                refusal = owner_rule_refusal(document.get("conditions", []), owner)
                if refusal is not None:
                    token, why = refusal
                    problems.append(
                        PolicyProblem(
                            name,
                            line_of_code_token(chunk, start_line, token, owner),
                            f"policy {policy_id}: an owner rule must apply only to {owner}'s data: {why}; "
                            f'write when {{ resource.owners.contains("{owner}") && ... }}',
                        )
                    )
        policies[policy_id] = PolicyInfo(
            id=policy_id,
            file=name,
            line=start_line,
            effect=document["effect"],
            reason=str(annotations.get("reason", "")),
            text=chunk,
        )
        documents[policy_id] = document
    return problems


def split_policies(text: str) -> tuple[list[tuple[int, str]], int]:
    """Split Cedar text into its policies, each with the line it starts on.

    Cedar reports parse and validation errors without positions; splitting at
    each top-level ``;`` (outside strings, comments and brackets) lets every
    problem name its file and line. Returns the chunks and, when text follows
    the last ``;``, the line where that unfinished policy starts (else 0).
    """
    chunks: list[tuple[int, str]] = []
    index, size, depth, line = 0, len(text), 0, 1
    start: int | None = None
    start_line = 0
    while index < size:
        char = text[index]
        if char == "\n":
            line += 1
        elif char == "/" and text.startswith("//", index):
            end = text.find("\n", index)
            index = size if end < 0 else end
            continue
        elif not char.isspace():
            if start is None:
                start, start_line = index, line
            if char == '"':
                index += 1
                while index < size and text[index] != '"':
                    if text[index] == "\\":
                        index += 1
                    elif text[index] == "\n":
                        line += 1
                    index += 1
            elif char in "([{":
                depth += 1
            elif char in ")]}":
                depth -= 1
            elif char == ";" and depth <= 0:
                chunks.append((start_line, text[start : index + 1]))
                start, depth = None, 0
        index += 1
    return chunks, (start_line if start is not None else 0)


def _line_of_message_token(message: str, text: str, start_line: int) -> int:
    """The line in ``text`` of the first word the error message quotes, else its first line.

    Cedar's messages carry no positions but quote the offending names
    (`colour`, "unexpected token `String`", "failed to resolve types: Boolean").
    """
    candidates = [token for token in re.findall(r"`([^`]+)`", message) if not re.fullmatch(r"policy\d+", token)]
    tail = message.rsplit(": ", 1)[-1].strip()
    if tail and len(tail) < 80:
        candidates += [word.strip() for word in tail.split(",") if word.strip()]
    for token in candidates:
        pattern = re.compile(r"(?<![\w])" + re.escape(token) + r"(?![\w])")
        for offset, line in enumerate(text.split("\n")):
            code = line.split("//", 1)[0]
            if pattern.search(code):
                return start_line + offset
    return start_line
