"""Governance reports against figures computed by hand on a small case set (SQLite and
PostgreSQL): empty months, open cases, a trio, suppressed cells; the manifest's case columns."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from wgsvault.catalog import Catalog
from wgsvault.catalog.manifest import ManifestError, import_manifest
from wgsvault.catalog.models import ApplyRun, Genome, JournalEntry
from wgsvault.errors import InputError, PolicyError
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan
from wgsvault.report.governance import genomes, quotas, storage, turnaround
from wgsvault.report.suppress import suppress
from wgsvault.report.targets import Quota, Targets, Turnaround, load_targets

from conftest import make_files, run_cli

TODAY = dt.date(2025, 6, 30)
HEADER = (
    "genome_id,patient_group,requisition_region,sequencing_date,requisition_date,"
    "delivery_date,report_date,urgency,family_id,sex,answered"
)
# one line per genome; see the module docstring of report/governance.py for the definitions
CASES = [
    "K1,kidney,Region Hovedstaden,2025-06-05,2025-05-20,2025-06-10,2025-06-15,standard,,female,yes",
    "K2,kidney,Region Hovedstaden,2025-06-12,2025-06-01,2025-06-20,,urgent,,male,",
    "K3,kidney,Region Sjælland,2025-03-02,2025-02-01,2025-03-10,2025-05-30,standard,,female,no",
    "K4,kidney,Region Sjælland,2024-11-11,2024-10-01,2024-11-20,2024-12-01,standard,,male,yes",
    "F1,fetal medicine,Region Midtjylland,2025-06-20,2025-06-10,2025-06-22,2025-06-23,acute,T1,female,yes",  # noqa: E501
    "F2,fetal medicine,Region Midtjylland,2025-06-20,2025-06-10,2025-06-22,2025-06-23,urgent,T1,male,yes",  # noqa: E501
    "F3,fetal medicine,Region Midtjylland,2025-06-20,2025-06-10,2025-06-22,2025-06-24,urgent,T1,unknown,yes",  # noqa: E501
    "F4,fetal medicine,Region Midtjylland,2025-01-15,2025-01-02,2025-01-20,2025-01-30,acute,,female,no",  # noqa: E501
    "P1,primary immunodeficiency,Region Nordjylland,2025-04-01,2025-01-10,,,acute,,male,",
    "X1,,,2025-06-01,,,,,,,",
    "K5,kidney,Region Hovedstaden,,2025-06-25,,,urgent,,female,",
]  # fmt: skip
TARGETS = Targets(
    quotas={
        "kidney": Quota(per_year=100, backlog=20, first_year=2025),
        "fetal medicine": Quota(per_year=1320, unit="cases"),
        "primary immunodeficiency": Quota(per_year=500, backlog=250, first_year=2023),
    },
    turnaround=Turnaround(acute=14, urgent=42, standard=84),
    population={"Region Hovedstaden": 1_900_000, "Region Midtjylland": 1_370_000},
)


@pytest.fixture
def cases(catalog: Catalog, tmp_path: Path) -> Catalog:
    manifest = tmp_path / "cases.csv"
    manifest.write_text("\n".join([HEADER, *CASES]) + "\n", encoding="utf-8")
    import_manifest(catalog, manifest)
    return catalog


def test_genomes_of_a_month(cases: Catalog) -> None:
    r = genomes(cases, targets=TARGETS, month="2025-06", today=TODAY)
    assert r["month"] == "2025-06"
    assert r["total"] == {"month": 6, "year_to_date": 9, "all_time": 10}
    assert r["by_patient_group"] == {
        "(none)": {"month": 1, "year_to_date": 1, "all_time": 1},
        "fetal medicine": {"month": 3, "year_to_date": 4, "all_time": 4},
        "kidney": {"month": 2, "year_to_date": 3, "all_time": 4},
        "primary immunodeficiency": {"month": 0, "year_to_date": 1, "all_time": 1},
    }
    hs = r["by_region"]["Region Hovedstaden"]
    assert {k: hs[k] for k in ("month", "year_to_date", "all_time")} == {
        "month": 2, "year_to_date": 2, "all_time": 2}  # fmt: skip
    assert hs["per_100k"] == {"month": 0.11, "year_to_date": 0.11, "all_time": 0.11}
    assert r["by_region"]["Region Sjælland"] == {"month": 0, "year_to_date": 1, "all_time": 2}
    assert "per_100k" not in r["by_region"]["Region Sjælland"]  # no population given


def test_an_empty_month_and_the_month_before_any_data(cases: Catalog) -> None:
    r = genomes(cases, targets=TARGETS, month="2025-02", today=TODAY)
    assert r["total"] == {"month": 0, "year_to_date": 1, "all_time": 2}  # F4 (Jan), K4 (2024)
    r = genomes(cases, targets=TARGETS, month="2019-01", today=TODAY)
    assert r["total"] == {"month": 0, "year_to_date": 0, "all_time": 0}
    assert r["by_patient_group"] == {} and r["by_region"] == {}
    with pytest.raises(InputError, match="month '2025-13': expected YYYY-MM"):
        genomes(cases, targets=TARGETS, month="2025-13", today=TODAY)
    with pytest.raises(InputError, match="in the future"):
        genomes(cases, targets=TARGETS, month="2025-07", today=TODAY)


def test_small_cells_are_suppressed_for_readers_without_exact_counts(cases: Catalog) -> None:
    assert [suppress(n, False) for n in (0, 1, 4, 5, 17)] == [0, "<5", "<5", 5, 17]
    assert [suppress(n, True) for n in (0, 1, 4, 5)] == [0, 1, 4, 5]
    r = genomes(cases, targets=TARGETS, month="2025-06", today=TODAY, exact=False)
    assert r["total"] == {"month": 6, "year_to_date": 9, "all_time": 10}
    assert r["by_patient_group"]["kidney"] == {"month": "<5", "year_to_date": "<5",
                                               "all_time": "<5"}
    assert r["by_patient_group"]["primary immunodeficiency"]["month"] == 0
    assert r["by_region"]["Region Hovedstaden"]["per_100k"]["month"] is None  # derived: hidden


def test_filters(cases: Catalog) -> None:
    r = genomes(cases, targets=TARGETS, month="2025-06", today=TODAY, region="Region Sjælland")
    assert r["total"] == {"month": 0, "year_to_date": 1, "all_time": 2}
    r = genomes(cases, targets=TARGETS, month="2025-06", today=TODAY, patient_group="kidney")
    assert list(r["by_patient_group"]) == ["kidney"]


def test_quotas_pro_rata_with_backlog_and_trios_as_cases(cases: Catalog) -> None:
    r = quotas(cases, targets=TARGETS, year=2025, today=TODAY)
    assert r["year"] == 2025 and r["as_of"] == "2025-06-30"
    by = {g["patient_group"]: g for g in r["groups"]}
    # 181 of 365 days: kidney owes 100 + 20 backlog (first year 2025) -> 59.5 expected
    assert by["kidney"] == {
        "patient_group": "kidney", "unit": "genomes", "quota": 100, "backlog": 20,
        "delivered": 3, "expected": 59.5, "fulfilment_pct": 5.0, "forecast": 6,
    }  # fmt: skip
    # the trio T1 is one case, F4 another: 2 cases; 1320 * 181 / 365 = 654.6
    assert by["fetal medicine"]["delivered"] == 2 and by["fetal medicine"]["expected"] == 654.6
    assert by["fetal medicine"]["forecast"] == 4
    pid = by["primary immunodeficiency"]
    assert (pid["backlog"], pid["expected"], pid["delivered"]) == (0, 247.9, 1)  # backlog: 2023
    past = quotas(cases, targets=TARGETS, year=2024, today=TODAY)
    kid = next(g for g in past["groups"] if g["patient_group"] == "kidney")
    assert past["as_of"] == "2024-12-31" and kid["expected"] == 100.0 and kid["delivered"] == 1
    hidden = quotas(cases, targets=TARGETS, year=2025, today=TODAY, exact=False)
    kid = next(g for g in hidden["groups"] if g["patient_group"] == "kidney")
    assert kid["delivered"] == "<5" and kid["fulfilment_pct"] is None and kid["forecast"] is None


def test_turnaround_by_urgency_and_group(cases: Catalog) -> None:
    r = turnaround(cases, targets=TARGETS, year=2025, today=TODAY)
    assert r["targets"] == {"acute": 14, "urgent": 42, "standard": 84}
    rows = {(x["urgency"], x["patient_group"]): x for x in r["rows"]}
    assert list(rows) == [
        ("acute", "fetal medicine"), ("acute", "primary immunodeficiency"), ("acute", "all"),
        ("urgent", "kidney"), ("urgent", "all"), ("standard", "kidney"), ("standard", "all"),
    ]  # fmt: skip
    fm = rows[("acute", "fetal medicine")]  # the trio (14 days, most urgent: acute) and F4 (28)
    assert (fm["cases"], fm["median_days"], fm["p90_days"], fm["within_target_pct"]) == (
        2, 21, 28, 50.0)  # fmt: skip
    assert (fm["delivery_median_days"], fm["delivery_p90_days"]) == (15, 18)
    pid = rows[("acute", "primary immunodeficiency")]  # open since 10 January: 171 days
    assert (pid["cases"], pid["median_days"], pid["open_past_target"], pid["oldest_open_days"]) == (
        1, None, 1, 171)  # fmt: skip
    acute = rows[("acute", "all")]
    assert (acute["cases"], acute["open"], acute["open_past_target"]) == (3, 1, 1)
    urgent = rows[("urgent", "kidney")]  # K2 (29 days open), K5 (5 days open): none late
    assert (urgent["cases"], urgent["reported"], urgent["open_past_target"]) == (2, 0, 0)
    assert (urgent["oldest_open_days"], urgent["delivery_median_days"]) == (29, 19)
    std = rows[("standard", "kidney")]  # K1 26 days, K3 118 days (K4 is 2024's)
    assert (std["median_days"], std["p90_days"], std["within_target_pct"]) == (72, 118, 50.0)
    hidden = turnaround(cases, targets=TARGETS, year=2025, today=TODAY, exact=False)
    h = {(x["urgency"], x["patient_group"]): x for x in hidden["rows"]}
    assert h[("standard", "kidney")]["cases"] == "<5"
    assert h[("standard", "kidney")]["median_days"] is None
    assert turnaround(cases, targets=TARGETS, year=2023, today=TODAY)["rows"] == []


def test_storage_history_and_promises(catalog: Catalog, tmp_path: Path) -> None:
    root = tmp_path / "estate"
    make_files(root, {"region-east/G1/G1.bam": 700, "region-east/G1/G1.cram": 300})
    scan(catalog, [str(root)], DEFAULT_LAYOUT)
    (root / "region-east/G1/G1.bam").unlink()
    scan(catalog, [str(root)], DEFAULT_LAYOUT)
    with catalog.session() as s:
        run = ApplyRun(plan_sha256="0" * 64, plan_path="p", actor="a", host="h", pid=1,
                       executor="local", status="done", promised_bytes=700,
                       finished_at=dt.datetime.now(dt.UTC))
        s.add(run)
        s.flush()
        for n in (600, 100):
            s.add(JournalEntry(run_id=run.id, plan_sha256="0" * 64, action_id=f"a{n}",
                               step="delete", state="done", detail=json.dumps({"bytes_freed": n})))
        s.add(ApplyRun(plan_sha256="1" * 64, plan_path="p", actor="a", host="h", pid=1,
                       executor="local", status="done", promised_bytes=50, freed_bytes=40,
                       finished_at=dt.datetime.now(dt.UTC)))  # a local run records its own
    r = storage(catalog, price=1500.0)
    assert r["applied"][1]["promised_bytes"] == 50 and r["applied"][1]["freed_bytes"] == 40
    assert r["total_bytes"] == 300 and r["genomes"] == 1
    assert [(x["type"], x["bytes"]) for x in r["current"]] == [("cram", 300)]
    assert {(x["type"], x["bytes"]) for x in r["history"]} == {("bam", 700), ("cram", 300)}
    assert r["applied"][0]["promised_bytes"] == 700 and r["applied"][0]["freed_bytes"] == 700
    assert r["cost_per_year_dkk"] == 0 and r["cost_per_genome_dkk"] == 0.0


def test_manifest_case_columns_are_checked_by_line(catalog: Catalog, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "genome_id,urgency,sex,answered,requisition_date,report_date\n"
        "A,acute,female,yes,2025-01-01,2025-01-10\n"
        "B,soon,female,yes,,\n"
        "C,urgent,woman,maybe,,\n"
        "D,standard,male,no,2025-02-01,2025-01-01\n",
        encoding="utf-8",
    )
    with pytest.raises(ManifestError) as exc:
        import_manifest(catalog, bad)
    errors = exc.value.errors
    assert f"{bad}:3: urgency 'soon': choose one of acute, urgent, standard" in errors
    assert f"{bad}:4: sex 'woman': choose one of female, male, unknown" in errors
    assert f"{bad}:4: answered 'maybe': choose one of yes, no" in errors
    assert f"{bad}:5: report_date 2025-01-01 is before requisition_date 2025-02-01" in errors
    with catalog.session() as s:  # all or nothing
        assert s.query(Genome).count() == 0


def test_reimport_is_idempotent(cases: Catalog, tmp_path: Path) -> None:
    before = genomes(cases, targets=TARGETS, month="2025-06", today=TODAY)
    manifest = tmp_path / "cases.csv"
    res = import_manifest(cases, manifest)
    assert (res.added, res.updated) == (0, len(CASES))
    assert genomes(cases, targets=TARGETS, month="2025-06", today=TODAY) == before


def test_shipped_targets_and_bad_targets_file(tmp_path: Path) -> None:
    t = load_targets()
    assert t.quotas["kidney"].per_year == 195 and t.quotas["kidney"].backlog == 575
    assert t.quotas["fetal medicine"].unit == "cases" and t.turnaround.acute == 14
    assert len(t.population) == 5
    bad = tmp_path / "t.toml"
    bad.write_text('[quotas.kidney]\nper_year = 195\nbacklog = 5\n', encoding="utf-8")
    with pytest.raises(PolicyError, match=r"t.toml: quotas.kidney: Value error, a backlog needs"):
        load_targets(bad)
    bad.write_text('[quotas.kidney]\nper_year = 195\nunit = "trios"\n', encoding="utf-8")
    with pytest.raises(PolicyError, match=r"quotas.kidney.unit"):
        load_targets(bad)


def test_cli_reports(tmp_path: Path) -> None:
    manifest = tmp_path / "cases.csv"
    manifest.write_text("\n".join([HEADER, *CASES]) + "\n", encoding="utf-8")
    run_cli("genomes", "import", str(manifest), home=tmp_path)
    res = run_cli("report", "genomes", "--month", "2025-06", "--json", home=tmp_path)
    assert json.loads(res.stdout)["total"] == {"month": 6, "year_to_date": 9, "all_time": 10}
    res = run_cli("report", "turnaround", "--year", "2025", "--csv", home=tmp_path)
    assert res.stdout.splitlines()[0].startswith("urgency,patient_group,")
    res = run_cli("report", "quotas", "--year", "2025", home=tmp_path)
    assert "kidney" in res.stdout and "fetal medicine" in res.stdout
    res = run_cli("report", "genomes", "--month", "2025-13", home=tmp_path, check=False)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0


def test_turnaround_as_of_a_past_day_sees_only_what_had_happened(cases: Catalog) -> None:
    """As of 20 June the trio's reports (23-24 June) are still to come and K5 (requisitioned
    25 June) does not exist yet."""
    r = turnaround(cases, targets=TARGETS, year=2025, today=dt.date(2025, 6, 20))
    rows = {(x["urgency"], x["patient_group"]): x for x in r["rows"]}
    fm = rows[("acute", "fetal medicine")]
    assert (fm["cases"], fm["reported"], fm["median_days"], fm["open"]) == (2, 1, 28, 1)
    assert (fm["open_past_target"], fm["oldest_open_days"]) == (0, 10)
    assert rows[("urgent", "kidney")]["cases"] == 1
