"""Governance models: one concern per module."""

from governance.models.audit import AuditChainHead, AuditEvent
from governance.models.datasets import Dataset, DatasetTransfer, DatasetVersion
from governance.models.lineage import (
    LineageEdge,
    LineageGraphState,
    LineageNode,
    QuarantineException,
)
from governance.models.lineage_assets import LineageEndpoint, LineageModelVersion
from governance.models.pii import (
    PiiDatasetSalt,
    PiiEntityReview,
    PiiFinding,
    PiiRedaction,
    PiiScan,
)

__all__ = ["AuditChainHead", "AuditEvent", "Dataset", "DatasetTransfer", "DatasetVersion"]
__all__ += ["LineageEdge", "LineageGraphState", "LineageNode", "QuarantineException"]
__all__ += ["LineageEndpoint", "LineageModelVersion"]  # console stand-ins until the real models land
__all__ += ["PiiDatasetSalt", "PiiEntityReview", "PiiFinding", "PiiRedaction", "PiiScan"]
