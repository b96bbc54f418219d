"""A small national case history behind a running dashboard, for the dashboard tests.

`build_site` imports about 150 genomes through the manifest (four patient groups, three regions,
sequenced over the last 15 months, trios in fetal medicine, open cases, and a patient group of
three genomes whose counts a reporting principal sees as "<5"), scans a small estate of sparse
files and adds two earlier footprint snapshots (a storage history of three days), and makes
three principals with tokens: `board` (role reporting), `steward` (role admin) and `clinician`
(role data, may not see the dashboard). `Site.get` asks the running server as one of them.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from wgsvault import access
from wgsvault.catalog import Catalog, open_catalog
from wgsvault.catalog.manifest import import_manifest
from wgsvault.catalog.models import AuditEntry, FootprintSnapshot
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan
from wgsvault.serve import Settings, create_app

from conftest import make_files
from served import free_port, running

GROUPS = ("kidney", "fetal medicine", "primary immunodeficiency")
REGIONS = ("Region Hovedstaden", "Region Midtjylland", "Region Sjælland")
SMALL_GROUP = "rare disease"  # three genomes: "<5" for a reporting principal
ROLES = {"board": "reporting", "steward": "admin", "clinician": "data"}
HEADER = (
    "genome_id,patient_group,requisition_region,sequencing_date,requisition_date,"
    "delivery_date,report_date,urgency,family_id"
)


@dataclass
class Site:
    catalog: Catalog
    home: Path
    tokens: dict[str, str]
    base: str = ""
    today: dt.date = field(default_factory=dt.date.today)

    def headers(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}

    def get(self, path: str, who: str | None = "board", **params: Any) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", params=params, headers=self.headers(who), timeout=60)

    def audit_count(self) -> int:
        with self.catalog.session() as s:
            return len(s.scalars(select(AuditEntry.seq)).all())

    def last_audit(self) -> AuditEntry:
        with self.catalog.session() as s:
            return s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()  # type: ignore[return-value]


def case_lines(today: dt.date, seed: int = 14) -> list[str]:
    """Manifest lines of the case history, all dates on or before `today`."""
    rnd = random.Random(seed)
    lines = []
    n = 0

    def day(d: dt.date | None) -> str:
        return "" if d is None or d > today else d.isoformat()

    for i in range(140):
        group = GROUPS[i % 3]
        region = REGIONS[rnd.randrange(3) if i % 5 else 0]
        seq = today - dt.timedelta(days=rnd.randrange(0, 450))
        req = seq - dt.timedelta(days=rnd.randrange(3, 40))
        urgency = rnd.choice(("acute", "urgent", "standard", "standard"))
        delivery = seq + dt.timedelta(days=rnd.randrange(2, 15))
        report = delivery + dt.timedelta(days=rnd.randrange(1, 60))
        if rnd.random() < 0.15:
            report = None  # an open case
        delivery_s = day(delivery)
        report_s = day(report) if delivery_s else ""
        members = 3 if group == "fetal medicine" and i % 2 == 0 else 1
        family = f"T{i}" if members > 1 else ""
        for _ in range(members):
            n += 1
            lines.append(
                f"NGC{n},{group},{region},{seq},{req},{delivery_s},{report_s},{urgency},{family}"
            )
    for j in range(3):
        seq = today - dt.timedelta(days=10 + j)
        req = seq - dt.timedelta(days=20)
        n += 1
        lines.append(f"NGC{n},{SMALL_GROUP},{REGIONS[1]},{seq},{req},,,standard,")
    return lines


def build_site(d: Path) -> Site:
    today = dt.date.today()
    manifest = d / "cases.csv"
    manifest.write_text("\n".join([HEADER, *case_lines(today)]) + "\n", encoding="utf-8")
    home = d / "home"
    cat = open_catalog(f"sqlite:///{home / 'catalog.sqlite'}")
    import_manifest(cat, manifest)
    estate = d / "estate"
    make_files(
        estate,
        {
            "national/NGC1/NGC1.cram": 27 * 10**9,
            "national/NGC2/NGC2.cram": 26 * 10**9,
            "national/NGC2/NGC2.vcf.gz": 4 * 10**9,
            "region-east/NGC1/NGC1.bam": 110 * 10**9,
            "region-east/NGC1/NGC1_R1.fastq.gz": 45 * 10**9,
            "region-east/NGC1/NGC1_R2.fastq.gz": 45 * 10**9,
        },
    )
    scan(cat, [str(estate)], DEFAULT_LAYOUT)
    with cat.session() as s:  # two earlier footprints: the storage history has three days
        now = s.scalars(select(FootprintSnapshot)).all()
        for weeks, factor in ((8, 0.6), (4, 0.8)):
            for f in now:
                s.add(
                    FootprintSnapshot(
                        scan_id=f.scan_id,
                        at=f.at - dt.timedelta(weeks=weeks),
                        controller=f.controller,
                        type=f.type,
                        files=f.files,
                        bytes=int(f.bytes * factor),
                        genomes=f.genomes,
                    )
                )
    tokens = {}
    for name, role in ROLES.items():
        access.add_principal(cat, name, role=role)
        tokens[name] = access.issue_token(cat, name)
    return Site(cat, home, tokens, today=today)


@contextmanager
def served_site(d: Path, base_url: str | None = None) -> Iterator[Site]:
    """`build_site` in `d`, its app served on a free loopback port until the block ends."""
    site = build_site(d)
    port = free_port()
    site.base = f"http://127.0.0.1:{port}"
    with running(create_app(Settings(site.catalog.url, site.home, base_url or site.base)), port):
        yield site
    site.catalog.close()
