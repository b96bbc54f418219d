"""catalog: the vault's memory of what is stored where, and of everything done to it.

Stage: catalog. `models` are the tables (SQLAlchemy 2: controllers, genomes, files, scans,
proofs, approvals, the apply journal, quarantine, locks, the audit chain, principals, tokens,
grants); `db` opens a catalog on SQLite (a file, the embedded default) or PostgreSQL
(production) and migrates it with alembic (`migrations/`); `manifest` imports the clinical
context of genomes from CSV.

May use: the utilities only (errors). Every stage above uses it.
"""

from wgsvault.catalog.db import Catalog, open_catalog

__all__ = ["Catalog", "open_catalog"]
