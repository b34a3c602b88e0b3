"""OpenLineage run events (START, COMPLETE, FAIL) for ingest, redaction and fine-tune runs.

Events are built with the openlineage-python client's own models and sent
through its transports. Inputs and outputs are OpenLineage datasets with the
standard ``schema`` and ``ownership`` facets and a custom
``pedigree_governance`` facet (licences, permissions, PII, status).

Configuration (settings or environment):

- ``PEDIGREE_OPENLINEAGE_TRANSPORT``: ``file`` (default), ``console``,
  ``http`` or ``none``.
- ``PEDIGREE_OPENLINEAGE_FILE``: the events file for ``file``; by default
  ``openlineage/events.jsonl`` beside the artifacts (under ``PEDIGREE_VAR``
  when the artifacts are in S3). One JSON event per line.
- ``PEDIGREE_OPENLINEAGE_URL`` (and optional ``PEDIGREE_OPENLINEAGE_API_KEY``,
  sent as ``Authorization: Bearer <key>``) for ``http``: the server's base URL,
  e.g. a Marquez server ``http://marquez:5000``; a path prefix (a server
  behind a proxy at ``/marquez``) is kept. Events are POSTed to
  ``<url>/<PEDIGREE_OPENLINEAGE_ENDPOINT>`` (default ``api/v1/lineage``).
- ``PEDIGREE_OPENLINEAGE_TIMEOUT`` (seconds per attempt, default 2) and
  ``PEDIGREE_OPENLINEAGE_RETRIES`` (default 1) bound how long an ``http`` emit
  may hold up the work: at most (retries + 1) x timeout per event. The client's
  own default (5 retries with back-off) held an upload for ~9 s per event when
  the server was down or answered 500.
- ``PEDIGREE_OPENLINEAGE_NAMESPACE``: the namespace of jobs and datasets
  (default ``pedigree``).

Emitting never breaks the work it describes: a transport error is logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import traceback
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attr
from django.conf import settings
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    DatasetFacet,
    error_message_run,
    ownership_dataset,
    schema_dataset,
)
from openlineage.client.transport.console import ConsoleConfig, ConsoleTransport
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import HttpConfig, HttpTransport
from openlineage.client.transport.noop import NoopConfig, NoopTransport
from openlineage.client.transport.transport import Transport

logger = logging.getLogger(__name__)

PRODUCER = "https://pedigree.local/governance"
GOVERNANCE_FACET_SCHEMA = "https://pedigree.local/spec/facets/1-0-0/PedigreeGovernanceDatasetFacet.json"
INGEST_JOB = "pedigree.ingest"
REDACTION_JOB = "pedigree.redaction"
FINE_TUNE_JOB = "pedigree.fine_tune"


@attr.define
class PedigreeGovernanceDatasetFacet(DatasetFacet):
    """Custom facet: the governance facts of a Pedigree dataset version."""

    licences: list[dict[str, Any]] = attr.field(factory=list)
    piiTypes: list[str] = attr.field(factory=list)  # noqa: N815
    piiStatus: str = attr.field(default="")  # noqa: N815
    status: str = attr.field(default="active")
    allowedPurposes: list[str] = attr.field(factory=list)  # noqa: N815
    residencyRegions: list[str] = attr.field(factory=list)  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return GOVERNANCE_FACET_SCHEMA + "#/$defs/PedigreeGovernanceDatasetFacet"


def _setting(name: str, default: str) -> str:
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name, default)
    return str(value)


def namespace() -> str:
    """The OpenLineage namespace of Pedigree's jobs and datasets."""
    return _setting("PEDIGREE_OPENLINEAGE_NAMESPACE", "pedigree")


def default_events_file() -> Path:
    """``openlineage/events.jsonl`` beside the artifacts (local store) or under the var folder."""
    artifacts = str(settings.PEDIGREE_ARTIFACTS)
    root = Path(settings.VAR_DIR) if "://" in artifacts else Path(artifacts)
    return root / "openlineage" / "events.jsonl"


TransportConfig = tuple[str, str, str, str, str, str, str]


def _transport_config() -> TransportConfig:
    return (
        _setting("PEDIGREE_OPENLINEAGE_TRANSPORT", "file").lower(),
        _setting("PEDIGREE_OPENLINEAGE_FILE", "") or str(default_events_file()),
        _setting("PEDIGREE_OPENLINEAGE_URL", ""),
        _setting("PEDIGREE_OPENLINEAGE_API_KEY", ""),
        _setting("PEDIGREE_OPENLINEAGE_ENDPOINT", "api/v1/lineage"),
        _setting("PEDIGREE_OPENLINEAGE_TIMEOUT", "2"),
        _setting("PEDIGREE_OPENLINEAGE_RETRIES", "1"),
    )


def _number(name: str, text: str, *, integer: bool) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = -1
    if value < 0 or (not integer and value == 0):
        kind = "a whole number >= 0" if integer else "a number of seconds > 0"
        raise ValueError(f"{name}={text!r}: use {kind}")
    return value


