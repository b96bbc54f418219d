"""Shared fixtures: catalogs on both backends, small storage trees, running the real CLI.

Outside resources (the PostgreSQL server, `../shared/data`, Debian's samtools) are skipped with
the reason where they are absent, except in CI (`CI=true`), where a missing one is a failure:
tests must never vanish from CI without a word.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import create_engine, text

from wgsvault.catalog import Catalog, open_catalog

PG_URL = os.environ.get("WGSVAULT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
#: the shared data beside the project (`../shared/data`), or where WGSVAULT_SHARED says
SHARED = Path(
    os.environ.get("WGSVAULT_SHARED") or Path(__file__).resolve().parents[2] / "shared" / "data"
)
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose outside resource is absent; in CI (`CI=true`) fail it instead."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing resource is a failure, not a skip)")
    pytest.skip(reason)


def shared(*parts: str) -> Path:
    """A file or folder of the shared data; unavailable (skip, or fail in CI) when absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        unavailable(f"shared data absent: {path}")
    return path


@pytest.fixture
def system_samtools() -> str:
    """Debian's samtools (its own htslib): an independent client of what the vault writes."""
    found = shutil.which("samtools")
    if found is None:
        unavailable("Debian samtools is not installed (apt-get install samtools)")
    return found


def _pg_admin_url() -> str:
    return PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)


def pg_available() -> bool:
    try:
        eng = create_engine(_pg_admin_url(), connect_args={"connect_timeout": 3})
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
        return True
    except Exception:
        return False


_PG = pg_available()


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test (skipped where no server is reachable)."""
    if not _PG:
        unavailable(f"PostgreSQL not reachable at {PG_URL}")
    name = f"wgsvault_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = PG_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A catalog URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    cat = open_catalog(catalog_url)
    yield cat
    cat.close()


@pytest.fixture
def sqlite_catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    yield cat
    cat.close()


def make_files(root: Path, files: dict[str, int]) -> None:
    """Create files (sparse, of the given sizes) below `root`."""
    for rel, size in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as fh:
            fh.truncate(size)


def run_cli(
    *args: str, home: Path, unprivileged: bool = False, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real `wgsvault` command in a subprocess with its own vault home.

    `unprivileged` drops root's permission-bypass capabilities, so file modes apply as they would
    to the service account (the test suite may run as root, as CI does).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("WGSVAULT_")}
    env["WGSVAULT_HOME"] = str(home)
    env["COLUMNS"] = "200"
    cmd = [sys.executable, "-m", "wgsvault", *args]
    if unprivileged and os.geteuid() == 0:
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cmd]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc
