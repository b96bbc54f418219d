"""Catalog: both backends open and migrate; migrations agree with the models; URLs; manifests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from wgsvault.catalog import Catalog, open_catalog
from wgsvault.catalog.db import normalise_url
from wgsvault.catalog.manifest import ManifestError, import_manifest
from wgsvault.catalog.models import Base, Genome
from wgsvault.config import catalog_url
from wgsvault.errors import CatalogError, InputError


def test_migrations_match_models(catalog: Catalog) -> None:
    with catalog.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert catalog.revision() is not None
    assert catalog.upgrade() is False  # already at head


def test_head_revision_constant_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    from wgsvault.catalog.db import HEAD_REVISION, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


def test_backend_is_what_the_url_says(catalog: Catalog, catalog_url: str) -> None:
    assert catalog.backend == ("sqlite" if catalog_url.startswith("sqlite") else "postgresql")


def test_url_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WGSVAULT_CATALOG", raising=False)
    monkeypatch.setenv("WGSVAULT_HOME", str(tmp_path))
    assert catalog_url() == f"sqlite:///{tmp_path}/catalog.sqlite"
    monkeypatch.setenv("WGSVAULT_CATALOG", "postgresql://u@h/db")
    assert catalog_url() == "postgresql://u@h/db"
    assert catalog_url("sqlite:///x.db") == "sqlite:///x.db"
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"


def test_unreachable_or_bad_catalog_is_one_line() -> None:
    with pytest.raises(CatalogError, match="not valid"):
        open_catalog("::nonsense::")
    with pytest.raises(CatalogError, match="cannot open catalog") as exc:
        open_catalog("postgresql://nobody@127.0.0.1:1/none")
    assert "\n" not in str(exc.value)


MANIFEST = """genome_id,patient_group,indication,requisition_region,sequencing_date
NGC00001,rare disease,epilepsy,region-east,2026-01-15
NGC00002,hereditary cancer,BRCA,region-west,2025-11-02
"""


def test_manifest_import_and_update(catalog: Catalog, tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_text(MANIFEST)
    res = import_manifest(catalog, f)
    assert (res.added, res.updated) == (2, 0)
    f.write_text("genome_id;patient_group\nNGC00001;neonatal\nNGC00003;\n")  # semicolons
    res = import_manifest(catalog, f)
    assert (res.added, res.updated) == (1, 1)
    with catalog.session() as s:
        g = {x.name: x for x in s.scalars(select(Genome))}
    assert g["NGC00001"].patient_group == "neonatal"
    assert g["NGC00001"].indication == "epilepsy"  # an absent column keeps the known value
    assert g["NGC00002"].sequencing_date == dt.date(2025, 11, 2)
    assert g["NGC00003"].patient_group is None


def test_manifest_errors_have_line_numbers_and_import_nothing(
    sqlite_catalog: Catalog, tmp_path: Path
) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(
        MANIFEST
        + "NGC00001,rare disease,x,region-east,2026-01-15\n"
        + "../etc,rare disease,x,region-east,2026-01-15\n"
        + "NGC00009,rare disease,x,region-east,2026-13-01\n"
        + "NGC00010,rare disease\n"
        + "NGC00011,a,b,c,2999-01-01\n"
    )
    with pytest.raises(ManifestError) as exc:
        import_manifest(sqlite_catalog, f)
    assert exc.value.errors == [
        f"{f}:4: genome_id NGC00001 repeats line 2",
        f"{f}:5: genome_id '../etc' is not a valid id (letters, digits, . _ -)",
        f"{f}:6: sequencing_date '2026-13-01' is not a date YYYY-MM-DD",
        f"{f}:7: 2 fields, header has 5",
        f"{f}:8: sequencing_date 2999-01-01 is in the future",
    ]
    with sqlite_catalog.session() as s:
        assert s.scalars(select(Genome)).all() == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty manifest"),
        ("genome,group\nx,y\n", "unknown column(s) genome, group"),
        ("patient_group\nx\n", "bad header"),
    ],
)
def test_manifest_bad_header(
    sqlite_catalog: Catalog, tmp_path: Path, content: str, message: str
) -> None:
    f = tmp_path / "m.csv"
    f.write_text(content)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_manifest(sqlite_catalog, f)


def test_manifest_not_utf8(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_bytes(b"genome_id\n\xff\xfe\n")
    with pytest.raises(InputError, match="not UTF-8"):
        import_manifest(sqlite_catalog, f)
