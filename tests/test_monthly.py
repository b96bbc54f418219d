"""The monthly PDF (report/monthly.py, `wgsvault report monthly`): a valid PDF whose text holds the
JSON reports' figures with small cells suppressed, written atomically; a bad month is one line."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from pypdf import PdfReader

from wgsvault.catalog import Catalog
from wgsvault.catalog.manifest import import_manifest
from wgsvault.report import governance, monthly
from wgsvault.report.targets import load_targets

from conftest import run_cli

HEAD = (
    "genome_id,patient_group,requisition_region,requisition_date,sample_date,sequencing_date,"
    "delivery_date,report_date,urgency,family_id,sex,answered"
)
MONTH, AS_OF = "2025-03", dt.date(2025, 3, 31)


def case_rows() -> list[str]:
    """23 genomes: 5 in 2024; in 2025 6 neurology (January), and in March 7 kidney (2 open),
    2 acute primary immunodeficiency and one fetal medicine trio."""
    rows = []
    for i in range(1, 6):
        rows.append(f"R{i},rare disease children,Region Hovedstaden,2024-05-02,2024-05-03,"
                    "2024-05-20,2024-05-30,2024-06-20,standard,,female,no")  # fmt: skip
    for i in range(1, 7):
        rows.append(f"N{i},neurology,Region Midtjylland,2025-01-02,2025-01-03,2025-01-20,"
                    "2025-01-25,2025-02-10,standard,,male,yes")  # fmt: skip
    for i in range(1, 8):
        report = "2025-03-20" if i <= 5 else ""
        rows.append(f"K{i},kidney,Region Syddanmark,2025-02-01,2025-02-02,2025-03-05,"
                    f"2025-03-10,{report},standard,,female,{'no' if report else ''}")  # fmt: skip
    for i in (1, 2):
        rows.append(f"P{i},primary immunodeficiency,Region Nordjylland,2025-03-01,2025-03-01,"
                    "2025-03-10,2025-03-12,2025-03-14,acute,,male,yes")  # fmt: skip
    for i, sex in ((1, "unknown"), (2, "female"), (3, "male")):
        rows.append(f"F{i},fetal medicine,Region Sjælland,2025-03-03,2025-03-04,2025-03-15,"
                    f"2025-03-20,2025-03-28,urgent,FAM1,{sex},no")  # fmt: skip
    return rows


@pytest.fixture
def cases(catalog: Catalog, tmp_path: Path) -> Catalog:
    path = tmp_path / "cases.csv"
    path.write_text("\n".join([HEAD, *case_rows()]) + "\n", encoding="utf-8")
    import_manifest(catalog, path)
    return catalog


def pdf_text(path: Path) -> str:
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(path).pages))


def test_monthly_pdf_holds_the_reports_figures(cases: Catalog, tmp_path: Path) -> None:
    m = monthly.monthly(cases, month=MONTH, price=1500.0, today=dt.date(2026, 11, 30))
    assert m.as_of == AS_OF and m.title == "March 2025"
    # the figures are the JSON reports', as of the month's end, small cells suppressed
    targets = load_targets()
    g = governance.genomes(cases, targets=targets, month=MONTH, exact=False, today=AS_OF)
    assert m.reports["genomes"] == g
    assert g["total"] == {"month": 12, "year_to_date": 18, "all_time": 23}
    assert g["by_patient_group"]["primary immunodeficiency"]["month"] == "<5"
    out = monthly.write_pdf(m, tmp_path / "report.pdf")
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    text = pdf_text(out)
    for sentence in (
        "12 genomes sequenced in the month, 18 in 2025 so far and 23 since records began.",
        "The largest patient group of the month was kidney (7 genomes).",
        "0 of 3 patient groups with a quota are at or above the pro-rata expectation.",
        "Kidney is behind: 7 genomes delivered of 48 expected by 2025-03-31 (14.6 %); at this "
        "pace the year ends at 28 of 195.",
        "No fulfilment is shown for fetal medicine, primary immunodeficiency (too few to show).",
        "Acute (target 14 days): <5 cases, too few reported to show times.",
        "Standard (target 84 days): 13 cases, 100 % of those reported within target, median 39 "
        "days, 90th percentile 47.",
    ):
        assert sentence in text, sentence
    # the tables: the suppressed cells as "<5", exact counts of 5 and more
    assert "primary immunodeficiency <5 <5 <5" in text
    assert "kidney 7 7 7" in text
    quotas = {q["patient_group"]: q for q in m.reports["quotas"]["groups"]}
    assert quotas["kidney"]["delivered"] == 7 and quotas["fetal medicine"]["delivered"] == "<5"
    assert "kidney genomes 195 0 7 48.1 14.6 28" in text
    meta = PdfReader(out).metadata
    assert meta is not None and meta.title == "Genome governance report, March 2025"
    # custom metadata: WeasyPrint keeps the <meta> names' letters (wgsvault-format)
    assert meta["/wgsvaultformat"] == monthly.FORMAT and meta["/wgsvaultmonth"] == MONTH
    assert f"Format {monthly.FORMAT}" in text


def test_html_escapes_what_the_manifest_says(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "cases.csv"
    row = "<b>group</b>,Region Sjælland,2025-03-01,,2025-03-02,,,standard,,,"
    rows = [f"X{i},{row}" for i in range(6)]
    path.write_text("\n".join([HEAD, *rows]) + "\n", encoding="utf-8")
    import_manifest(sqlite_catalog, path)
    html = monthly.render_html(
        monthly.monthly(sqlite_catalog, month=MONTH, price=1500.0, today=AS_OF)
    )
    assert "<b>group</b>" not in html and "&lt;b&gt;group&lt;/b&gt;" in html
    assert "http://" not in html.replace("http://www.w3.org", "")  # nothing to fetch


def test_written_atomically(sqlite_catalog: Catalog, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import weasyprint

    m = monthly.monthly(sqlite_catalog, month=MONTH, price=1500.0, today=AS_OF)
    out = tmp_path / "out"
    out.mkdir()
    target = out / "report.pdf"
    target.write_bytes(b"last month's report")

    def broken(*_a: object, **_k: object) -> bytes:
        raise RuntimeError("layout failed")

    monkeypatch.setattr(weasyprint.HTML, "write_pdf", broken)
    with pytest.raises(RuntimeError):
        monthly.write_pdf(m, target)
    assert target.read_bytes() == b"last month's report"
    monkeypatch.undo()
    monthly.write_pdf(m, target)
    assert target.read_bytes().startswith(b"%PDF-")
    assert [p.name for p in out.iterdir()] == ["report.pdf"]  # no temporary file left


def test_empty_catalog_still_makes_a_report(sqlite_catalog: Catalog, tmp_path: Path) -> None:
    m = monthly.monthly(sqlite_catalog, month="2024-01", price=1500.0, today=AS_OF)
    text = pdf_text(monthly.write_pdf(m, tmp_path / "empty.pdf"))
    assert "0 genomes sequenced in the month, 0 in 2024 so far and 0 since records began." in text
    assert "No case was requisitioned in 2024 by 2024-01-31." in text


def test_command(tmp_path: Path) -> None:
    manifest = tmp_path / "cases.csv"
    manifest.write_text("\n".join([HEAD, *case_rows()]) + "\n", encoding="utf-8")
    run_cli("genomes", "import", str(manifest), home=tmp_path)
    pdf = tmp_path / "march.pdf"
    out = run_cli("report", "monthly", "--month", MONTH, "-o", str(pdf), home=tmp_path).stdout
    assert "March 2025" in out and str(pdf) in out
    assert "12 genomes sequenced in the month" in pdf_text(pdf)
    future = f"{dt.date.today().year + 1}-01"
    for month, why in (("2025-13", "expected YYYY-MM"), ("March", "expected YYYY-MM"),
                       (future, "in the future")):  # fmt: skip
        bad = run_cli("report", "monthly", "--month", month, "-o", str(tmp_path / "x.pdf"),
                      home=tmp_path, check=False)  # fmt: skip
        assert bad.returncode == 2, bad.stderr
        assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("wgsvault: error: month")
        assert why in bad.stderr
    nowhere = run_cli("report", "monthly", "--month", MONTH, "-o", str(tmp_path / "no" / "x.pdf"),
                      home=tmp_path, check=False)  # fmt: skip
    assert nowhere.returncode == 2 and "no directory" in nowhere.stderr
    assert not (tmp_path / "x.pdf").exists()
