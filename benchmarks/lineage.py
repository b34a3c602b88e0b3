"""Lineage queries and revocation at scale, against the previous CTE design
and a naive per-node ORM traversal.

Builds a graph of 100,000 assets and 300,000 edges through the lineage
interface's ``bulk_load`` — 2,000 dataset versions (a few used by thousands of
models), 60,000 model versions in fine-tune chains up to 20 deep, 30,000
endpoints, 8,000 runs — on PostgreSQL and on SQLite. The most used dataset
version is a real catalog version (ingested through ``do_ingest_dataset_version``),
so it can be revoked through the service. Then, in the same run on each engine:

- the downstream query of the most used dataset and the upstream query of
  the deepest model: the current walk (``graph.downstream`` /
  ``graph.upstream``: a recursive CTE a level at a time, one row per depth
  holding the whole frontier) against the previous design (a recursive CTE
  with one row per (node, depth), in this file as ``previous_cte_walk``: the
  baseline) and against a breadth-first walk issuing one ORM query per node
  (context);
- revoking the most used dataset through the revoke service
  (``do_revoke_asset``, which calls ``do_revoke_dataset_version``: the
  permission check, the version row, lineage propagation to every downstream
  asset and the audit event, in one durable transaction).

Targets (issue 4): walk medians under 50 ms on PostgreSQL, revocation under
5 s. Prints the medians and the ratios, then one JSON line.

    .venv/bin/python benchmarks/lineage.py [--engines postgres,sqlite] [--assets 100000] [--edges 300000]

PostgreSQL: ``--postgres-url`` (default postgres://postgres@127.0.0.1:5432/pedigree_lineage_bench);
the database is dropped and created afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/pedigree_lineage_bench"

PII = ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "LOCATION"]
TEAMS = [f"team-{i}" for i in range(10)]
PURPOSES = ["support", "analytics", "research", "marketing", "product", "internal_tools", "fraud_prevention"]
REGIONS = ["eu", "us", "uk", "ca", "apac", "global"]
LICENCES = [
    {"id": "MIT", "training": True, "commercial_use": True, "attribution": True, "share_alike": False},
    {"id": "Apache-2.0", "training": True, "commercial_use": True, "attribution": True, "share_alike": False},
    {"id": "CC-BY-4.0", "training": True, "commercial_use": True, "attribution": True, "share_alike": False},
    {"id": "CC-BY-NC-4.0", "training": True, "commercial_use": False, "attribution": True, "share_alike": False},
    {"id": "CC0-1.0", "training": True, "commercial_use": True, "attribution": False, "share_alike": False},
    {"id": "proprietary", "training": True, "commercial_use": True, "attribution": False, "share_alike": False},
]


# --- The graph ------------------------------------------------------------------------


def generate(assets: int, edges: int, seed: int = 4) -> tuple[list[tuple[str, str, str, dict[str, Any]]], list[tuple[tuple[str, str], tuple[str, str], str, tuple[str, ...]]]]:
    """A deterministic graph: (kind, reference, label, facts) assets and (up, down, relation, removes) edges."""
    rng = random.Random(seed)
    n_datasets, n_base = 2000, 50
    n_endpoints = int(assets * 0.30)
    n_runs = int(assets * 0.0795)
    n_models = assets - n_datasets - n_base - n_endpoints - n_runs
    nodes: list[tuple[str, str, str, dict[str, Any]]] = []
    out_edges: list[tuple[tuple[str, str], tuple[str, str], str, tuple[str, ...]]] = []

    datasets = [("dataset_version", f"d{i}") for i in range(n_datasets)]
    for i, key in enumerate(datasets):
        licence = dict(rng.choice(LICENCES), holder=f"holder-{i % 40}")
        nodes.append((key[0], key[1], f"dataset-{i // 4} v{i % 4 + 1}", {
            "pii_types": rng.sample(PII, rng.choice([0, 0, 1, 1, 2])),
            "licences": [licence],
            "owners": [rng.choice(TEAMS)],
            "allowed_purposes": sorted(rng.sample(PURPOSES, rng.randint(3, 7))),
            "residency_regions": sorted(rng.sample(REGIONS, rng.randint(2, 6))),
        }))
    for i in range(n_datasets // 2, n_datasets):  # later versions derived from originals, a fifth redactions
        if rng.random() < 0.5:
            removes: tuple[str, ...] = ("*",) if rng.random() < 0.4 else ()
            out_edges.append((datasets[rng.randrange(5, n_datasets // 2)], datasets[i], "derived_from", removes))

    bases = [("model_version", f"base{i}") for i in range(n_base)]
    for i, key in enumerate(bases):
        nodes.append((key[0], key[1], f"base-model-{i}", {"owners": ["ml-platform"], "licences": [dict(rng.choice(LICENCES[:3]), holder="Base Labs")]}))

    models: list[tuple[str, str]] = []
    depth: dict[tuple[str, str], int] = {}
    while len(models) < n_models:
        length = 20 if rng.random() < 0.03 else rng.choice([1, 1, 2, 2, 3, 4, 5, 8])
        parent = rng.choice(bases)
        for _ in range(min(length, n_models - len(models))):
            key = ("model_version", f"m{len(models)}")
            nodes.append((key[0], key[1], f"model-{len(models)}", {"owners": [rng.choice(TEAMS)]}))
            out_edges.append((parent, key, "base_model", ()))
            depth[key] = depth.get(parent, 0) + 1
            models.append(key)
            parent = key

    for i in range(n_endpoints):
        key = ("endpoint", f"e{i}")
        nodes.append((key[0], key[1], f"endpoint-{i}", {"owners": [rng.choice(TEAMS)]}))
        out_edges.append((rng.choice(models), key, "deployed_as", ()))
    for i in range(n_runs):
        key = ("run", f"r{i}")
        nodes.append((key[0], key[1], f"fine-tune run {i}", {}))
        out_edges.append((key, models[i % len(models)], "produced_by", ()))

    # A few datasets used by thousands of models, the rest spread evenly.
    popular = {datasets[0]: 4000, datasets[1]: 3000, datasets[2]: 2000, datasets[3]: 1500, datasets[4]: 1000}
    used: set[tuple[tuple[str, str], tuple[str, str]]] = set()
    for dataset, count in popular.items():
        for model in rng.sample(models, count):
            used.add((dataset, model))
            out_edges.append((dataset, model, "trained_on", ()))
    remaining = edges - len(out_edges)
    evaluated = remaining // 20
    while remaining > 0:
        pair = (rng.choice(datasets[5:]), rng.choice(models))
        if pair in used:
            continue
        used.add(pair)
        out_edges.append((pair[0], pair[1], "evaluated_on" if remaining <= evaluated else "trained_on", ()))
        remaining -= 1
    return nodes, out_edges


# --- One engine (runs in a child process with DATABASE_URL set) ------------------------------------


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def naive_walk(start: int, direction: str) -> set[int]:
    """The baseline: breadth-first, one ORM query per node."""
    from governance.models import LineageEdge

    seen = {start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if direction == "down":
            neighbours = LineageEdge.objects.filter(upstream_id=node).values_list("downstream_id", flat=True)
        else:
            neighbours = LineageEdge.objects.filter(downstream_id=node).values_list("upstream_id", flat=True)
        for other in neighbours:
            if other not in seen:
                seen.add(other)
                queue.append(other)
    seen.discard(start)
    return seen


def previous_cte_walk(start: int, direction: str, max_depth: int) -> list[tuple[int, int]]:
    """The baseline: the previous design (before commit 20a0f88), a recursive CTE
    with one row per (node, depth), grouped for the shortest depth, nearest first."""
    from django.db import connection

    from governance.models import LineageEdge, LineageNode

    near, far = ("upstream_id", "downstream_id") if direction == "down" else ("downstream_id", "upstream_id")
    sql = f"""
        WITH RECURSIVE walk(node_id, depth) AS (
            SELECT id, 0 FROM {LineageNode._meta.db_table} WHERE id IN (%s)
            UNION
            SELECT e.{far}, w.depth + 1
            FROM walk w JOIN {LineageEdge._meta.db_table} e ON e.{near} = w.node_id
            WHERE w.depth < %s
        )
        SELECT node_id, MIN(depth) AS depth FROM walk GROUP BY node_id ORDER BY depth, node_id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [start, max_depth])
        return [(int(node_id), int(depth)) for node_id, depth in cursor.fetchall() if node_id != start]


