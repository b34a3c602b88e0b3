"""OpenLineage run events for ingest and redaction, parsed back with the client's own models.

The file and console transports write locally; the HTTP transport is tested
against a real HTTP server on a free local port.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from openlineage.client.event_v2 import RunEvent, RunState
from openlineage.client.facet_v2 import error_message_run, ownership_dataset, schema_dataset

from governance.lineage.openlineage import (
    PedigreeGovernanceDatasetFacet,
    http_config,
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


# --- The HTTP transport, against a real HTTP server --------------------------------------
# A stdlib server in a thread stands in for Marquez: it takes POSTs to
# /api/v1/lineage and answers 201 (or what a test tells it to).


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class LineageServer:
    """A local HTTP server that records the OpenLineage events POSTed to it."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.status = 201
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                server.requests.append(ReceivedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                time.sleep(server.delay)
                self.send_response(server.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[RunEvent]:
        return [parse_run_event(request.body) for request in self.requests]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def lineage_server(settings: Any) -> Iterator[LineageServer]:
    server = LineageServer()
    settings.PEDIGREE_OPENLINEAGE_TRANSPORT = "http"
    settings.PEDIGREE_OPENLINEAGE_URL = server.url
    yield server
    server.stop()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_http_transport_posts_start_and_complete_to_the_lineage_server(
    claims_dataset: Any, make_version: Any, lineage_server: LineageServer, artifacts_dir: Path
) -> None:
    make_version(claims_dataset)
    assert [request.path for request in lineage_server.requests] == ["/api/v1/lineage"] * 2
    assert all(request.headers["content-type"] == "application/json" for request in lineage_server.requests)
    start, complete = lineage_server.events()
    assert (start.eventType, complete.eventType) == (RunState.START, RunState.COMPLETE)
    assert start.run.runId == complete.run.runId and complete.job.name == "pedigree.ingest"
    [output] = complete.outputs or []
    governance = (output.facets or {})["pedigree_governance"]
    assert isinstance(governance, PedigreeGovernanceDatasetFacet)
    assert output.name == "claims-2024/v1" and governance.licences[0]["id"] == "MIT"
    assert not (artifacts_dir / "openlineage" / "events.jsonl").exists()


def test_the_api_key_is_sent_as_a_bearer_token(
    claims_dataset: Any, make_version: Any, lineage_server: LineageServer, settings: Any
) -> None:
    settings.PEDIGREE_OPENLINEAGE_API_KEY = "ol-secret-123"
    make_version(claims_dataset)
    assert [request.headers.get("authorization") for request in lineage_server.requests] == ["Bearer ol-secret-123"] * 2


def test_without_an_api_key_no_authorization_header_is_sent(
    claims_dataset: Any, make_version: Any, lineage_server: LineageServer
) -> None:
    make_version(claims_dataset)
    assert lineage_server.requests and all("authorization" not in request.headers for request in lineage_server.requests)


def test_a_path_prefix_in_the_url_is_kept(
    claims_dataset: Any, make_version: Any, lineage_server: LineageServer, settings: Any
) -> None:
    settings.PEDIGREE_OPENLINEAGE_URL = lineage_server.url + "/marquez"  # a server behind a proxy
    make_version(claims_dataset)
    assert [request.path for request in lineage_server.requests] == ["/marquez/api/v1/lineage"] * 2


def test_the_endpoint_path_is_configurable(
    claims_dataset: Any, make_version: Any, lineage_server: LineageServer, settings: Any
) -> None:
    settings.PEDIGREE_OPENLINEAGE_ENDPOINT = "/api/v1/openlineage/lineage"
    make_version(claims_dataset)
    assert [request.path for request in lineage_server.requests] == ["/api/v1/openlineage/lineage"] * 2


def test_a_lineage_server_answering_500_does_not_break_the_ingest(
    claims_dataset: Any, make_version: Any, lineage_server: LineageServer, caplog: Any
) -> None:
    lineage_server.status = 500
    began = time.monotonic()
    with caplog.at_level("WARNING", logger="governance.lineage.openlineage"):
        version = make_version(claims_dataset)
    elapsed = time.monotonic() - began
    assert LineageEdge.objects.filter(relation="produced_by", downstream__reference=str(version.pk)).exists()
    assert len(lineage_server.requests) == 4  # START and COMPLETE, each tried twice (one retry)
    warnings = [record.getMessage() for record in caplog.records if record.name == "governance.lineage.openlineage"]
    assert len(warnings) == 2 and "could not emit the OpenLineage START event" in warnings[0]
    assert "COMPLETE" in warnings[1] and "500" in warnings[1]
    assert elapsed < 8, f"the ingest waited {elapsed:.1f} s for a failing lineage server"  # client defaults: ~18 s


def test_a_lineage_server_that_is_down_does_not_break_the_ingest(
    claims_dataset: Any, make_version: Any, settings: Any, caplog: Any
) -> None:
    settings.PEDIGREE_OPENLINEAGE_TRANSPORT = "http"
    settings.PEDIGREE_OPENLINEAGE_URL = f"http://127.0.0.1:{_closed_port()}"
    began = time.monotonic()
    with caplog.at_level("WARNING", logger="governance.lineage.openlineage"):
        version = make_version(claims_dataset)
    assert version.pk and version.number == 1
    warnings = [record.getMessage() for record in caplog.records if record.name == "governance.lineage.openlineage"]
    assert len(warnings) == 2 and all("could not emit" in text for text in warnings)
    assert time.monotonic() - began < 8


def test_a_lineage_server_that_never_answers_is_given_up_after_the_timeout(
    claims_dataset: Any, make_version: Any, lineage_server: LineageServer, settings: Any, caplog: Any
) -> None:
    lineage_server.delay = 3.0
    settings.PEDIGREE_OPENLINEAGE_TIMEOUT = "0.3"
    settings.PEDIGREE_OPENLINEAGE_RETRIES = "0"
    began = time.monotonic()
    with caplog.at_level("WARNING", logger="governance.lineage.openlineage"):
        version = make_version(claims_dataset)
    assert version.pk
    assert time.monotonic() - began < 2.5  # two events, 0.3 s each, not 2 x 3 s
    assert sum("could not emit" in record.getMessage() for record in caplog.records) == 2


def test_a_bad_timeout_setting_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="PEDIGREE_OPENLINEAGE_TIMEOUT='soon'"):
        http_config("http://marquez:5000", timeout="soon")
    with pytest.raises(ValueError, match="PEDIGREE_OPENLINEAGE_RETRIES='-1'"):
        http_config("http://marquez:5000", retries="-1")
