"""Tamper-evident audit log: every access decision and every byte range served."""

from genoshare.audit.log import AuditLog, ChainReport, Entry

__all__ = ["AuditLog", "ChainReport", "Entry"]
