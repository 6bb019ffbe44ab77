"""The audit trail: records, their store, the batching writer."""

from authorizer.audit.record import AuditRecord
from authorizer.audit.store import AuditQuery, AuditStore
from authorizer.audit.writer import AuditBackpressure, AuditWriter

__all__ = ["AuditBackpressure", "AuditQuery", "AuditRecord", "AuditStore", "AuditWriter"]
