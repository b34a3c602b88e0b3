"""The demo that ``make run`` seeds: people, teams and a few realistic datasets.

Everything is generated here, offline and deterministically, and goes in
through the same services as the API, so the demo shows the real behaviour
(validation, hashing, audit). Running it again changes nothing.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, User
from django.utils import timezone
from rest_framework.authtoken.models import Token

from governance.models import AuditEvent, Dataset, DatasetVersion
from governance.models.pii import ACTIVE_SCAN_STATUSES, PiiEntityReview, PiiScan, PiiScanTrigger
from governance.pii.reviews import do_review_pii_entity
from governance.pii.scans import claim_pii_scan, do_request_pii_scan, run_pii_scan
from governance.pii.versions import latest_completed_scan
from governance.services import GovernanceInput, do_create_dataset, do_ingest_dataset_version

FIRST_NAMES = ["Maria", "James", "Aisha", "Chen", "Lukas", "Sofia", "Omar", "Emma", "Ravi", "Hannah"]
LAST_NAMES = ["Garcia", "Smith", "Khan", "Wei", "Müller", "Rossi", "Haddad", "Johnson", "Patel", "Novak"]
CITIES = ["Lisbon", "Berlin", "Boston", "Toronto", "Madrid", "Dublin", "Lyon", "Austin"]
PRODUCTS = ["router", "thermostat", "camera", "smart plug", "doorbell", "speaker"]


@dataclass
class DemoPerson:
    username: str
    groups: list[str]
    staff: bool = False


PEOPLE = [
    DemoPerson("alice", ["claims-team"]),  # data steward for claims
    DemoPerson("carol", ["support-team"]),  # data steward for support
    DemoPerson("bob", ["ml-platform"]),  # ML engineer
    DemoPerson("dana", ["research"]),  # researcher
]


def _person(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    email = f"{first.lower()}.{last.lower().replace('ü', 'ue')}@example.com"
    return f"{first} {last}", email


def support_chats(rng: random.Random, count: int = 400) -> bytes:
    """Chat transcripts; about one in four mentions an email or phone number."""
    lines = []
    for _ in range(count):
        product = rng.choice(PRODUCTS)
        name, email = _person(rng)
        question = f"My {product} keeps disconnecting from the wifi after the last update."
        if rng.random() < 0.25:
            question += f" I'm {name}, you can reach me at {email} or +1 617 555 {rng.randint(1000, 9999)}."
        answer = f"Sorry about that! Please hold the reset button on the {product} for ten seconds, then pair it again."
        messages = [
            {"role": "system", "content": "You are Acme's friendly support assistant."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
        lines.append(json.dumps({"messages": messages, "ticket": rng.randint(10000, 99999)}))
    return ("\n".join(lines) + "\n").encode()


def claims_csv(rng: random.Random, count: int = 300) -> bytes:
    """Insurance claims with names and US SSNs in the clear (to be found by the scanner)."""
    out = io.StringIO()
    out.write("claim_id,customer_name,ssn,city,amount_usd,description\n")
    for index in range(count):
        name, _ = _person(rng)
        ssn = f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
        city = rng.choice(CITIES)
        amount = rng.randint(200, 25000)
        description = f"Water damage in kitchen reported by {name.split()[0]}; adjuster visit scheduled in {city}."
        out.write(f'C{index + 1:05d},{name},{ssn},{city},{amount},"{description}"\n')
    return out.getvalue().encode()


def public_qa(rng: random.Random, count: int = 300) -> bytes:
    """General question/answer pairs with no personal data."""
    facts = [
        ("What is the boiling point of water at sea level?", "100 degrees Celsius."),
        ("How many continents are there?", "Seven."),
        ("What gas do plants absorb?", "Carbon dioxide."),
        ("What is the largest planet in the solar system?", "Jupiter."),
        ("Who wrote 'On the Origin of Species'?", "Charles Darwin."),
    ]
    lines = []
    for index in range(count):
        prompt, completion = facts[index % len(facts)]
        lines.append(json.dumps({"prompt": f"Q{index}: {prompt}", "completion": completion}))
    return ("\n".join(lines) + "\n").encode()


def wiki_snippets(rng: random.Random, count: int = 200) -> bytes:
    topics = ["Photosynthesis", "The Roman Empire", "Plate tectonics", "The printing press", "Jazz"]
    lines = [f"{rng.choice(topics)} is a subject with a long history of study ({index})." for index in range(count)]
    return ("\n".join(lines) + "\n").encode()


def product_reviews_parquet(rng: random.Random, count: int = 250) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "review_id": list(range(count)),
            "product": [rng.choice(PRODUCTS) for _ in range(count)],
            "stars": [rng.randint(1, 5) for _ in range(count)],
            "text": [f"The {rng.choice(PRODUCTS)} works as described, setup took {rng.randint(2, 30)} minutes." for _ in range(count)],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def ensure_admin(password_file: Path) -> tuple[User, bool]:
    """Create the ``admin`` superuser once, with a random password kept in a 0600 file."""
    users = get_user_model().objects
    admin = users.filter(username="admin").first()
    if admin is not None:
        return admin, False
    password = secrets.token_urlsafe(18)
    admin = users.create_superuser("admin", "admin@example.com", password)
    password_file.parent.mkdir(parents=True, exist_ok=True)
    password_file.write_text(f"username: admin\npassword: {password}\n")
    password_file.chmod(0o600)
    return admin, True


# Consumers: applications that call models, each owned by the team's person
# (who may read it and what it may call through /api/v1/consumers/; only
# admins change them). The policy console
# (/admin/policies/policydecision/simulate/) shows which of them could call a
# model trained on each demo dataset, and why not.
DEMO_CONSUMERS = [
    ("helpdesk-eu", "Support assistant for EU customers", "carol", ["support-team"], ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER"], ["support"], "eu", True),
    ("web-frontend", "Public website chat widget (US)", "carol", ["support-team"], [], ["support"], "us", True),
    ("claims-fraud-us", "Fraud screening for US claims", "alice", ["claims-team"], ["PERSON", "US_SSN"], ["fraud_prevention"], "us", False),
    ("research-notebook", "Internal research notebooks", "dana", ["research"], [], ["research"], "eu", False),
]


def seed_consumers(admin: User, people: dict[str, User]) -> list[str]:
    """Create the demo consumers once, through the service (audited); returns their names.

    A demo consumer that exists, or that an admin deleted since (the audit log
    says so), is left alone: running the seed again undoes nobody's change.
    """
    from serving.choices import ServingAuditAction
    from serving.models import Consumer
    from serving.services import do_create_consumer

    for name, description, owner, groups, clearances, purposes, region, commercial in DEMO_CONSUMERS:
        deleted = AuditEvent.objects.filter(action=ServingAuditAction.CONSUMER_DELETED, target_label=name).exists()
        if not deleted and not Consumer.objects.filter(name=name).exists():
            do_create_consumer(
                actor=admin, name=name, description=description, owner=people.get(owner, admin), groups=groups,
                pii_clearances=clearances, purposes=purposes, region=region, commercial=commercial,
                reason="demo data seeded by make run",
            )
    return [consumer[0] for consumer in DEMO_CONSUMERS]


# The stewards' reviews of what the scanner finds in the demo data: the types
# that are really there are confirmed, the scanner's false positives dismissed,
# each with its reason (reviews go through the review service, audited, as the
# dataset's steward). One finding is deliberately left unreviewed: the scanner
# reads some of the US phone numbers in support-chats as UK NHS numbers, and
# until carol dismisses UK_NHS, no consumer (not even helpdesk-eu, cleared for
# names, e-mails and phones) may call the support assistant trained on it. The
# README's "Try the fail-closed rules" walks through that review;
# tests/test_demo.py pins what the README claims.
DEMO_PII_REVIEWS: dict[str, list[tuple[str, str, str]]] = {
    "support-chats": [
        ("PERSON", "confirmed", "customers give their names in the chats"),
        ("EMAIL_ADDRESS", "confirmed", "customers give their e-mail addresses in the chats"),
        ("PHONE_NUMBER", "confirmed", "customers give their phone numbers in the chats"),
        ("DATE_TIME", "dismissed", "durations in the agents' answers ('ten seconds') and ticket numbers; no dates about customers"),
        ("URL", "dismissed", "the domains of the customers' e-mail addresses, already counted as EMAIL_ADDRESS; no web addresses"),
        # UK_NHS: left for the walk-through (see above).
    ],
    "claims-2024": [
        ("PERSON", "confirmed", "claimants' names in customer_name and the descriptions"),
        ("US_SSN", "confirmed", "claimants' social security numbers in the ssn column"),
        ("DATE_TIME", "dismissed", "claim amounts and ids read as dates; the claims hold no dates"),
        ("LOCATION", "dismissed", "the city of the loss only, never an address: claims-team does not treat it as identifying"),
        ("NRP", "dismissed", "a claim id read as a nationality or group; the claims record none"),
        ("PHONE_NUMBER", "dismissed", "social security numbers and amounts read as phone numbers; the claims hold no phone numbers"),
    ],
    "public-qa": [
        ("PERSON", "dismissed", "historical figures in general-knowledge answers (Charles Darwin) and question numbers; nobody's personal data"),
        ("LOCATION", "dismissed", "planets in general-knowledge answers and question numbers; nobody's whereabouts"),
    ],
    "wiki-snippets": [
        ("DATE_TIME", "dismissed", "encyclopedia subjects and snippet numbers read as dates; no dates about people"),
        ("LOCATION", "dismissed", "historical subjects (The Roman Empire); nobody's whereabouts"),
    ],
    "product-reviews": [
        ("DATE_TIME", "dismissed", "setup durations in the review texts ('12 minutes'); no dates about reviewers"),
    ],
}


def scan_demo_version(version: DatasetVersion) -> PiiScan | None:
    """Scan a demo version here and now (real Presidio), unless a completed scan exists.

    The demo data is small, so ``seed_demo`` scans it in its own process, so that
    the demo starts with complete scans and seeded reviews (an unscanned version
    denies training and serving: see policies/pii_scan.cedar). The scan queued
    automatically when the version was created is the one claimed and run, so a
    worker started later finds it done. Returns None when a worker is running it.
    """
    active = PiiScan.objects.filter(version=version, status__in=ACTIVE_SCAN_STATUSES).exists()
    latest = latest_completed_scan(version)
    if latest is not None and not active:
        return latest
    scan = do_request_pii_scan(actor=None, version=version, trigger=PiiScanTrigger.AUTOMATIC, enqueue=False)
    claimed = claim_pii_scan(scan.pk, worker="seed_demo")
    if claimed is None:
        return None
    return run_pii_scan(claimed)


def scan_and_review_demo_version(version: DatasetVersion, steward: User, say: Callable[[str], object]) -> None:
    """Scan a demo version (unless done) and seed its steward's reviews (those not made yet)."""
    scan = scan_demo_version(version)
    if scan is None:
        say("    PII scan: running on a worker; run seed_demo again afterwards to seed the reviews\n")
        return
    say(f"    PII scan #{scan.pk}: {scan.status}, found {', '.join(scan.found_entity_types) or 'nothing'}\n")
    if version.dataset.steward_id != steward.pk:
        return  # its steward was changed since: the reviews are theirs to make
    seed_pii_reviews(version, steward, say)


