"""The decision ledger: tamper-evident, durable, group-committed.

    LedgerRecord ──▶ LedgerWriter.append ──▶ one batch, one transaction, one fsync ──▶ LedgerStore
                     (seq, recorded_at,        (callers return only when durable)      (SQLite WAL)
                      prev_hash, hash)
    verify(store) walks the hash chain and names the first broken link.

See audit/record.py for the one record schema and the chain's definition.
"""

from audit.ports import LedgerStore
from audit.record import Actor, ContextValue, FiredRule, LedgerRecord, RulesetRef
from audit.sqlite import SqliteLedgerStore
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
    "SqliteLedgerStore",
    "VerifyReport",
    "verify",
]
