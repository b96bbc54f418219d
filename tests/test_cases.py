"""The synthetic case history (demo/cases.py): exact, deterministic, consistent, realistic, and
imported by the demo once per change."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from rich.console import Console

from wgsvault.catalog import Catalog
from wgsvault.catalog.manifest import import_manifest
from wgsvault.demo import cases, estate
from wgsvault.demo.cases import generate, write_case_manifest

DATES = ("requisition_date", "sample_date", "sequencing_date", "delivery_date", "report_date")
AS_OF = dt.date(2026, 11, 30)


def test_n_genomes_from_2019_to_2026_same_seed_same_history() -> None:
    whole = generate(3000, as_of=dt.date(2027, 3, 1))
    assert sum(r["requisition_date"] < "2027" for r in whole) == 3000
    assert generate(3000, as_of=AS_OF) == generate(3000, as_of=AS_OF)
    assert generate(3000, as_of=AS_OF, seed=1) != generate(3000, as_of=AS_OF)
    assert len({r["genome_id"] for r in whole}) == len(whole)


def test_a_later_day_only_reveals_more() -> None:
    early = generate(2000, as_of=dt.date(2024, 6, 15))
    late = {r["genome_id"]: r for r in generate(2000, as_of=AS_OF)}
    for r in early:
        later = late[r["genome_id"]]
        assert {k: later[k] for k in ("patient_group", "requisition_region", "urgency")} == {
            k: r[k] for k in ("patient_group", "requisition_region", "urgency")
        }
        for d in DATES:  # what had happened stays; what had not may happen since
            assert not r[d] or later[d] == r[d], (r, later)
    assert max(r["requisition_date"] for r in early) <= "2024-06-15"


def test_rows_are_consistent() -> None:
    rows = generate(4000, as_of=AS_OF)
    families: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        dates = [r[d] for d in DATES]
        known = [d for d in dates if d]
        assert dates[: len(known)] == known, r  # steps happen in order, none skipped
        assert known == sorted(known) and known[-1] <= AS_OF.isoformat()
        assert r["requisition_region"] in cases.REGIONS and r["patient_group"] in cases.GROUPS
        assert r["urgency"] in ("acute", "urgent", "standard")
        assert r["sex"] in ("female", "male", "unknown")
        assert (r["answered"] in ("yes", "no")) == bool(r["report_date"])
        if r["family_id"]:
            families[r["family_id"]].append(r)
    for members in families.values():
        assert 2 <= len(members) <= 3
        shared = {(m["patient_group"], m["urgency"], m["requisition_date"]) for m in members}
        assert len(shared) == 1
        assert [m["sex"] for m in members][1:] == ["female", "male"][: len(members) - 1]
    fetal = [r for r in rows if r["patient_group"] == "fetal medicine"]
    assert fetal and all(r["family_id"] for r in fetal)  # always trios


def test_the_figures_look_like_a_national_centre() -> None:
    rows = generate(26_000, as_of=AS_OF)
    assert 25_000 < len(rows) <= 26_000  # December 2026 is still to come
    by_case = {r["family_id"] or r["genome_id"]: r for r in rows}
    urgency = Counter(c["urgency"] for c in by_case.values())
    assert 0.02 < urgency["acute"] / len(by_case) < 0.06
    assert urgency["standard"] > urgency["urgent"] > urgency["acute"]
    reported = [c for c in by_case.values() if c["report_date"]]
    yes = sum(c["answered"] == "yes" for c in reported) / len(reported)
    assert 0.3 <= yes <= 0.5
    day = dt.date.fromisoformat
    acute = [(day(c["report_date"]) - day(c["requisition_date"])).days
             for c in reported if c["urgency"] == "acute"]  # fmt: skip
    within = sum(d <= 14 for d in acute) / len(acute)
    assert 0.8 < within < 1.0  # mostly within two weeks, with a tail
    open_cases = [c for c in by_case.values() if not c["report_date"]]
    recent = sum(c["requisition_date"] >= "2026-08-01" for c in open_cases)
    assert recent / len(open_cases) > 0.8 and recent < len(open_cases)  # and a few stuck
    per_year = Counter(r["sequencing_date"][:4] for r in rows if r["sequencing_date"])
    years = [per_year[str(y)] for y in range(2019, 2026)]
    assert years == sorted(years)  # a growing centre
    regions = Counter(r["requisition_region"] for r in rows)
    assert [r for r, _ in regions.most_common()] == list(cases.REGIONS)  # by population


def test_given_ids_get_cases_and_the_manifest_imports(sqlite_catalog: Catalog,
                                                      tmp_path: Path) -> None:  # fmt: skip
    ids = ["NGC00001", "NGC00002", "NGC00003"]
    summary = write_case_manifest(tmp_path / "cases.csv", ids, n=1500, as_of=AS_OF)
    assert [r["genome_id"] for r in summary.given] == ids
    assert all(not r["family_id"] for r in summary.given)
    with open(tmp_path / "cases.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == cases.COLUMNS and len(rows) == summary.genomes
    assert import_manifest(sqlite_catalog, tmp_path / "cases.csv").added == summary.genomes
    assert summary.cases == len({r["family_id"] or r["genome_id"] for r in rows})
    assert sum(summary.by_group.values()) == summary.genomes
    with pytest.raises(ValueError, match="too small"):
        generate(2, as_of=dt.date(2019, 1, 31), genome_ids=ids)


def test_the_demo_imports_the_history_once_per_change(
    sqlite_catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wgsvault.catalog.manifest as manifest_module

    monkeypatch.setattr(estate, "CASES", 800)
    ids = ["NGC00001", "NGC00002"]
    first = generate(800, as_of=dt.date(2019, 12, 31), genome_ids=ids)
    estate_manifest = tmp_path / "manifest.csv"
    with open(estate_manifest, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cases.COLUMNS)
        w.writeheader()
        w.writerows(r for r in first if r["genome_id"] in ids)
    import_manifest(sqlite_catalog, estate_manifest)
    imports: list[Path] = []
    real = manifest_module.import_manifest

    def counted(cat: Catalog, path: Path) -> object:
        imports.append(path)
        return real(cat, path)

    monkeypatch.setattr(manifest_module, "import_manifest", counted)
    out = io.StringIO()
    history = estate.import_cases(sqlite_catalog, tmp_path, estate_manifest, Console(file=out))
    assert imports == [tmp_path / "cases.csv"] and history.given[0]["genome_id"] == ids[0]
    assert f"{history.genomes:,} genomes" in out.getvalue()
    # the estate's manifest agrees with the history: importing it again changes nothing, and the
    # unchanged history is not imported again
    import_manifest(sqlite_catalog, estate_manifest)
    estate.import_cases(sqlite_catalog, tmp_path, estate_manifest, Console(file=out))
    assert len(imports) == 1
