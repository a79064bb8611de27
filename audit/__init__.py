"""The decision ledger: tamper-evident, durable, group-committed, indexed from the log.

    LedgerRecord ──▶ LedgerWriter.append ──▶ seal: encode once, hash ──▶ SegmentLog
                     (callers return only       one write, one fdatasync    (the truth: each
                      when durable)             per batch                    instance's frames)
                                                                                │ Indexer thread
    LedgerReader: index + the log's not-yet-indexed tail ◀── index.db ◀────────┘
    verify: every chain through its segments, and the index against them.

audit/record.py defines the one record schema and the chain.
"""

from audit.ports import LedgerStore
from audit.record import Actor, ContextValue, FiredRule, LedgerRecord, RulesetRef
from audit.segments import SegmentLog
from audit.verify import VerifyReport, verify
from audit.writer import LedgerBusy, LedgerClosed, LedgerError, LedgerWriter

__all__ = [
    "Actor",
    "ContextValue",
    "FiredRule",
    "LedgerBusy",
    "LedgerClosed",
    "LedgerError",
    "LedgerRecord",
    "LedgerStore",
    "LedgerWriter",
    "RulesetRef",
    "SegmentLog",
    "VerifyReport",
    "verify",
]
