"""A generated evaluation set: texts with seeded PII of known type and position.

Deterministic (seeded). Values are valid where validity is checked by the
recognizers (Luhn for cards, mod-97 for IBANs, SSN area rules, dialable
phone numbers), so a miss is the scanner's, not the generator's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FIRST = ["Maria", "James", "Aisha", "Robert", "Linda", "Michael", "Sarah", "David", "Emily", "Daniel", "Olivia", "Thomas"]
LAST = ["Garcia", "Smith", "Johnson", "Williams", "Brown", "Miller", "Davis", "Wilson", "Anderson", "Taylor", "Moore", "Clark"]
CITIES = ["Boston", "Chicago", "Seattle", "Denver", "Berlin", "Madrid", "Dublin", "Toronto", "Lisbon", "Paris", "London", "Austin"]
DOMAINS = ["example.com", "mail.example.org", "acme.io", "contoso.net"]

TEMPLATES: list[str] = [
    "Please contact {PERSON} at {EMAIL_ADDRESS} regarding the renewal.",
    "You can reach me on {PHONE_NUMBER} after five, thanks.",
    "My social security number is {US_SSN} if you need it for the form.",
    "The card number {CREDIT_CARD} was declined twice yesterday.",
    "Wire the refund to IBAN {IBAN_CODE} please.",
    "A login attempt from {IP_ADDRESS} was blocked by the firewall.",
    "{PERSON} moved to {LOCATION} last spring and started a new job.",
    "Our office in {LOCATION} ships orders every weekday.",
    "Send the invoice to {EMAIL_ADDRESS} and call {PHONE_NUMBER} to confirm.",
    "Customer {PERSON} (SSN {US_SSN}) disputed the charge on card {CREDIT_CARD}.",
    "The server at {IP_ADDRESS} forwards mail for {EMAIL_ADDRESS}.",
    "I spoke with {PERSON} in {LOCATION} about the delayed shipment.",
    "The router keeps disconnecting after the latest firmware update.",
    "Order 48213 shipped on time and the customer was happy.",
    "Reset the thermostat by holding the button for ten seconds.",
    "Version 2.3 of the app fixed the login problem for most users.",
]

PATTERN_TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS")
NER_TYPES = ("PERSON", "LOCATION")


@dataclass(frozen=True)
class Span:
    """One seeded value: its entity type and position in the text."""

    entity_type: str
    start: int
    end: int


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    digits = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return digits + str((10 - total % 10) % 10)


def _card(rng: random.Random) -> str:
    number = _luhn_complete(rng.choice(["4", "51", "53", "55"]), 16, rng)
    separator = rng.choice([" ", "-", ""])
    return separator.join(number[i : i + 4] for i in range(0, 16, 4))


def _iban(rng: random.Random) -> str:
    country, body = rng.choice(
        [
            ("DE", "".join(str(rng.randint(0, 9)) for _ in range(18))),
            ("GB", "NWBK" + "".join(str(rng.randint(0, 9)) for _ in range(14))),
            ("FR", "".join(str(rng.randint(0, 9)) for _ in range(23))),
        ]
    )
    rearranged = body + country + "00"
    numeric = "".join(str(int(char, 36)) for char in rearranged)
    check = 98 - int(numeric) % 97
    iban = f"{country}{check:02d}{body}"
    if rng.random() < 0.5:
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


def _ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(101, 665) if n not in (666,)])
    return f"{area:03d}-{rng.randint(10, 99):02d}-{rng.randint(1001, 9998):04d}"


def _phone(rng: random.Random) -> str:
    area = rng.choice([212, 312, 415, 617, 646, 718, 303, 206])
    exchange = rng.randint(201, 989)
    line = rng.randint(1000, 9999)
    return rng.choice(
        [f"({area}) {exchange}-{line}", f"{area}-{exchange}-{line}", f"+1 {area} {exchange} {line}", f"{area}.{exchange}.{line}"]
    )


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return ":".join(f"{rng.randint(0, 65535):x}" for _ in range(8))
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))


def _value(entity: str, rng: random.Random, person: tuple[str, str]) -> str:
    first, last = person
    if entity == "PERSON":
        return f"{first} {last}"
    if entity == "EMAIL_ADDRESS":
        return f"{first.lower()}.{last.lower()}@{rng.choice(DOMAINS)}"
    if entity == "LOCATION":
        return rng.choice(CITIES)
    return {"PHONE_NUMBER": _phone, "US_SSN": _ssn, "CREDIT_CARD": _card, "IBAN_CODE": _iban, "IP_ADDRESS": _ip}[entity](rng)


def generate(count: int = 400, seed: int = 7) -> list[tuple[str, list[Span]]]:
    """``count`` texts with the spans of every seeded value."""
    rng = random.Random(seed)
    items = []
    for index in range(count):
        template = TEMPLATES[index % len(TEMPLATES)]
        person = (rng.choice(FIRST), rng.choice(LAST))
        text, spans, position = "", [], 0
        while True:
            opening = template.find("{", position)
            if opening < 0:
                text += template[position:]
                break
            closing = template.index("}", opening)
            entity = template[opening + 1 : closing]
            text += template[position:opening]
            value = _value(entity, rng, person)
            spans.append(Span(entity, len(text), len(text) + len(value)))
            text += value
            position = closing + 1
        items.append((text, spans))
    return items


def precision_recall(
    items: list[tuple[str, list[Span]]], predictions: list[list[Span]], types: tuple[str, ...]
) -> dict[str, dict[str, float]]:
    """Per entity type: precision and recall, a prediction matching a seeded
    value of the same type when the two overlap."""
    scores: dict[str, dict[str, float]] = {}
    for entity in types:
        true_positive_predictions = predicted = found = seeded = 0
        for (_, gold), predicted_spans in zip(items, predictions, strict=True):
            gold_spans = [g for g in gold if g.entity_type == entity]
            mine = [p for p in predicted_spans if p.entity_type == entity]
            seeded += len(gold_spans)
            predicted += len(mine)
            found += sum(1 for g in gold_spans if any(p.start < g.end and g.start < p.end for p in mine))
            true_positive_predictions += sum(1 for p in mine if any(p.start < g.end and g.start < p.end for g in gold_spans))
        scores[entity] = {
            "precision": true_positive_predictions / predicted if predicted else 1.0,
            "recall": found / seeded if seeded else 1.0,
            "seeded": seeded,
            "predicted": predicted,
        }
    return scores
