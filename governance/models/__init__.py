"""Governance models: one concern per module."""

from governance.models.audit import AuditChainHead, AuditEvent
from governance.models.datasets import Dataset, DatasetVersion

__all__ = ["AuditChainHead", "AuditEvent", "Dataset", "DatasetVersion"]
