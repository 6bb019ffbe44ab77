"""The audit trail: records, their store, the batching writer and its spool."""

from authorizer.audit.record import AuditRecord
from authorizer.audit.spool import Spool, SpoolFull
from authorizer.audit.store import AuditQuery, AuditStore
from authorizer.audit.writer import AuditBackpressure, AuditUnavailable, AuditWriter, WriterSettings

__all__ = ["AuditBackpressure", "AuditQuery", "AuditRecord", "AuditStore", "AuditUnavailable", "AuditWriter", "Spool",
           "SpoolFull", "WriterSettings"]
