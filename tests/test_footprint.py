from __future__ import annotations

import csv
import io
from pathlib import Path

from wgsvault.catalog import Catalog
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan
from wgsvault.report import render
from wgsvault.report.footprint import footprint

from conftest import make_files

GB = 10**9


def test_footprint_totals_means_cost_projection(catalog: Catalog, tmp_path: Path) -> None:
    make_files(
        tmp_path / "e",
        {
            "region-east/G1/G1.bam": 110 * GB,
            "region-east/G1/G1.cram": 27 * GB,
            "region-east/G2/G2.cram": 25 * GB,
            "region-west/G3/G3.cram": 29 * GB,
            "national/G1/G1.cram": 27 * GB,
            "region-east/G1/run1/RunInfo.xml": 1000,
            "region-east/G1/run1/Data/C1.1/s_1_1101.bcl.gz": 10 * GB - 1000,
        },
    )
    scan(catalog, [str(tmp_path / "e")], DEFAULT_LAYOUT)
    fp = footprint(catalog, price=2000.0, projection=60_000)
    d = fp.to_dict()
    assert d["total"]["bytes"] == 228 * GB
    assert d["total"]["files"] == 7  # the run folder is one entry but two files
    assert d["total"]["genomes"] == 3
    assert d["by_type"]["cram"]["bytes"] == 108 * GB
    assert d["by_type"]["bam"]["mean_bytes_per_genome"] == round(110 * GB / 3)
    assert d["by_type"]["bcl"]["bytes"] == 10 * GB
    east = d["by_controller"]["region-east"]
    assert (east["bytes"], east["genomes"], east["kind"]) == (172 * GB, 2, "region")
    assert east["mean_bytes_per_genome"] == 86 * GB
    assert east["cost_dkk_per_year"] == 172 / 1000 * 2000
    assert d["by_controller"]["national"]["kind"] == "national"
    assert d["projection"]["bytes"] == round(228 * GB / 3 * 60_000)
    rows = list(csv.DictReader(io.StringIO(render.footprint_csv(fp))))
    assert sum(int(r["bytes"]) for r in rows) == 228 * GB
    png = tmp_path / "fp.png"
    render.footprint_png(fp, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
