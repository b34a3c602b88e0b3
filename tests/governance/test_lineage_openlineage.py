"""OpenLineage run events for ingest and redaction, parsed back with the client's own models."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from openlineage.client.event_v2 import RunEvent, RunState
from openlineage.client.facet_v2 import error_message_run, ownership_dataset, schema_dataset

from governance.lineage.openlineage import (
    PedigreeGovernanceDatasetFacet,
    output_version,
    parse_run_event,
    start_redaction_run,
)
from governance.models import LineageEdge
from governance.services import GovernanceInput, do_ingest_dataset_version
from pedigree.errors import PedigreeError

pytestmark = pytest.mark.django_db


def _events(artifacts_dir: Path) -> list[RunEvent]:
    path = artifacts_dir / "openlineage" / "events.jsonl"
    return [parse_run_event(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def test_ingest_emits_start_and_complete_for_one_run(claims_dataset: Any, make_version: Any, artifacts_dir: Path) -> None:
    make_version(claims_dataset)
    start, complete = _events(artifacts_dir)
    assert (start.eventType, complete.eventType) == (RunState.START, RunState.COMPLETE)
    assert start.run.runId == complete.run.runId and complete.job.name == "pedigree.ingest"


def test_the_ingested_version_is_an_output_with_schema_ownership_and_governance(
    claims_dataset: Any, make_version: Any, artifacts_dir: Path
) -> None:
    make_version(claims_dataset, copyright_holder="Acme")
    complete = _events(artifacts_dir)[-1]
    [output] = complete.outputs or []
    assert output.name == "claims-2024/v1"
    facets = output.facets or {}
    assert isinstance(facets["schema"], schema_dataset.SchemaDatasetFacet)
    assert [field.name for field in facets["schema"].fields or []] == ["text"]
    assert isinstance(facets["ownership"], ownership_dataset.OwnershipDatasetFacet)
    assert {owner.name for owner in facets["ownership"].owners or []} == {"group:claims-team", "user:alice"}
    governance = facets["pedigree_governance"]
    assert isinstance(governance, PedigreeGovernanceDatasetFacet)
    assert governance.licences[0]["id"] == "MIT" and governance.licences[0]["holder"] == "Acme"


def test_a_failed_ingest_emits_fail_with_the_error(claims_dataset: Any, alice: Any, artifacts_dir: Path) -> None:
    with pytest.raises(PedigreeError):
        do_ingest_dataset_version(
            actor=alice, dataset=claims_dataset, source=io.BytesIO(b"{not json\n"), filename="bad.jsonl",
            governance=GovernanceInput(licence="MIT"),
        )
    start, fail = _events(artifacts_dir)
    assert fail.eventType == RunState.FAIL and fail.run.runId == start.run.runId
    error = (fail.run.facets or {})["errorMessage"]
    assert isinstance(error, error_message_run.ErrorMessageRunFacet) and error.message


def test_the_ingest_run_becomes_a_node_that_produced_the_version(claims_dataset: Any, make_version: Any, artifacts_dir: Path) -> None:
    version = make_version(claims_dataset)
    run_id = _events(artifacts_dir)[-1].run.runId
    edge = LineageEdge.objects.get(relation="produced_by", downstream__reference=str(version.pk))
    assert (edge.upstream.kind, edge.upstream.reference) == ("run", run_id)


def test_a_redaction_run_reports_its_input_and_output(claims_dataset: Any, make_version: Any, artifacts_dir: Path) -> None:
    source, redacted = make_version(claims_dataset), make_version(claims_dataset)
    run = start_redaction_run(source=source)
    run.complete([output_version(redacted)])
    start, complete = _events(artifacts_dir)[-2:]
    assert start.job.name == complete.job.name == "pedigree.redaction"
    assert [d.name for d in start.inputs or []] == ["claims-2024/v1"]
    assert [d.name for d in complete.outputs or []] == ["claims-2024/v2"]


def test_the_events_file_is_configurable(claims_dataset: Any, make_version: Any, settings: Any, tmp_path: Path) -> None:
    settings.PEDIGREE_OPENLINEAGE_FILE = str(tmp_path / "elsewhere" / "ol.jsonl")
    make_version(claims_dataset)
    assert len((tmp_path / "elsewhere" / "ol.jsonl").read_text().splitlines()) == 2


def test_the_transport_can_be_turned_off(claims_dataset: Any, make_version: Any, settings: Any, artifacts_dir: Path) -> None:
    settings.PEDIGREE_OPENLINEAGE_TRANSPORT = "none"
    make_version(claims_dataset)
    assert not (artifacts_dir / "openlineage" / "events.jsonl").exists()


def test_the_console_transport_logs_the_events(claims_dataset: Any, make_version: Any, settings: Any, caplog: Any) -> None:
    settings.PEDIGREE_OPENLINEAGE_TRANSPORT = "console"
    with caplog.at_level("INFO", logger="openlineage.client.transport.console"):
        make_version(claims_dataset)
    assert sum('"eventType": "COMPLETE"' in record.getMessage() for record in caplog.records) == 1
