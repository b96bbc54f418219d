"""Opening the catalog: URL resolution, engine set-up, migrations.

The core never knows which backend runs: SQLite (a file, the embedded default) and PostgreSQL
(production) are both reached through one SQLAlchemy engine. A plain `postgresql://` URL is given
the psycopg 3 driver. Opening a catalog brings its schema to the newest alembic revision, so an
upgraded wgsvault migrates its catalog on first use; `wgsvault catalog upgrade` does it explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from wgsvault.errors import CatalogError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
#: the newest migration; a test checks it against alembic's script directory. Knowing it here
#: spares every command alembic's import time when the catalog is already current.
HEAD_REVISION = "0008"


def normalise_url(url: str) -> str:
    """Give plain PostgreSQL URLs the psycopg 3 driver; check the URL parses."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise CatalogError(f"catalog URL {url!r} is not valid: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_conn: Any, _record: object) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@dataclass
class Catalog:
    """An open catalog: an engine plus a session factory."""

    url: str
    engine: Engine

    def __post_init__(self) -> None:
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def upgrade(self) -> bool:
        """Migrate to the newest revision; True if anything was applied."""
        at = self.revision()
        if at == HEAD_REVISION:
            return False
        from alembic import command
        from alembic.util.exc import CommandError

        try:
            with self.engine.begin() as conn:
                command.upgrade(alembic_config(conn), "head")
        except CommandError:  # a revision this release does not know: made by a newer one
            raise CatalogError(
                f"catalog {make_url(self.url)!r} is at revision {at}, which this wgsvault does not "
                f"know (its newest is {HEAD_REVISION}): use the release that wrote it"
            ) from None
        return True

    def close(self) -> None:
        self.engine.dispose()


def open_catalog(url: str, *, migrate: bool = True) -> Catalog:
    """Open (and by default migrate) the catalog at `url`."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url, future=True)
    except (ArgumentError, ImportError) as exc:
        raise CatalogError(f"catalog URL {parsed!r}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    catalog = Catalog(url, engine)
    try:
        if migrate:
            catalog.upgrade()
        else:
            catalog.revision()
    except OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise CatalogError(f"cannot open catalog {parsed!r}: {reason}") from None
    except SQLAlchemyError as exc:
        engine.dispose()
        raise CatalogError(f"catalog {parsed!r}: {exc}") from None
    except BaseException:  # e.g. a revision this release does not know: no connection left open
        engine.dispose()
        raise
    return catalog