def http_config(url: str, *, api_key: str = "", endpoint: str = "api/v1/lineage", timeout: str = "2", retries: str = "1") -> HttpConfig:
    """The HTTP transport's configuration, with bounded waiting and the URL's path kept.

    The client joins ``url`` and ``endpoint`` with ``urljoin``, which drops the
    last path segment of a URL without a trailing slash
    (``http://proxy/marquez`` + ``api/v1/lineage`` -> ``http://proxy/api/v1/lineage``),
    so the base URL always gets one.
    """
    retry_count = int(_number("PEDIGREE_OPENLINEAGE_RETRIES", retries, integer=True))
    params: dict[str, Any] = {
        "url": url.rstrip("/") + "/",
        "endpoint": endpoint.lstrip("/"),
        "timeout": _number("PEDIGREE_OPENLINEAGE_TIMEOUT", timeout, integer=False),
        # Retry connection errors and 5xx answers a few times only, quickly: the
        # work waits for the emit (START before COMPLETE, in order).
        "retry": {"total": retry_count, "connect": retry_count, "read": retry_count, "status": retry_count, "backoff_factor": 0.2},
    }
    if api_key:
        params["auth"] = {"type": "api_key", "apiKey": api_key}
    return HttpConfig.from_dict(params)


def make_transport() -> Transport:
    """The configured transport (see the module docstring)."""
    kind, events_file, url, api_key, endpoint, timeout, retries = _transport_config()
    if kind == "file":
        path = Path(events_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileTransport(FileConfig(log_file_path=str(path), append=True))
    if kind == "console":
        return ConsoleTransport(ConsoleConfig())
    if kind == "http":
        if not url:
            raise ValueError("PEDIGREE_OPENLINEAGE_TRANSPORT=http needs PEDIGREE_OPENLINEAGE_URL")
        return HttpTransport(http_config(url, api_key=api_key, endpoint=endpoint, timeout=timeout, retries=retries))
    if kind in {"none", "noop", "off"}:
        return NoopTransport(NoopConfig())
    raise ValueError(f"PEDIGREE_OPENLINEAGE_TRANSPORT={kind!r}: use file, console, http or none")


_clients: dict[TransportConfig, OpenLineageClient] = {}


def client() -> OpenLineageClient:
    """The OpenLineage client for the current configuration (one per configuration)."""
    key = _transport_config()
    if key not in _clients:
        _clients[key] = OpenLineageClient(transport=make_transport())
    return _clients[key]


def emit(event: RunEvent) -> None:
    """Send one event through the configured transport; log (never raise) on failure."""
    try:
        client().emit(event)
    except Exception as error:
        state = getattr(event.eventType, "value", event.eventType)
        logger.warning("could not emit the OpenLineage %s event of run %s: %s", state, event.run.runId, error, exc_info=True)


def _schema_type(field_type: str) -> str:
    return {"string": "STRING", "integer": "INTEGER", "number": "DOUBLE", "boolean": "BOOLEAN"}.get(field_type, field_type.upper())


def version_facets(version: Any) -> dict[str, Any]:
    """The OpenLineage facets of a dataset version: schema, ownership, governance."""
    fields = [
        schema_dataset.SchemaDatasetFacetFields(
            name=str(item["name"]),
            type=_schema_type(str(item.get("type", ""))),
            description="training text" if item.get("text") else None,
            ordinal_position=position,
        )
        for position, item in enumerate(version.fields or (), start=1)
    ]
    dataset = version.dataset
    owners = [ownership_dataset.Owner(name=f"group:{dataset.owner_group.name}", type="OWNER")]
    if dataset.steward_id:
        owners.append(ownership_dataset.Owner(name=f"user:{dataset.steward.get_username()}", type="STEWARD"))
    governance = PedigreeGovernanceDatasetFacet(
        licences=[
            {
                "id": version.licence,
                "training": version.permits_training,
                "commercialUse": version.permits_commercial_use,
                "attribution": version.requires_attribution,
                "shareAlike": version.requires_share_alike,
                "holder": version.copyright_holder,
            }
        ],
        piiTypes=sorted(version.pii_types or ()),
        piiStatus=str(version.pii_status),
        status=str(version.status),
        allowedPurposes=sorted(version.allowed_purposes or ()),
        residencyRegions=sorted(version.residency_regions or ()),
    )
    return {
        "schema": schema_dataset.SchemaDatasetFacet(fields=fields),
        "ownership": ownership_dataset.OwnershipDatasetFacet(owners=owners),
        "pedigree_governance": governance,
    }


def version_name(version: Any) -> str:
    """The OpenLineage dataset name of a version: ``<dataset>/v<number>``."""
    return f"{version.dataset.name}/v{version.number}"


def input_version(version: Any) -> InputDataset:
    """A dataset version as a run input."""
    return InputDataset(namespace=namespace(), name=version_name(version), facets=version_facets(version))


def output_version(version: Any) -> OutputDataset:
    """A dataset version as a run output."""
    return OutputDataset(namespace=namespace(), name=version_name(version), facets=version_facets(version))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class LineageRun:
    """One run of a job, reported as START then COMPLETE or FAIL.

    ``run_id`` is a UUID; the lineage graph uses it as the run node's reference.
    """

    def __init__(self, job: str, *, inputs: Sequence[InputDataset] = (), run_id: str | None = None) -> None:
        self.job = job
        self.run_id = run_id or str(uuid.uuid4())
        self.inputs = list(inputs)

    def _event(self, state: RunState, outputs: Sequence[OutputDataset] = (), run_facets: Mapping[str, Any] | None = None) -> RunEvent:
        return RunEvent(
            eventType=state,
            eventTime=_now(),
            run=Run(runId=self.run_id, facets=dict(run_facets or {})),
            job=Job(namespace=namespace(), name=self.job),
            inputs=self.inputs,
            outputs=list(outputs),
            producer=PRODUCER,
        )

    def start(self) -> LineageRun:
        """Emit START."""
        emit(self._event(RunState.START))
        return self

    def complete(self, outputs: Sequence[OutputDataset] = ()) -> None:
        """Emit COMPLETE with the run's outputs."""
        emit(self._event(RunState.COMPLETE, outputs))

    def fail(self, error: BaseException) -> None:
        """Emit FAIL with the error message and stack trace."""
        facet = error_message_run.ErrorMessageRunFacet(
            message=str(error) or type(error).__name__,
            programmingLanguage="python",
            stackTrace="".join(traceback.format_exception(error))[-4000:],
        )
        emit(self._event(RunState.FAIL, run_facets={"errorMessage": facet}))


def start_ingest_run(*, dataset: Any, filename: str, source_uri: str = "") -> LineageRun:
    """START of an ingest run: the source file (upload or URI) into ``dataset``."""
    source = InputDataset(namespace="upload" if not source_uri else source_uri.split("://")[0] or "file", name=source_uri or filename)
    return LineageRun(INGEST_JOB, inputs=[source]).start()


def complete_ingest_run(run: LineageRun, version: Any, *, created: bool) -> None:
    """COMPLETE of an ingest run; a new version also gets a run node in the graph."""
    run.complete([output_version(version)])
    if created:
        from governance.lineage import graph
        from governance.lineage.services import record_run

        try:
            record_run(
                run_id=run.run_id,
                label=f"ingest of {version.dataset.name} v{version.number}",
                outputs=[graph.node_for_dataset_version(version)],
            )
        except Exception:
            logger.warning("could not record ingest run %s in the lineage graph", run.run_id, exc_info=True)


def start_redaction_run(*, source: Any) -> LineageRun:
    """START of a redaction run reading ``source``."""
    return LineageRun(REDACTION_JOB, inputs=[input_version(source)]).start()


def parse_run_event(data: Mapping[str, Any]) -> RunEvent:
    """Build the client's ``RunEvent`` model from an emitted event's JSON (validating it)."""

    def dataset_facets(raw: Mapping[str, Any]) -> dict[str, Any]:
        facets: dict[str, Any] = {}
        for name, facet in (raw or {}).items():
            if name == "schema":
                facets[name] = schema_dataset.SchemaDatasetFacet(
                    fields=[
                        schema_dataset.SchemaDatasetFacetFields(
                            name=f["name"], type=f.get("type"), description=f.get("description"),
                            ordinal_position=f.get("ordinal_position"),
                        )
                        for f in facet.get("fields", [])
                    ]
                )
            elif name == "ownership":
                facets[name] = ownership_dataset.OwnershipDatasetFacet(
                    owners=[ownership_dataset.Owner(name=o["name"], type=o.get("type")) for o in facet.get("owners", [])]
                )
            elif name == "pedigree_governance":
                facets[name] = PedigreeGovernanceDatasetFacet(
                    licences=facet.get("licences", []),
                    piiTypes=facet.get("piiTypes", []),
                    piiStatus=facet.get("piiStatus", ""),
                    status=facet.get("status", ""),
                    allowedPurposes=facet.get("allowedPurposes", []),
                    residencyRegions=facet.get("residencyRegions", []),
                )
        return facets

    run_facets: dict[str, Any] = {}
    error = data["run"].get("facets", {}).get("errorMessage")
    if error:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=error["message"], programmingLanguage=error["programmingLanguage"], stackTrace=error.get("stackTrace")
        )
    return RunEvent(
        eventType=RunState(data["eventType"]),
        eventTime=data["eventTime"],
        run=Run(runId=data["run"]["runId"], facets=run_facets),
        job=Job(namespace=data["job"]["namespace"], name=data["job"]["name"]),
        inputs=[InputDataset(namespace=d["namespace"], name=d["name"], facets=dataset_facets(d.get("facets", {}))) for d in data.get("inputs", [])],
        outputs=[OutputDataset(namespace=d["namespace"], name=d["name"], facets=dataset_facets(d.get("facets", {}))) for d in data.get("outputs", [])],
        producer=data["producer"],
    )
