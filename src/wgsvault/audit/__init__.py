"""audit: the append-only, hash-chained log of every deletion, conversion, access and refusal.

Stage: accountability. Every stage that reads or lets go of clinical genome data appends an entry
here, in the same transaction as the change it records (`append`), or in one of its own
(`record`). `verify` recomputes the whole chain and detects an edited, removed, inserted or
reordered entry; `show` reads entries back for an auditor. Entries name genomes by their national
id only and refuse patient-data keys.

May use: the catalog (tables `audit`, `audit_head`) and the utilities (errors). Used by apply,
access, serve and the CLI; it knows nothing of them.
"""

from wgsvault.audit.chain import (
    EVENTS,
    GENESIS,
    PATIENT_KEYS,
    append,
    canonical_json,
    default_actor,
    entry_hash,
    record,
    utc_iso,
)
from wgsvault.audit.check import AuditCheck, verify
from wgsvault.audit.read import show

__all__ = [
    "EVENTS",
    "GENESIS",
    "PATIENT_KEYS",
    "AuditCheck",
    "append",
    "canonical_json",
    "default_actor",
    "entry_hash",
    "record",
    "show",
    "utc_iso",
    "verify",
]
