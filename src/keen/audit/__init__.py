"""The audit log: a hash chain of security-relevant actions (SPEC 8.3)."""

from keen.audit.chain import AuditEntry, ChainReport, Origin, Risk, append, verify

__all__ = ["AuditEntry", "ChainReport", "Origin", "Risk", "append", "verify"]
