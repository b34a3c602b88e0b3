"""The policy engine: Cedar policies read from files, decisions with reasons.

Pure Python on top of ``cedarpy``: no Django import, so the engine can be
benchmarked, tested and reused on its own. ``policies.services`` is the
Django-facing side (building facts from models, caching, the decision log,
simulation).

- ``compile_policies`` checks a set of policy files against the schema and
  builds one pre-parsed ``PolicySet``; every problem is reported with its file,
  line and message (``PolicyInvalid``).
- ``PolicyStore`` keeps the last good set and reloads it when the files change.
- ``Evaluator`` turns requests (``PrincipalFacts``, an action, ``ResourceFacts``,
  a context) into ``Decision`` objects: allowed or not, the deciding policies,
  the facts that triggered them, and a sentence a person can act on. Any error
  denies (fail closed).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import cedarpy
import orjson

from pedigree.errors import InvalidInput

logger = logging.getLogger(__name__)

SCHEMA_FILE = "schema.cedarschema"
OWNERS_FOLDER = "owners"
ACTIONS = ("dataset.read", "dataset.train", "model.deploy", "model.export", "endpoint.invoke")
PRINCIPAL_KINDS = ("User", "Consumer")
RESOURCE_KINDS = ("DatasetVersion", "ModelVersion", "Endpoint")
# Which principal and resource kinds each action applies to (as in the schema).
ACTION_TARGETS: dict[str, tuple[str, str]] = {
    "dataset.read": ("User", "DatasetVersion"),
    "dataset.train": ("User", "DatasetVersion"),
    "model.deploy": ("User", "ModelVersion"),
    "model.export": ("User", "ModelVersion"),
    "endpoint.invoke": ("Consumer", "Endpoint"),
}
PERMISSION_NAMES = ("training", "commercial_use", "attribution", "share_alike")
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
                            _line_of_code_token(chunk, start_line, token, owner),
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


def owner_rule_refusal(conditions: Sequence[Mapping[str, Any]], owner: str) -> tuple[str, str] | None:
    """Why a forbid in ``owners/<owner>.cedar`` may reach other teams' data, or None if it cannot.

    Checked on the policy's JSON form (Cedar's EST), not its text: the rule is
    limited to the team's data when one of its ``when`` clauses is a
    conjunction (``a && b && ...``, at the top level) with the term
    ``resource.owners.contains("<owner>")`` (or ``containsAll`` of a set that
    holds it). A forbid applies only when every ``when`` holds, so such a rule
    can never apply to data the team does not own, whatever its other terms
    and ``unless`` clauses say. Anything else is refused, with the construct
    that defeats the check: the term inside an ``unless`` (the rule applies
    to everyone else's data), under ``||`` (an alternative lets it apply
    without the team's data), under ``!``, or not there at all. Returns
    (the token to point at, or "" for the policy's first line; why).
    """
    whens = [condition["body"] for condition in conditions if condition.get("kind") == "when"]
    for body in whens:
        if any(_is_ownership_test(term, owner) for term in _conjuncts(body)):
            return None
    test = f'resource.owners.contains("{owner}")'
    for condition in conditions:
        if condition.get("kind") == "unless" and _mentions_owner(condition.get("body"), owner):
            return "unless", f"{test} inside `unless` makes the rule apply to every other team's data"
    for body in whens:
        operators = _operators_above_ownership(body, owner)
        if operators is None:
            continue
        if "||" in operators:
            return "||", f"{test} is one alternative of `||`: the other lets the rule apply to any team's data"
        if "!" in operators:
            return "!", f"{test} is negated with `!`: the rule would apply to every other team's data"
        return test, f"{test} is nested inside `{operators[0]}`, not required at the top level of `when`"
    return "", f"the rule does not require {test}"


def _conjuncts(node: Any) -> list[Any]:
    """The terms of a top-level ``a && b && c`` (the node itself when it is not one)."""
    if isinstance(node, dict) and set(node) == {"&&"}:
        both = node["&&"]
        return _conjuncts(both.get("left")) + _conjuncts(both.get("right"))
    return [node]


def _is_owners_attribute(node: Any) -> bool:
    return isinstance(node, dict) and node.get(".") == {"left": {"Var": "resource"}, "attr": "owners"}


def _is_ownership_test(node: Any, owner: str) -> bool:
    """``resource.owners.contains("<owner>")``, or ``containsAll`` of a literal set holding it."""
    if not isinstance(node, dict) or len(node) != 1:
        return False
    operator, operands = next(iter(node.items()))
    if not isinstance(operands, dict) or not _is_owners_attribute(operands.get("left")):
        return False
    right = operands.get("right")
    if operator == "contains":
        return right == {"Value": owner}
    if operator == "containsAll":
        return isinstance(right, dict) and {"Value": owner} in (right.get("Set") or [])
    return False


def _operators_above_ownership(node: Any, owner: str, above: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The operators between the top of ``node`` and its first ownership test (None: no test)."""
    if _is_ownership_test(node, owner):
        return above
    if isinstance(node, dict):
        for key, value in node.items():
            found = _operators_above_ownership(value, owner, above + (key,) if key not in {"left", "right", "arg"} else above)
            if found is not None:
                return found
    if isinstance(node, list):
        for value in node:
            found = _operators_above_ownership(value, owner, above)
            if found is not None:
                return found
    return None


def _mentions_owner(node: Any, owner: str) -> bool:
    """Whether ``node`` holds an ownership test for ``owner`` anywhere."""
    return _operators_above_ownership(node, owner) is not None


def _line_of_code_token(chunk: str, start_line: int, token: str, owner: str = "") -> int:
    """The line of ``token`` in a policy's code (not in a string or a comment): for
    ``!`` and ``||`` the one nearest the ownership test, else the first."""
    if not token:
        return start_line
    code = _blank_strings_and_comments(chunk)  # same length as chunk: positions agree
    mention = re.search(r"\.\s*owners\s*\.\s*contains", code)
    anchor = mention.start() if mention else -1
    if token.startswith("resource.owners"):
        position = anchor
    elif token in {"!", "||"}:
        pattern = r"!(?!=)" if token == "!" else r"\|\|"
        found = [match.start() for match in re.finditer(pattern, code)]
        if token == "!" and anchor >= 0:
            found = [at for at in found if at < anchor] or found
        position = min(found, key=lambda at: abs(at - anchor)) if found else -1
    else:
        match = re.search(rf"\b{re.escape(token)}\b", code)
        position = match.start() if match else -1
    return start_line + (chunk.count("\n", 0, position) if position >= 0 else 0)


def _blank_strings_and_comments(text: str) -> str:
    """``text`` with string contents and ``//`` comments replaced by spaces (newlines kept)."""
    out: list[str] = []
    index, size = 0, len(text)
    while index < size:
        char = text[index]
        if char == "/" and text.startswith("//", index):
            end = text.find("\n", index)
            end = size if end < 0 else end
            out.append(" " * (end - index))
            index = end
            continue
        if char == '"':
            out.append('"')
            index += 1
            while index < size and text[index] != '"':
                step = 2 if text[index] == "\\" else 1
                out.append("".join("\n" if c == "\n" else " " for c in text[index : index + step]))
                index += step
            if index < size:
                out.append('"')
                index += 1
            continue
        out.append(char)
        index += 1
    return "".join(out)


# --- Facts ------------------------------------------------------------------------


# Facts are immutable records built on every uncached decision, so they are
# named tuples: as read-only as a frozen dataclass and about three times
# cheaper to build (a frozen dataclass sets each field through
# object.__setattr__). Change one with ``facts._replace(field=value)``.

_NO_MAPPING: Mapping[str, Any] = MappingProxyType({})


class PrincipalFacts(NamedTuple):
    """Who asks: a user or a consumer, with the attributes policies read.

    ``facts_version`` lets the decision cache trust a previous answer; leave it
    ``None`` when the facts are not versioned (they are then rebuilt each call).
    """

    kind: str
    id: str
    label: str = ""
    groups: frozenset[str] = frozenset()
    is_admin: bool = False
    pii_clearances: frozenset[str] = frozenset()
    purposes: frozenset[str] = frozenset()
    region: str = ""
    commercial: bool = False
    facts_version: int | None = None

    def to_entity(self) -> dict[str, Any]:
        """The Cedar entity (JSON form) for this principal."""
        return {
            "uid": {"type": self.kind, "id": self.id},
            "attrs": {
                "name": self.id,
                "is_admin": self.is_admin,
                "groups": sorted(self.groups),
                "pii_clearances": sorted(self.pii_clearances),
                "purposes": sorted(self.purposes),
                "region": self.region,
                "commercial": self.commercial,
            },
            "parents": [],
        }

    @property
    def display(self) -> str:
        """How sentences name the principal (e.g. "consumer web-frontend")."""
        return self.label or f"{self.kind.lower()} {self.id}"


class ResourceFacts(NamedTuple):
    """What is asked about: a dataset version, model version or endpoint, with its
    effective lineage facts.

    This is the typed interface every asset kind plugs into: the catalog builds
    it from a dataset version (``policies.facts``), and model versions and
    endpoints build it from their lineage. ``origins`` says where an inherited
    fact comes from, keyed ``"<fact>:<value>"`` (e.g. ``"pii_types:US_SSN"`` ->
    ``("claims-2024 v2",)``), so reasons can name the upstream data;
    ``derived_verb`` phrases that link ("was trained on"). ``valid_until``
    (seconds since the epoch) is the instant at which time alone changes
    these facts (an expiry, a lapsing quarantine exception): a decision on
    them ends there, and facts read before it are stale after it.
    """

    kind: str
    id: str
    label: str
    pii_types: frozenset[str] = frozenset()
    licences: frozenset[str] = frozenset()
    permissions: Mapping[str, bool] = _NO_MAPPING
    purposes: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    owners: frozenset[str] = frozenset()
    stewards: frozenset[str] = frozenset()
    status: str = "active"
    quarantined: bool = False
    facts_version: int | None = None
    origins: Mapping[str, tuple[str, ...]] = _NO_MAPPING
    derived_verb: str = "was trained on"
    # Teams owning data upstream whose PII scan is not complete (unscanned,
    # running or failed): see policies/pii_scan.cedar.
    pii_scan_incomplete: frozenset[str] = frozenset()
    valid_until: float | None = None

    def to_entity(self) -> dict[str, Any]:
        """The Cedar entity (JSON form) for this resource."""
        permissions = self.permissions
        return {
            "uid": {"type": self.kind, "id": self.id},
            "attrs": {
                "name": self.label,
                "pii_types": sorted(self.pii_types),
                "pii_scan_incomplete": sorted(self.pii_scan_incomplete),
                "licences": sorted(self.licences),
                "permits": {  # PERMISSION_NAMES, spelled out: this runs on every uncached decision
                    "training": bool(permissions["training"]),
                    "commercial_use": bool(permissions["commercial_use"]),
                    "attribution": bool(permissions["attribution"]),
                    "share_alike": bool(permissions["share_alike"]),
                },
                "purposes": sorted(self.purposes),
                "regions": sorted(self.regions),
                "owners": sorted(self.owners),
                "stewards": sorted(self.stewards),
                "quarantined": self.quarantined,
                "status": self.status,
                "facts_version": self.facts_version or 0,
            },
            "parents": [],
        }

    def sources_of(self, fact: str, values: Iterable[str]) -> list[str]:
        """The upstream assets (labels) that bring ``values`` of ``fact``, when not this one."""
        found: set[str] = set()
        for value in values:
            found.update(self.origins.get(f"{fact}:{value}", ()))
        found.discard(self.label)
        return sorted(found)


def principal_from_data(data: Mapping[str, Any]) -> PrincipalFacts:
    """Build ``PrincipalFacts`` from plain data (policy tests, API what-ifs)."""
    known = set(PrincipalFacts._fields)
    unknown = set(data) - known
    if unknown:
        raise InvalidInput(f"principal has unknown fields: {', '.join(sorted(unknown))}", field="principal")
    if data.get("kind") not in PRINCIPAL_KINDS or not data.get("id"):
        raise InvalidInput(
            f"principal needs kind ({' or '.join(PRINCIPAL_KINDS)}) and id", field="principal"
        )
    values = dict(data)
    for name in ("groups", "pii_clearances", "purposes"):
        values[name] = frozenset(_string_list(values.get(name, []), f"principal.{name}"))
    return PrincipalFacts(**values)


def resource_from_data(data: Mapping[str, Any]) -> ResourceFacts:
    """Build ``ResourceFacts`` from plain data (policy tests, API what-ifs)."""
    known = set(ResourceFacts._fields)
    unknown = set(data) - known
    if unknown:
        raise InvalidInput(f"resource has unknown fields: {', '.join(sorted(unknown))}", field="resource")
    if data.get("kind") not in RESOURCE_KINDS or not data.get("id"):
        raise InvalidInput(f"resource needs kind ({', '.join(RESOURCE_KINDS)}) and id", field="resource")
    values = dict(data)
    values.setdefault("label", f"{values['kind']} {values['id']}")
    for name in ("pii_types", "licences", "purposes", "regions", "owners", "stewards", "pii_scan_incomplete"):
        values[name] = frozenset(_string_list(values.get(name, []), f"resource.{name}"))
    permissions = values.get("permissions") or {}
    unknown_permissions = set(permissions) - set(PERMISSION_NAMES)
    if unknown_permissions:
        raise InvalidInput(
            f"unknown permission {sorted(unknown_permissions)[0]!r}: use {', '.join(PERMISSION_NAMES)}",
            field="resource.permissions",
        )
    values["permissions"] = {name: bool(permissions.get(name, False)) for name in PERMISSION_NAMES}
    values["origins"] = {key: tuple(labels) for key, labels in (values.get("origins") or {}).items()}
    until = values.get("valid_until")
    if until is not None and (isinstance(until, bool) or not isinstance(until, int | float)):
        raise InvalidInput("resource.valid_until must be seconds since the epoch, or null", field="resource.valid_until")
    return ResourceFacts(**values)


def _string_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list | tuple | set | frozenset) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{name} must be a list of strings", field=name)
    return list(value)


# --- Decisions ----------------------------------------------------------------------


class DecisionRequest(NamedTuple):
    """One question for the engine: may ``principal`` do ``action`` to ``resource``?"""

    principal: PrincipalFacts
    action: str
    resource: ResourceFacts
    context: Mapping[str, Any] = _NO_MAPPING


class Decision:
    """The engine's answer, with its reasons.

    ``outcome`` is ``allow``, ``deny`` or ``error`` (an error always denies).
    ``policies`` are the ``@id`` of the deciding policies (the permits that
    allowed, or the forbids that denied; empty when nothing permitted),
    ``facts`` the facts that triggered them, ``reason`` a sentence a person can
    act on. The digests identify the inputs and the policy set in force.

    The facts and the sentence are composed when first read (a denial
    message, the decision log, the API), so a caller that only needs
    ``allowed`` of a decision the log does not keep never pays for them.
    Treat a decision as immutable.
    """

    __slots__ = (
        "allowed",
        "outcome",
        "policies",
        "principal",
        "action",
        "resource",
        "context",
        "policy_digest",
        "inputs_digest",
        "_facts",
        "_reason",
        "_explain",
        "_log_detail",
    )

    def __init__(
        self,
        allowed: bool,
        outcome: str,
        policies: tuple[str, ...],
        principal: str,
        action: str,
        resource: str,
        context: Mapping[str, Any],
        policy_digest: str,
        inputs_digest: str,
        facts: Mapping[str, Any] | None = None,
        reason: str | None = None,
        explain: Callable[[], tuple[dict[str, Any], str]] | None = None,
    ) -> None:
        if reason is None and explain is None:
            raise ValueError("a decision needs a reason or a way to explain itself")
        self.allowed = allowed
        self.outcome = outcome
        self.policies = policies
        self.principal = principal
        self.action = action
        self.resource = resource
        self.context = context
        self.policy_digest = policy_digest
        self.inputs_digest = inputs_digest
        self._facts = facts if facts is not None else ({} if reason is not None else None)
        self._reason = reason
        self._explain = explain
        self._log_detail: tuple[str, str, str, str] | None = None

    def log_detail(self) -> tuple[str, str, str, str]:
        """What the decision said, as JSON text for the decision log (computed once):
        context, policies and facts as JSON, and the reason."""
        if self._log_detail is None:
            self._log_detail = (
                orjson.dumps(dict(self.context), option=orjson.OPT_SORT_KEYS).decode(),
                orjson.dumps(self.policies).decode(),
                orjson.dumps(self.facts, option=orjson.OPT_SORT_KEYS).decode(),
                self.reason,
            )
        return self._log_detail

    def _explained(self) -> None:
        assert self._explain is not None
        facts, reason = self._explain()
        self._facts, self._reason, self._explain = facts, reason, None

    @property
    def facts(self) -> Mapping[str, Any]:
        """The facts that triggered the deciding policies, by policy."""
        if self._reason is None:
            self._explained()
        assert self._facts is not None
        return self._facts

    @property
    def reason(self) -> str:
        """A sentence a person can act on."""
        if self._reason is None:
            self._explained()
        assert self._reason is not None
        return self._reason

    def __repr__(self) -> str:
        return f"Decision({self.outcome}, {self.principal} {self.action} {self.resource}, policies={self.policies})"

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values (API bodies, reports)."""
        return {
            "allowed": self.allowed,
            "outcome": self.outcome,
            "policies": list(self.policies),
            "facts": dict(self.facts),
            "reason": self.reason,
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "context": dict(self.context),
            "policy_digest": self.policy_digest,
            "inputs_digest": self.inputs_digest,
        }


def error_decision(
    message: str,
    *,
    principal: str = "",
    action: str = "",
    resource: str = "",
    context: Mapping[str, Any] | None = None,
    policy_digest: str = "",
    inputs_digest: str = "",
) -> Decision:
    """A denial caused by an error: the engine fails closed."""
    return Decision(
        allowed=False,
        outcome="error",
        policies=(),
        facts={"error": message},
        reason=f"denied: the policy engine could not decide ({message}); it denies when in doubt",
        principal=principal,
        action=action,
        resource=resource,
        context=dict(context or {}),
        policy_digest=policy_digest,
        inputs_digest=inputs_digest,
    )


class Evaluator:
    """Evaluates requests against a ``PolicyBundle`` and explains the answers.

    Parsed Cedar entities are kept by content (the exact JSON of the request's
    principal and resource), so the same facts are parsed once however often
    they are asked about, and changed facts are never mistaken for old ones.
    """

    def __init__(self, max_entities: int = 20_000) -> None:
        self._entities: dict[bytes, Any] = {}
        self._max_entities = max_entities

    def clear(self) -> None:
        """Forget the parsed entities (tests, benchmarks)."""
        self._entities.clear()

    def decide(self, bundle: PolicyBundle, request: DecisionRequest) -> Decision:
        """Decide one request. Never raises: an error becomes a denying error decision."""
        principal, resource, action = request.principal, request.resource, request.action
        try:
            entities_json = orjson.dumps((principal.to_entity(), resource.to_entity()))
            context_json = orjson.dumps(request.context).decode() if request.context else "{}"
            inputs_digest = _digest_inputs(request, entities_json, context_json)
            entities = self._entities.get(entities_json)
            if entities is None:
                entities = cedarpy._internal.Entities.from_json_str(entities_json.decode(), bundle.schema)
                if len(self._entities) >= self._max_entities:
                    self._entities.clear()
                self._entities[entities_json] = entities
            cedar_request = {
                "principal": {"type": principal.kind, "id": principal.id},
                "action": {"type": "Action", "id": action},
                "resource": {"type": resource.kind, "id": resource.id},
                "context": context_json,
            }
            (answer,) = cedarpy._internal.is_authorized_batch(
                [cedar_request], bundle.policy_set, entities, bundle.schema, False
            )
        except Exception as error:  # fail closed: any engine failure denies
            return error_decision(
                f"{type(error).__name__}: {error}",
                principal=f"{principal.kind}::{principal.id}",
                action=action,
                resource=f"{resource.kind}::{resource.id}",
                context=request.context,
                policy_digest=bundle.digest,
            )
        return self._interpret(bundle, request, orjson.loads(answer), inputs_digest)

    def decide_batch(self, bundle: PolicyBundle, requests: Sequence[DecisionRequest]) -> list[Decision]:
        """Decide many requests in one engine call (one entity set, one evaluation pass).

        Requests whose facts cannot be put in the shared entity set (the same
        principal or resource described two ways) are decided one by one.
        """
        if not requests:
            return []
        entities: dict[tuple[str, str], dict[str, Any]] = {}
        batchable: list[int] = []
        alone: list[int] = []
        for index, request in enumerate(requests):
            clash = False
            for entity in (request.principal.to_entity(), request.resource.to_entity()):
                key = (entity["uid"]["type"], entity["uid"]["id"])
                if entities.setdefault(key, entity) != entity:
                    clash = True
            (alone if clash else batchable).append(index)
        results: list[Decision | None] = [None] * len(requests)
        try:
            entities_json = orjson.dumps(list(entities.values())).decode()
            handle = cedarpy._internal.Entities.from_json_str(entities_json, bundle.schema)
            cedar_requests = []
            for index in batchable:
                request = requests[index]
                cedar_requests.append(
                    {
                        "principal": {"type": request.principal.kind, "id": request.principal.id},
                        "action": {"type": "Action", "id": request.action},
                        "resource": {"type": request.resource.kind, "id": request.resource.id},
                        "context": orjson.dumps(request.context).decode() if request.context else "{}",
                    }
                )
            answers = cedarpy._internal.is_authorized_batch(
                cedar_requests, bundle.policy_set, handle, bundle.schema, False
            )
            for index, answer in zip(batchable, answers, strict=True):
                request = requests[index]
                digest = _inputs_digest(request)
                results[index] = self._interpret(bundle, request, orjson.loads(answer), digest)
        except Exception:
            # One bad request must not deny the others: decide each alone.
            alone = list(range(len(requests)))
        for index in alone:
            results[index] = self.decide(bundle, requests[index])
        return [result for result in results if result is not None]

    def _interpret(
        self, bundle: PolicyBundle, request: DecisionRequest, answer: Mapping[str, Any], inputs_digest: str
    ) -> Decision:
        principal, resource, action = request.principal, request.resource, request.action
        principal_ref = f"{principal.kind}::{principal.id}"
        resource_ref = f"{resource.kind}::{resource.id}"
        diagnostics = answer.get("diagnostics") or {}
        errors = diagnostics.get("errors")
        verdict = answer.get("decision")
        if errors or (verdict != "Allow" and verdict != "Deny"):
            message = "; ".join(str(error) for error in errors or ()) or f"no decision ({verdict})"
            return error_decision(
                message,
                principal=principal_ref,
                action=action,
                resource=resource_ref,
                context=request.context,
                policy_digest=bundle.digest,
                inputs_digest=inputs_digest,
            )
        deciding = tuple(sorted(diagnostics.get("reason") or ()))
        allowed = verdict == "Allow"
        # Positional: this runs on every uncached decision. The facts and the
        # sentence are composed when first read (``explain``).
        return Decision(
            allowed,
            "allow" if allowed else "deny",
            deciding,
            principal_ref,
            action,
            resource_ref,
            request.context,
            bundle.digest,
            inputs_digest,
            None,
            None,
            functools.partial(explain, bundle, request, allowed, deciding),
        )


def _inputs_digest(request: DecisionRequest) -> str:
    entities_json = orjson.dumps((request.principal.to_entity(), request.resource.to_entity()))
    context_json = orjson.dumps(request.context).decode() if request.context else "{}"
    return _digest_inputs(request, entities_json, context_json)


def _digest_inputs(request: DecisionRequest, entities_json: bytes, context_json: str) -> str:
    """sha256 of everything a decision and its explanation read: the Cedar
    entities, the action, the context, and the labels and origins that the
    reason quotes. Equal digests under one policy set mean equal decisions
    with equal reasons (the decision log stores each reason once on that basis)."""
    principal, resource = request.principal, request.resource
    origins = resource.origins if type(resource.origins) is dict else dict(resource.origins)
    quoted = orjson.dumps((principal.label, resource.derived_verb, origins), option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(entities_json)
    digest.update(f"\0{request.action}\0{context_json}\0".encode())
    digest.update(quoted)
    return digest.hexdigest()


# --- The store: the policy set in force, reloaded when its files change ------------------


class PolicyStore:
    """Holds the policy set in force and reloads it when the files change.

    A change is validated before it is used: an invalid change keeps the last
    good set and is reported in ``last_error``. Checks for changes happen at
    most every ``interval`` seconds, so a decision usually costs one clock read.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bundle: PolicyBundle | None = None
        self._directory: str | None = None
        self._directory_given: object = None
        self._signature: tuple[tuple[str, int, int], ...] | None = None
        self._next_check = 0.0
        self.last_error: PolicyInvalid | None = None
        self.last_checked_at = 0.0
        self.on_reload: list[Callable[[PolicyBundle], None]] = []

    def current(self, directory: Path | str, interval: float = 1.0) -> PolicyBundle:
        """The policy set in force for ``directory``; raises ``PolicyInvalid`` if none is good."""
        bundle = self._bundle
        if (
            bundle is not None
            and time.monotonic() < self._next_check
            and (directory is self._directory_given or self._directory == str(directory))
        ):
            return bundle
        with self._lock:
            self._refresh(str(directory))
            self._directory_given = directory
            self._next_check = time.monotonic() + interval
        if self._bundle is None:
            raise self.last_error or PolicyInvalid([PolicyProblem(str(directory), 0, "no policies loaded")])
        return self._bundle

    def reload(self, directory: Path | str) -> PolicyBundle:
        """Check the files now, whatever the interval; returns the set in force."""
        with self._lock:
            self._signature = None if self._directory == str(directory) else self._signature
            self._refresh(str(directory))
        if self._bundle is None:
            raise self.last_error or PolicyInvalid([PolicyProblem(str(directory), 0, "no policies loaded")])
        return self._bundle

    def _refresh(self, directory: str) -> None:
        self.last_checked_at = time.time()
        signature = sources_signature(directory)
        if directory == self._directory and signature == self._signature:
            return
        try:
            bundle = load_policy_directory(directory)
        except PolicyInvalid as error:
            if directory != self._directory:
                self._bundle = None  # never serve another folder's policies
            self._directory = directory
            self._signature = signature
            self.last_error = error
            logger.error("policy change rejected, keeping the last good policy set: %s", error.message)
            return
        previous = self._bundle
        self._bundle, self._directory, self._signature, self.last_error = bundle, directory, signature, None
        if previous is None or previous.digest != bundle.digest:
            if previous is not None:
                logger.info("policy set %s reloaded from %s (%d policies)", bundle.digest[:12], directory, len(bundle.policies))
            for callback in self.on_reload:
                callback(bundle)

    @property
    def bundle(self) -> PolicyBundle | None:
        """The policy set in force, without checking the files."""
        return self._bundle


from policies.explain import explain  # noqa: E402  (explain.py reads this module's types)
