"""The evaluator: decides requests against a policy set and explains the answers.

Any error denies (fail closed). Pure Python on top of ``cedarpy``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import cedarpy
import orjson

from policies.explain import explain
from policies.loading import PolicyBundle
from policies.requests import Decision, DecisionRequest, error_decision


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