def seed_pii_reviews(version: DatasetVersion, steward: User, say: Callable[[str], object]) -> None:
    """Review the demo version's findings as its steward would, once (idempotent).

    Only types the version's latest completed scan found are reviewed, and a
    type already reviewed is left as it is (a steward may have changed it).
    """
    scan = latest_completed_scan(version)
    found = set(scan.found_entity_types) if scan is not None else set()
    reviewed = set(PiiEntityReview.objects.filter(version=version).values_list("entity_type", flat=True))
    done = []
    for entity_type, decision, reason in DEMO_PII_REVIEWS.get(version.dataset.name, []):
        if entity_type in found and entity_type not in reviewed:
            do_review_pii_entity(actor=steward, version=version, entity_type=entity_type, decision=decision, reason=reason)
            done.append(f"{entity_type} {decision}")
    if done:
        say(f"    reviewed by {steward.username}: {', '.join(done)}\n")
    version.refresh_from_db()
    unreviewed = sorted(found - set(PiiEntityReview.objects.filter(version=version).values_list("entity_type", flat=True)))
    if unreviewed:
        say(f"    not reviewed yet: {', '.join(unreviewed)} (counts as PII until a steward dismisses it)\n")


def seed(stdout: io.TextIOBase | None = None) -> None:
    """Create the demo people, teams, datasets and versions (idempotent)."""
    say = stdout.write if stdout else (lambda text: None)
    var = Path(settings.VAR_DIR)
    admin, _ = ensure_admin(var / "admin-password.txt")
    users = get_user_model().objects
    people = {}
    tokens = []
    for person in PEOPLE:
        user, created = users.get_or_create(username=person.username, defaults={"email": f"{person.username}@example.com"})
        if created:
            user.set_unusable_password()
            user.save()
        for name in person.groups:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
        people[person.username] = user
        tokens.append(f"{person.username}: {Token.objects.get_or_create(user=user)[0].key}")
    tokens.append(f"admin: {Token.objects.get_or_create(user=admin)[0].key}")
    token_file = var / "demo-tokens.txt"
    token_file.write_text("\n".join(tokens) + "\n")
    token_file.chmod(0o600)
    say(f"  consumers: {', '.join(seed_consumers(admin, people))}\n")

    rng = random.Random(2024)
    in_two_years = timezone.localdate() + dt.timedelta(days=730)
    specs = [
        ("support-chats", "support-team", "carol", "Support chat transcripts", "support", support_chats(rng), "support-chats.jsonl",
         GovernanceInput(licence="proprietary", licence_text="Acme Corp internal data. Internal use only.",
                         copyright_holder="Acme Corp", allowed_purposes=["support", "product"], consent_basis="contract",
                         residency_regions=["eu"], expires_at=in_two_years)),
        ("claims-2024", "claims-team", "alice", "Insurance claims 2024", "claims", claims_csv(rng), "claims-2024.csv",
         GovernanceInput(licence="proprietary", licence_text="Acme Insurance claims records; confidential.",
                         copyright_holder="Acme Insurance", allowed_purposes=["fraud_prevention", "analytics"],
                         consent_basis="legal_obligation", residency_regions=["us"])),
        ("public-qa", "research", "dana", "General knowledge Q&A", "research", public_qa(rng), "public-qa.jsonl",
         GovernanceInput(licence="Apache-2.0", copyright_holder="Pedigree demo authors",
                         allowed_purposes=["support", "research", "product", "internal_tools"],
                         consent_basis="public_domain", residency_regions=["global"])),
        ("wiki-snippets", "research", "dana", "Encyclopedia snippets", "research", wiki_snippets(rng), "wiki-snippets.txt",
         GovernanceInput(licence="CC-BY-SA-4.0", copyright_holder="Encyclopedia contributors",
                         allowed_purposes=["research", "product"], consent_basis="public_domain", residency_regions=["global"])),
        ("product-reviews", "research", "dana", "Product reviews", "product", product_reviews_parquet(rng), "product-reviews.parquet",
         GovernanceInput(licence="CC-BY-NC-4.0", copyright_holder="Review authors",
                         allowed_purposes=["research"], consent_basis="consent", residency_regions=["eu", "us"])),
    ]
    for name, group_name, steward_name, title, domain, data, filename, governance in specs:
        group = Group.objects.get_or_create(name=group_name)[0]
        steward = people[steward_name]
        dataset = Dataset.objects.filter(name=name).first()
        existing = dataset.versions.order_by("number").first() if dataset is not None else None
        if existing is not None:
            # Seeded before: its owners, steward, licence or status may have been
            # changed since, on purpose. Ingesting again would act as a steward who
            # may no longer own it, or clash with the new licence: leave it alone.
            say(f"  {existing}: {existing.record_count} records (present)\n")
            # One seeded before its scan finished (or before scanning existed) is
            # scanned now; reviews are seeded only while the demo steward is its steward.
            scan_and_review_demo_version(existing, steward, say)
            continue
        if dataset is None:
            dataset = do_create_dataset(
                actor=admin, name=name, owner_group=group, steward=steward, title=title, domain=domain,
                labels={"demo": "true", "team": group_name},
            )
        outcome = do_ingest_dataset_version(
            actor=steward, dataset=dataset, source=io.BytesIO(data), filename=filename, governance=governance
        )
        say(f"  {outcome.version}: {outcome.version.record_count} records (added)\n")
        scan_and_review_demo_version(outcome.version, steward, say)
    from governance.lineage.demo import seed_lineage  # models and endpoints on the demo data

    seed_lineage(say)