def real_dataset_version() -> tuple[Any, Any]:
    """A catalog dataset version ingested through the service (and its owner, a superuser)."""
    import io

    from django.contrib.auth.models import Group, User

    from governance.services import GovernanceInput, do_create_dataset, do_ingest_dataset_version

    user = User.objects.create_superuser("bench", "bench@example.com", "x")
    team = Group.objects.create(name="bench-team")
    dataset = do_create_dataset(actor=user, name="bench-most-used", owner_group=team, title="Most used")
    outcome = do_ingest_dataset_version(
        actor=user, dataset=dataset, source=io.BytesIO(b'{"text": "the most used dataset"}\n'),
        filename="most-used.jsonl", governance=GovernanceInput(licence="MIT"),
    )
    return user, outcome.version


def run_engine(args: argparse.Namespace) -> dict[str, Any]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pedigree.settings")
    os.environ.setdefault("SECRET_KEY", "benchmark-only")
    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from governance.lineage import graph
    from governance.models import LineageNode

    call_command("migrate", verbosity=0)
    vendor = connection.vendor
    nodes, edges = generate(args.assets, args.edges)
    # The most used dataset, d0, is a real catalog version: revoked through the service below.
    user, version = real_dataset_version()
    real_key = ("dataset_version", str(version.pk))
    nodes = [node for node in nodes if (node[0], node[1]) != ("dataset_version", "d0")]
    edges = [((real_key if up == ("dataset_version", "d0") else up), down, relation, removes) for up, down, relation, removes in edges]
    started = time.perf_counter()
    loaded = graph.bulk_load(
        [graph.AssetSpec(kind, reference, label, facts) for kind, reference, label, facts in nodes],
        [graph.EdgeSpec(up, down, relation, removes) for up, down, relation, removes in edges],
        batch_size=5000,
    )
    build_s = time.perf_counter() - started
    if vendor == "postgresql":  # what autovacuum does after a load: statistics and the visibility map
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE governance_lineageedge")
            cursor.execute("VACUUM ANALYZE governance_lineagenode")

    ids = loaded.ids
    most_used = ids[real_key]
    model_depth: dict[int, int] = {}
    parents = {ids[down]: ids[up] for up, down, relation, _ in edges if relation == "base_model"}
    for model in parents:
        count, cursor_id = 0, model
        while cursor_id in parents:
            count += 1
            cursor_id = parents[cursor_id]
        model_depth[model] = count
    deepest = max(model_depth, key=lambda m: (model_depth[m], m))
    subject_down = LineageNode.objects.get(pk=most_used)
    subject_up = LineageNode.objects.get(pk=deepest)

    def timed(fn: Any, repeats: int) -> tuple[list[float], Any]:
        samples, value = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            value = fn()
            samples.append(time.perf_counter() - t0)
        return samples, value

    # Alternate current and previous walks, so load on the machine hits both alike.
    down_cte: list[float] = []
    down_previous: list[float] = []
    up_cte: list[float] = []
    up_previous: list[float] = []
    for _ in range(args.repeats):
        samples, down_found = timed(lambda: graph.downstream(subject_down, max_depth=100), 1)
        down_cte += samples
        samples, down_previous_found = timed(lambda: previous_cte_walk(most_used, "down", 100), 1)
        down_previous += samples
        samples, up_found = timed(lambda: graph.upstream(subject_up, max_depth=100), 1)
        up_cte += samples
        samples, up_previous_found = timed(lambda: previous_cte_walk(deepest, "up", 100), 1)
        up_previous += samples
    down_naive, down_naive_found = timed(lambda: naive_walk(most_used, "down"), args.naive_repeats)
    up_naive, up_naive_found = timed(lambda: naive_walk(deepest, "up"), max(args.naive_repeats, 5))
    assert [tuple(r) for r in down_found] == down_previous_found, "current and previous CTE downstream disagree"
    assert [tuple(r) for r in up_found] == up_previous_found, "current and previous CTE upstream disagree"
    assert {r.node_id for r in down_found} == down_naive_found, "CTE and naive downstream disagree"
    assert {r.node_id for r in up_found} == up_naive_found, "CTE and naive upstream disagree"

    from governance.lineage.services import do_revoke_asset

    before_changed = LineageNode.objects.filter(effective_status="quarantined").count()
    t0 = time.perf_counter()
    do_revoke_asset(actor=user, node=subject_down, reason="benchmark revocation")
    propagation_s = time.perf_counter() - t0
    version.refresh_from_db()
    assert version.status == "revoked", version.status
    quarantined = LineageNode.objects.filter(effective_status="quarantined").count()
    downstream_quarantined = LineageNode.objects.filter(
        pk__in=[r.node_id for r in down_found], effective_status="quarantined"
    ).count()
    return {
        "vendor": vendor,
        "assets": LineageNode.objects.count(),
        "edges": len(edges),
        "build_s": build_s,
        "downstream_nodes": len(down_found),
        "downstream_cte_ms": median_ms(down_cte),
        "downstream_naive_ms": median_ms(down_naive),
        "downstream_previous_cte_ms": median_ms(down_previous),
        "upstream_previous_cte_ms": median_ms(up_previous),
        "deepest_model_depth": model_depth[deepest],
        "upstream_nodes": len(up_found),
        "upstream_cte_ms": median_ms(up_cte),
        "upstream_naive_ms": median_ms(up_naive),
        "propagation_s": propagation_s,
        "quarantined_before": before_changed,
        "quarantined": quarantined,
        "downstream_quarantined": downstream_quarantined,
    }


