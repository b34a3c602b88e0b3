"""Consumers as principals of the policy engine.

``policies`` sits below ``serving`` and never imports it: ``ServingConfig.ready()``
registers ``CONSUMER_PRINCIPALS`` so that ``policies`` can turn a ``Consumer``
into ``PrincipalFacts``, list consumers for simulation and find one by name.
"""

from __future__ import annotations

from policies.principals import PrincipalKind
from policies.requests import PrincipalFacts
from serving.models import Consumer


def facts_for_consumer(consumer: Consumer) -> PrincipalFacts:
    """A consumer as a principal, versioned so its decisions can be cached."""
    return PrincipalFacts(
        kind="Consumer",
        id=consumer.name,
        label=f"consumer {consumer.name}",
        groups=frozenset(consumer.groups),
        pii_clearances=frozenset(consumer.pii_clearances),
        purposes=frozenset(consumer.purposes),
        region=consumer.region,
        commercial=consumer.commercial,
        facts_version=consumer.facts_version,
    )


def _all_consumers() -> list[Consumer]:
    return list(Consumer.objects.order_by("name"))


def _consumer_named(name: str) -> Consumer | None:
    return Consumer.objects.filter(name=name).first()


CONSUMER_PRINCIPALS = PrincipalKind(
    kind="Consumer",
    model=Consumer,
    facts=facts_for_consumer,
    cache_key=lambda consumer: ("Consumer", consumer.pk, consumer.facts_version),
    label=lambda consumer: consumer.name,
    all=_all_consumers,
    named=_consumer_named,
)
