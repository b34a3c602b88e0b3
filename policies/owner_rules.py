"""Owner rules: a team's ``owners/<team>.cedar`` may only forbid, and only on its own data.

The limit is checked on the policy's structure (Cedar's JSON form), not its
text: some ``when`` clause must be a top-level conjunction holding the term
``resource.owners.contains("<team>")``. Pure Python, no Django import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any


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


def line_of_code_token(chunk: str, start_line: int, token: str, owner: str = "") -> int:
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