# --- The driver ------------------------------------------------------------------------------------


def fresh_postgres(url: str) -> None:
    from urllib.parse import urlparse

    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="postgres,sqlite")
    parser.add_argument("--assets", type=int, default=100_000)
    parser.add_argument("--edges", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--naive-repeats", type=int, default=1, help="runs of the (slow) naive downstream walk")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(run_engine(args)), flush=True)
        return

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="pedigree-lineage-bench-") as tmp:
        for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
            env = dict(os.environ, PEDIGREE_VAR=tmp, SECRET_KEY="benchmark-only", DEBUG="0", PYTHONPATH=str(ROOT),
                       PEDIGREE_PII_AUTO_SCAN="0")
            env.pop("DJANGO_SETTINGS_MODULE", None)
            if engine == "postgres":
                fresh_postgres(args.postgres_url)
                env["DATABASE_URL"] = args.postgres_url
            elif engine == "sqlite":
                env["DATABASE_URL"] = f"sqlite:///{tmp}/bench.sqlite3"
            else:
                raise SystemExit(f"unknown engine {engine!r}: use postgres, sqlite")
            command = [sys.executable, __file__, "--worker", "--assets", str(args.assets), "--edges", str(args.edges),
                       "--repeats", str(args.repeats), "--naive-repeats", str(args.naive_repeats)]
            print(f"[{engine}] building {args.assets:,} assets and {args.edges:,} edges ...", flush=True)
            done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if done.returncode != 0 or not lines:
                sys.stderr.write(done.stdout[-3000:] + done.stderr[-5000:])
                raise SystemExit(f"{engine} run failed")
            result = json.loads(lines[-1][len("RESULT "):])
            results[engine] = result
            print(
                f"[{engine}] built in {result['build_s']:.1f} s ({result['assets']:,} assets, {result['edges']:,} edges)\n"
                f"[{engine}] downstream of the most used dataset ({result['downstream_nodes']:,} assets): "
                f"walk {result['downstream_cte_ms']:.1f} ms vs previous CTE {result['downstream_previous_cte_ms']:.1f} ms "
                f"-> {result['downstream_previous_cte_ms'] / result['downstream_cte_ms']:.2f}x; "
                f"vs naive {result['downstream_naive_ms']:.0f} ms -> {result['downstream_naive_ms'] / result['downstream_cte_ms']:.0f}x\n"
                f"[{engine}] upstream of the deepest model (depth {result['deepest_model_depth']}, {result['upstream_nodes']} assets): "
                f"walk {result['upstream_cte_ms']:.2f} ms vs previous CTE {result['upstream_previous_cte_ms']:.2f} ms "
                f"-> {result['upstream_previous_cte_ms'] / result['upstream_cte_ms']:.2f}x; "
                f"vs naive {result['upstream_naive_ms']:.1f} ms -> {result['upstream_naive_ms'] / result['upstream_cte_ms']:.1f}x\n"
                f"[{engine}] revoking it through do_revoke_asset: {result['propagation_s']:.2f} s; quarantined assets "
                f"{result['quarantined_before']:,} -> {result['quarantined']:,} "
                f"({result['downstream_quarantined']:,} of its {result['downstream_nodes']:,} downstream)",
                flush=True,
            )

    figures: dict[str, dict[str, Any]] = {}
    for engine, result in results.items():
        claim = engine == "postgres"
        figures[f"{engine}_downstream_most_used_dataset_median_ms"] = {
            "value": round(result["downstream_cte_ms"], 2), "unit": "ms", "target": 50 if claim else None, "higher_is_better": False}
        figures[f"{engine}_downstream_previous_cte_median_ms"] = {
            "value": round(result["downstream_previous_cte_ms"], 2), "unit": "ms", "target": None, "higher_is_better": False}
        figures[f"{engine}_downstream_speedup_vs_previous_cte"] = {
            "value": round(result["downstream_previous_cte_ms"] / result["downstream_cte_ms"], 2), "unit": "x", "target": None, "higher_is_better": True}
        figures[f"{engine}_downstream_naive_orm_median_ms"] = {
            "value": round(result["downstream_naive_ms"], 1), "unit": "ms", "target": None, "higher_is_better": False}
        figures[f"{engine}_downstream_speedup_vs_naive"] = {
            "value": round(result["downstream_naive_ms"] / result["downstream_cte_ms"], 1), "unit": "x", "target": None, "higher_is_better": True}
        figures[f"{engine}_upstream_deepest_model_median_ms"] = {
            "value": round(result["upstream_cte_ms"], 2), "unit": "ms", "target": 50 if claim else None, "higher_is_better": False}
        figures[f"{engine}_upstream_previous_cte_median_ms"] = {
            "value": round(result["upstream_previous_cte_ms"], 2), "unit": "ms", "target": None, "higher_is_better": False}
        figures[f"{engine}_upstream_speedup_vs_previous_cte"] = {
            "value": round(result["upstream_previous_cte_ms"] / result["upstream_cte_ms"], 2), "unit": "x", "target": None, "higher_is_better": True}
        figures[f"{engine}_upstream_naive_orm_median_ms"] = {
            "value": round(result["upstream_naive_ms"], 1), "unit": "ms", "target": None, "higher_is_better": False}
        figures[f"{engine}_upstream_speedup_vs_naive"] = {
            "value": round(result["upstream_naive_ms"] / result["upstream_cte_ms"], 1), "unit": "x", "target": None, "higher_is_better": True}
        figures[f"{engine}_revoke_service_s"] = {
            "value": round(result["propagation_s"], 2), "unit": "s", "target": 5, "higher_is_better": False}
    print(json.dumps({"benchmark": "lineage", "figures": figures}))


if __name__ == "__main__":
    main()
