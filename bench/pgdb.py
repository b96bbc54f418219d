"""Scratch PostgreSQL databases for the benchmarks (`WGSVAULT_TEST_PG`, as the tests use)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, text

PG = os.environ.get("WGSVAULT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _engine(**kwargs: Any) -> Engine:
    return create_engine(PG.replace("postgresql://", "postgresql+psycopg://", 1), **kwargs)


@contextmanager
def pg_database(tag: str) -> Iterator[str]:
    """A new database on the server of `PG`, dropped afterwards; yields its URL."""
    name = f"wgsvault_bench_{tag}_{uuid.uuid4().hex[:8]}"
    admin = _engine(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pg_reachable() -> bool:
    """Whether the server of `PG` answers (within 3 s)."""
    try:
        eng = _engine(connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
        return True
    except Exception:
        return False
