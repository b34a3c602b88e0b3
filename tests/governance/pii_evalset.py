"""A generated evaluation set for the PII scanner: seeded PII of known type and
exact position, in varied formats, spellings and languages, mixed with
look-alike values that are not PII.

Deterministic (seeded). Values are valid where the recognizers check validity
(Luhn for cards, mod-97 for IBANs, SSN area rules, dialable phone numbers), so
a miss is the scanner's, not the generator's. What makes it harder than a
handful of templates:

- names from many languages (Spanish, German, French, Polish, Irish, Dutch,
  Nigerian, Indian, Arabic, Chinese, Japanese, Vietnamese, Russian), with
  accents, particles and apostrophes, titled ("Dr. Okafor"), lower-cased in
  chat, first names alone;
- places of several words and other spellings ("São Paulo", "Frankfurt am
  Main"), countries as well as cities;
- emails with plus tags, digits, sub-domains, capitals, and a few written out
  to dodge filters ("maria at example dot com");
- phone numbers in US and international formats, with extensions;
- SSNs with dashes, spaces or none; cards of Visa, Mastercard and Amex
  grouping, with spaces, dashes or none; IBANs of several countries, grouped
  or compact; IPv4 and IPv6 (compressed too); dates of birth in three formats;
- free text of several sentences and chat-style messages;
- look-alike negatives that carry no gold span: order numbers, invoice and
  ticket ids, tracking numbers, SKUs, version strings, amounts, card-length
  numbers failing Luhn, SSN-shaped part numbers of the wrong length.

Scoring (``score``) is by exact span: a finding counts only when its type,
start and end all equal a seeded value's. Every other finding is a false
positive, of whatever type the scanner gave it (URL inside an email, a bank
number on an order id, a date on a version string), and is reported under
that type.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

# --- Values ----------------------------------------------------------------------------

NAMES: list[tuple[str, str]] = [
    ("María José", "Hernández"), ("José", "Rodríguez"), ("Jürgen", "Müller"), ("Françoise", "Lefèvre"),
    ("Małgorzata", "Wiśniewska"), ("Siobhán", "O'Brien"), ("Jan", "van der Berg"), ("Chinedu", "Okafor"),
    ("Ngozi", "Adeyemi"), ("Priya", "Raghunathan"), ("Arjun", "Venkatesh"), ("Mohammed", "Al-Farsi"),
    ("Fatima", "Haddad"), ("Wei", "Zhang"), ("Xiaoling", "Chen"), ("Haruki", "Tanaka"), ("Yuki", "Sato"),
    ("Nguyen", "Van An"), ("Dmitri", "Ivanov"), ("Olga", "Smirnova"), ("Maria", "Garcia"), ("James", "Smith"),
    ("Aisha", "Bello"), ("Robert", "Johnson"), ("Linda", "Kowalski"), ("Søren", "Kierkegaard-Nielsen"),
    ("Björn", "Lindqvist"), ("Ana", "Pereira"), ("Giulia", "Rossi"), ("Kwame", "Mensah"),
]
TITLES = ["Dr.", "Mr.", "Ms.", "Mrs.", "Prof."]
PLACES = [
    "São Paulo", "New York", "Kuala Lumpur", "Frankfurt am Main", "Mexico City", "Lagos", "Mumbai", "Osaka",
    "Hanoi", "Kraków", "Dublin", "Rotterdam", "Chicago", "Toronto", "Lisbon", "Nairobi", "Germany", "Brazil",
    "Japan", "Nigeria", "Vietnam", "Poland", "Ireland", "Canada",
]
DOMAINS = ["example.com", "mail.example.org", "acme.io", "contoso.net", "corp.example.co.uk", "posteo.de"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]

PATTERN_TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS")
NER_TYPES = ("PERSON", "LOCATION", "DATE_TIME")
SEEDED_TYPES = PATTERN_TYPES + NER_TYPES


@dataclass(frozen=True)
class Span:
    """One value: its entity type and position in the text."""

    entity_type: str
    start: int
    end: int


def _ascii(text: str) -> str:
    table = str.maketrans("áàâãäåçéèêëíìîïñóòôõöøúùûüýßłśźżćńąęđ", "aaaaaaceeeeiiiinoooooouuuuyslszzcnaed")
    return re.sub(r"[^a-z0-9]+", "", text.lower().translate(table))


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    digits = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    return digits + str(_luhn_check_digit(digits))


def _luhn_check_digit(digits: str) -> int:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


def _card(rng: random.Random) -> str:
    kind = rng.choice(["visa", "mastercard", "amex"])
    separator = rng.choice([" ", "-", ""])
    if kind == "amex":
        number = _luhn_complete(rng.choice(["34", "37"]), 15, rng)
        return separator.join([number[:4], number[4:10], number[10:]])
    number = _luhn_complete("4" if kind == "visa" else rng.choice(["51", "53", "55"]), 16, rng)
    return separator.join(number[i : i + 4] for i in range(0, 16, 4))


def _not_luhn_card(rng: random.Random) -> str:
    """Sixteen digits grouped like a card whose check digit is wrong."""
    body = "4" + "".join(str(rng.randint(0, 9)) for _ in range(14))
    number = body + str((_luhn_check_digit(body) + rng.randint(1, 9)) % 10)
    return " ".join(number[i : i + 4] for i in range(0, 16, 4))


def _iban(rng: random.Random) -> str:
    country, body = rng.choice(
        [
            ("DE", "".join(str(rng.randint(0, 9)) for _ in range(18))),
            ("GB", "NWBK" + "".join(str(rng.randint(0, 9)) for _ in range(14))),
            ("FR", "".join(str(rng.randint(0, 9)) for _ in range(23))),
            ("ES", "".join(str(rng.randint(0, 9)) for _ in range(20))),
            ("NL", "ABNA" + "".join(str(rng.randint(0, 9)) for _ in range(10))),
            ("PL", "".join(str(rng.randint(0, 9)) for _ in range(24))),
        ]
    )
    numeric = "".join(str(int(char, 36)) for char in body + country + "00")
    iban = f"{country}{98 - int(numeric) % 97:02d}{body}"
    if rng.random() < 0.5:
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


def _ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(101, 899) if n != 666])
    group, serial = rng.randint(10, 99), rng.randint(1001, 9998)
    separator = rng.choice(["-", "-", " ", ""])
    return f"{area:03d}{separator}{group:02d}{separator}{serial:04d}"


def _phone(rng: random.Random) -> str:
    area, exchange, line = rng.choice([212, 312, 415, 617, 646, 718, 303, 206]), rng.randint(201, 989), rng.randint(1000, 9999)
    return rng.choice(
        [
            f"({area}) {exchange}-{line}",
            f"{area}-{exchange}-{line}",
            f"+1 {area} {exchange} {line}",
            f"{area}.{exchange}.{line}",
            f"+1-{area}-{exchange}-{line}",
            f"+44 20 7946 {rng.randint(1000, 9999)}",
            f"+49 30 {rng.randint(200, 999)} {rng.randint(1000, 9999)}",
            f"+33 1 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        ]
    )


def _ip(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.15:
        return ":".join(f"{rng.randint(0, 65535):x}" for _ in range(8))
    if roll < 0.25:
        return f"2001:db8:{rng.randint(1, 65535):x}::{rng.randint(1, 65535):x}"
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))


def _email(rng: random.Random, person: tuple[str, str]) -> str:
    first, last = _ascii(person[0]), _ascii(person[1])
    local = rng.choice(
        [f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}{rng.randint(1, 99)}", f"{first}+billing", f"{last.upper()}.{first.title()}"]
    )
    return f"{local}@{rng.choice(DOMAINS)}"


def _date_of_birth(rng: random.Random) -> str:
    year, month, day = rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice([f"{MONTHS[month - 1]} {day}, {year}", f"{year}-{month:02d}-{day:02d}", f"{day} {MONTHS[month - 1]} {year}"])


def _person(rng: random.Random, person: tuple[str, str]) -> str:
    first, last = person
    return rng.choice([f"{first} {last}", f"{first} {last}", f"{rng.choice(TITLES)} {last}", f"{last}, {first}"])


# --- Look-alike negatives: never PII, carry no gold span ----------------------------------


def _negative(kind: str, rng: random.Random) -> str:
    makers: dict[str, Callable[[], str]] = {
        "ORDER": lambda: f"#{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        "INVOICE": lambda: f"INV-{rng.randint(2019, 2026)}-{rng.randint(0, 999999):06d}",
        "TICKET": lambda: f"TCK-{rng.randint(10000, 99999)}",
        "TRACKING": lambda: f"1Z{rng.randint(100, 999)}AA{rng.randint(10**9, 10**10 - 1)}",
        "SKU": lambda: f"SKU {rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(100, 999)}",
        "VERSION": lambda: f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 30)}",
        "AMOUNT": lambda: f"${rng.randint(10, 9999):,}.{rng.randint(0, 99):02d}",
        "NOT_LUHN": lambda: _not_luhn_card(rng),
        "PART": lambda: f"{rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(100, 999)}",
        "QUANTITY": lambda: f"{rng.randint(2, 500)} units",
    }
    return makers[kind]()


# --- Templates -------------------------------------------------------------------------------
# {TYPE} seeds a value with a gold span; {NEG:KIND} a look-alike with none.

TEMPLATES: list[str] = [
    # Short, one value each, the formats varied by the generators.
    "Please contact {PERSON} at {EMAIL_ADDRESS} regarding the renewal.",
    "You can reach me on {PHONE_NUMBER} after five, thanks.",
    "My social security number is {US_SSN} if you need it for the form.",
    "The card number {CREDIT_CARD} was declined twice.",
    "Wire the refund to IBAN {IBAN_CODE} please.",
    "A login attempt from {IP_ADDRESS} was blocked by the firewall.",
    "{PERSON} moved to {LOCATION} and started a new job there.",
    "Date of birth: {DATE_TIME}. Policy holder: {PERSON}.",
    # Free text, several sentences, values among look-alikes.
    "Hi team, order {NEG:ORDER} for {PERSON} arrived damaged. She paid {NEG:AMOUNT} with card {CREDIT_CARD} "
    "and wants a refund. Invoice {NEG:INVOICE} is attached; call her on {PHONE_NUMBER}.",
    "Following up on ticket {NEG:TICKET}: the parcel ({NEG:TRACKING}) left {LOCATION} on time, "
    "but {PERSON} says it never arrived. Firmware {NEG:VERSION} is installed on the hub at {IP_ADDRESS}.",
    "New hire paperwork for {PERSON}, born {DATE_TIME}: SSN {US_SSN}, salary to {IBAN_CODE}, "
    "work email {EMAIL_ADDRESS}. Laptop {NEG:SKU} ordered.",
    "We shipped {NEG:QUANTITY} of part {NEG:PART} to the warehouse in {LOCATION}; invoice {NEG:INVOICE} "
    "comes to {NEG:AMOUNT}. Questions to {EMAIL_ADDRESS}.",
    # Chat style: lower case, no punctuation to speak of.
    "hey its {person_lower} again, my number changed to {PHONE_NUMBER} lmk",
    "pls send it to {EMAIL_ADDRESS} not the old one thx",
    "ok so {first_name} said the server {IP_ADDRESS} is down again??",
    # Written out to dodge filters: still an email address.
    "Write to me at {obfuscated_email} if the form fails.",
    # Negatives only: any finding here is a false positive.
    "Order {NEG:ORDER} shipped on time, tracking {NEG:TRACKING}.",
    "Invoice {NEG:INVOICE} for {NEG:AMOUNT} is due; reference ticket {NEG:TICKET}.",
    "Please update to version {NEG:VERSION}; build {NEG:SKU} fixed the crash.",
    "The test card {NEG:NOT_LUHN} should be rejected by the checkout.",
    "Replace part {NEG:PART} and order {NEG:QUANTITY} more.",
    "The router keeps disconnecting after the latest firmware update.",
    "Reset the thermostat by holding the button for ten seconds.",
]


def _render(template: str, rng: random.Random, person: tuple[str, str]) -> tuple[str, list[Span]]:
    text, spans, position = "", [], 0
    for match in re.finditer(r"\{([A-Za-z_:]+)\}", template):
        text += template[position : match.start()]
        placeholder = match.group(1)
        entity: str | None = None
        if placeholder.startswith("NEG:"):
            value = _negative(placeholder[4:], rng)
        elif placeholder == "person_lower":
            value, entity = f"{person[0]} {person[1]}".lower(), "PERSON"
        elif placeholder == "first_name":
            value, entity = person[0], "PERSON"
        elif placeholder == "obfuscated_email":
            value, entity = f"{_ascii(person[0])} at {rng.choice(DOMAINS).replace('.', ' dot ')}", "EMAIL_ADDRESS"
        else:
            entity = placeholder
            value = {
                "PERSON": lambda: _person(rng, person),
                "EMAIL_ADDRESS": lambda: _email(rng, person),
                "LOCATION": lambda: rng.choice(PLACES),
                "DATE_TIME": lambda: _date_of_birth(rng),
                "PHONE_NUMBER": lambda: _phone(rng),
                "US_SSN": lambda: _ssn(rng),
                "CREDIT_CARD": lambda: _card(rng),
                "IBAN_CODE": lambda: _iban(rng),
                "IP_ADDRESS": lambda: _ip(rng),
            }[entity]()
        if entity is not None:
            spans.append(Span(entity, len(text), len(text) + len(value)))
        text += value
        position = match.end()
    text += template[position:]
    return text, spans


def generate(count: int = 720, seed: int = 7) -> list[tuple[str, list[Span]]]:
    """``count`` texts (every template in turn) with the gold span of every seeded value."""
    rng = random.Random(seed)
    return [_render(TEMPLATES[index % len(TEMPLATES)], rng, rng.choice(NAMES)) for index in range(count)]


# --- Scoring ---------------------------------------------------------------------------------


def score(items: list[tuple[str, list[Span]]], predictions: list[list[Span]]) -> dict[str, dict[str, float]]:
    """Per entity type, by exact span: seeded, predicted, true positives,
    precision and recall; plus ``ALL`` (micro-averaged over every type).

    A prediction is a true positive only when a seeded value has its type,
    start and end. Every other prediction is a false positive under its own
    type, seeded or not. Types never seeded have recall ``None``."""
    counts: dict[str, dict[str, int]] = {}

    def row(entity: str) -> dict[str, int]:
        return counts.setdefault(entity, {"seeded": 0, "predicted": 0, "true_positives": 0})

    for entity in SEEDED_TYPES:
        row(entity)
    for (_, gold), predicted in zip(items, predictions, strict=True):
        gold_set = set(gold)
        for span in gold:
            row(span.entity_type)["seeded"] += 1
        for span in set(predicted):
            figures = row(span.entity_type)
            figures["predicted"] += 1
            if span in gold_set:
                figures["true_positives"] += 1
    total = {key: sum(figures[key] for figures in counts.values()) for key in ("seeded", "predicted", "true_positives")}
    results: dict[str, dict[str, float]] = {}
    for entity, figures in sorted(counts.items()) + [("ALL", total)]:
        results[entity] = {
            **figures,
            "precision": figures["true_positives"] / figures["predicted"] if figures["predicted"] else 1.0,
            "recall": figures["true_positives"] / figures["seeded"] if figures["seeded"] else None,  # type: ignore[dict-item]
        }
    return results


def table(results: dict[str, dict[str, float]]) -> str:
    """The scores as a plain-text table, one row per type."""
    lines = [f"{'type':18} {'seeded':>7} {'found':>7} {'exact':>7} {'precision':>10} {'recall':>8}"]
    for entity, figures in results.items():
        recall = "-" if figures["recall"] is None else f"{figures['recall']:.3f}"
        lines.append(
            f"{entity:18} {figures['seeded']:7.0f} {figures['predicted']:7.0f} {figures['true_positives']:7.0f} "
            f"{figures['precision']:10.3f} {recall:>8}"
        )
    return "\n".join(lines)
