"""The catalog: what is stored where, in SQLite (embedded default) or PostgreSQL (production)."""

from wgsvault.catalog.db import Catalog, open_catalog

__all__ = ["Catalog", "open_catalog"]
