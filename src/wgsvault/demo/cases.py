"""A synthetic case history: the clinical side of a national genome centre, for the reports.

`write_case_manifest` writes a manifest CSV (the columns `wgsvault genomes import` reads) of a
national genome centre's case history: `n` genomes requisitioned from January 2019 to December
2026 (and on at 2026's pace after it), of which the file holds what has happened by `as_of`
(today by default), so that the governance reports and the dashboard show real-looking figures
on the demo and in the benchmarks. Each month is drawn from its own seed: the same seed and `n`
always give the same history, and a later `as_of` only reveals more of it (new requisitions,
later steps of open cases), never changes the past.

How the history is made, and why:

* *Volume* grows every year (`YEARLY`, genomes per year for n = 26,000, scaled to `n`), with the
  Danish summer holiday and Christmas as dips; each month gets its share of the `n` genomes by
  largest remainders, so 2019-2026 holds exactly `n`.
* *Patient groups* change mix over the years (`MIX`): the groups of the shipped targets file
  (kidney and primary immunodeficiency counted from 2023, their backlogs delivered in the
  first year, fetal medicine growing towards its quota but short of it) and the older
  indications (rare disease children, cancer predisposition, neurology). Fetal medicine cases
  are always trios (fetus, mother, father) sharing a `family_id`, as are a third of the rare
  disease children: a trio is one case of three genomes.
* *Regions* are drawn by population (the five Danish regions).
* *Urgency* depends on the group: acutely ill newborns (acute) are a few per cent, fetal medicine
  is mostly urgent, most of the rest is standard.
* *Turnaround*: each step (requisition → sample → sequencing → delivery → report) takes a
  log-normal number of days whose median depends on urgency and shrinks as the centre matures;
  acute cases are mostly reported within 14 days with a tail beyond. A step that would fall after
  `as_of` has not happened yet: its date and the later ones stay empty, so open cases gather in
  the recent months; a few old cases stay open (stuck) so that "open past target" is not empty.
* `answered` (the report answered the clinical question) is yes for 25-45 % of reported cases
  depending on the group, empty while a case is open.

Genome ids are `DK` and six digits; ids passed in `genome_ids` (the demo estate's genomes) are
given to the first singleton cases, so those genomes have a case too.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from wgsvault.fsutil import atomic_write_text

COLUMNS = (
    "genome_id",
    "patient_group",
    "requisition_region",
    "requisition_date",
    "sample_date",
    "sequencing_date",
    "delivery_date",
    "report_date",
    "urgency",
    "family_id",
    "sex",
    "answered",
)
START = dt.date(2019, 1, 1)
END = dt.date(2026, 12, 1)  # the last month of the n genomes; later months go on at its pace
SEED = 2019
#: inhabitants (Statistics Denmark 2024, rounded): requisitions are drawn in proportion
REGIONS = {
    "Region Hovedstaden": 1_900_000,
    "Region Midtjylland": 1_370_000,
    "Region Syddanmark": 1_230_000,
    "Region Sjælland": 850_000,
    "Region Nordjylland": 595_000,
}
REGION_NAMES, REGION_WEIGHTS = list(REGIONS), list(REGIONS.values())
#: genomes requisitioned per year for n = 26,000, the relative pace of the years
YEARLY = {2019: 900, 2020: 1600, 2021: 2400, 2022: 3200, 2023: 3900, 2024: 4400, 2025: 4800,
          2026: 5200}  # fmt: skip
#: requisitions per month relative to an average month: summer holiday and Christmas dips
SEASON = (1.05, 1.05, 1.05, 1.05, 1.05, 1.0, 0.65, 0.95, 1.1, 1.1, 1.1, 0.85)
GROUPS = (
    "fetal medicine",
    "kidney",
    "primary immunodeficiency",
    "rare disease children",
    "cancer predisposition",
    "neurology",
)
#: share of the year's genomes per group, in the order of GROUPS
MIX = {
    2019: (0.00, 0.00, 0.03, 0.55, 0.22, 0.20),
    2020: (0.00, 0.00, 0.05, 0.52, 0.22, 0.21),
    2021: (0.05, 0.01, 0.07, 0.45, 0.21, 0.21),
    2022: (0.15, 0.02, 0.09, 0.37, 0.19, 0.18),
    2023: (0.25, 0.155, 0.185, 0.20, 0.11, 0.10),  # quotas start: kidney and PID backlogs
    2024: (0.32, 0.075, 0.127, 0.24, 0.12, 0.118),
    2025: (0.38, 0.045, 0.108, 0.23, 0.12, 0.117),
    2026: (0.42, 0.04, 0.098, 0.22, 0.11, 0.112),
}
#: per group: share of cases that are trios, (acute, urgent) shares, share answered
PROFILE: dict[str, tuple[float, tuple[float, float], float]] = {
    "fetal medicine": (1.0, (0.06, 0.80), 0.45),
    "kidney": (0.0, (0.00, 0.05), 0.35),
    "primary immunodeficiency": (0.0, (0.05, 0.20), 0.30),
    "rare disease children": (0.33, (0.07, 0.15), 0.40),
    "cancer predisposition": (0.0, (0.00, 0.10), 0.25),
    "neurology": (0.0, (0.00, 0.05), 0.35),
}
#: median days of each step per urgency: requisition→sample, →sequencing, →delivery, →report
STEPS = {
    "acute": (0.5, 2.0, 2.5, 3.5),
    "urgent": (3.0, 9.0, 5.0, 11.0),
    "standard": (7.0, 20.0, 10.0, 24.0),
}
#: sex of the proband (female, male, unknown), of other cases and of fetuses
SEX = {False: (0.49, 0.49, 0.02), True: (0.46, 0.46, 0.08)}
SPREAD = 0.55  # sigma of each step's log-normal
#: the centre gets faster as it matures: step durations are multiplied by this, per year
PACE = {2019: 1.35, 2020: 1.3, 2021: 1.2, 2022: 1.1, 2023: 1.0, 2024: 0.95, 2025: 0.9}
STUCK = 0.004  # share of cases that stay open after delivery (waiting on a reanalysis, say)


@dataclass
class CaseSummary:
    """What a written case history holds."""

    path: Path
    genomes: int
    cases: int
    open_cases: int
    first: dt.date
    last: dt.date
    by_group: dict[str, int] = field(default_factory=dict)
    #: the rows of the genome ids given to write_case_manifest
    given: list[dict[str, str]] = field(default_factory=list)


def _next(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def monthly_quota(n: int, until: dt.date) -> list[tuple[dt.date, int]]:
    """(first day of month, genomes requisitioned in it) from START to the month of `until`.

    The n genomes of START to END sum exactly (largest remainders); months after END continue at
    END's pace. No month depends on `until`: a later day only reveals more of the same history.
    """
    weights: list[tuple[dt.date, float]] = []
    d = START
    while d <= max(until, END):
        weights.append((d, YEARLY.get(d.year, YEARLY[max(YEARLY)]) * SEASON[d.month - 1]))
        d = _next(d)
    fixed = [(m, w) for m, w in weights if m <= END]
    scale = n / sum(w for _, w in fixed)
    exact = [w * scale for _, w in fixed]
    counts = [math.floor(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])[: n - sum(counts)]:
        counts[i] += 1
    counts += [round(w * scale) for m, w in weights if m > END]
    return [(m, c) for (m, _), c in zip(weights, counts, strict=True) if m <= until]


@dataclass
class _Case:
    group: str
    members: int
    region: str
    urgency: str
    dates: list[dt.date | None]  # requisition, sample, sequencing, delivery, report
    answered: str
    sexes: list[str]


def _month(rng: random.Random, month: dt.date, genomes: int) -> list[_Case]:
    """The cases requisitioned in `month`: `genomes` genomes in all (see the module)."""
    mix = MIX.get(month.year, MIX[max(MIX)])
    # MIX is per genome and a trio is three: draw cases by the share per genome of a case
    weights = [m / (1 + PROFILE[g][0] * 2) for m, g in zip(mix, GROUPS, strict=True)]
    days = (_next(month) - month).days
    pace = PACE.get(month.year, PACE[max(PACE)])
    cases = []
    while genomes > 0:
        group = rng.choices(GROUPS, weights)[0]
        members = 3 if rng.random() < PROFILE[group][0] else 1
        if members == 3 and group != "fetal medicine" and rng.random() < 0.1:
            members = 2  # a duo: child and one parent
        if members > genomes:  # the month's last genomes: no room for a trio, take another case
            group = rng.choices(GROUPS[1:], weights[1:])[0]  # (not fetal medicine: all trios)
            members = min(members, genomes) if PROFILE[group][0] else 1
        genomes -= members
        _, (acute, urgent), answered_share = PROFILE[group]
        u = rng.random()
        urgency = "acute" if u < acute else "urgent" if u < acute + urgent else "standard"
        dates: list[dt.date | None] = [month + dt.timedelta(days=rng.randrange(days))]
        for median in STEPS[urgency]:
            step = round(rng.lognormvariate(math.log(median * pace), SPREAD))
            dates.append(dates[-1] + dt.timedelta(days=step) if dates[-1] else None)
        if rng.random() < STUCK:
            dates[4] = None
        sexes = rng.choices(("female", "male", "unknown"), SEX[group == "fetal medicine"])
        cases.append(
            _Case(
                group=group,
                members=members,
                region=rng.choices(REGION_NAMES, REGION_WEIGHTS)[0],
                urgency=urgency,
                dates=dates,
                answered="yes" if rng.random() < answered_share else "no",
                sexes=[*sexes, "female", "male"][:members],
            )
        )
    return cases


def generate(
    n: int, *, seed: int = SEED, as_of: dt.date | None = None, genome_ids: list[str] | None = None
) -> list[dict[str, str]]:
    """The manifest rows of a synthetic case history (see the module): `n` genomes requisitioned
    from START to END, the part of it that has happened by `as_of` (default today)."""
    as_of = as_of or dt.date.today()
    given = list(genome_ids or ())
    rows: list[dict[str, str]] = []
    serial = families = 0
    for month, genomes in monthly_quota(n, as_of):
        for case in _month(random.Random(f"{seed}/{month:%Y-%m}"), month, genomes):
            # ids first, whether or not the case has happened by as_of: a later as_of keeps them
            family = ""
            if case.members > 1:
                families += 1
                family = f"FAM{families:06d}"
            ids = []
            for _ in case.sexes:
                if case.members == 1 and given:
                    ids.append(given.pop(0))
                else:
                    serial += 1
                    ids.append(f"DK{serial:06d}")
            if case.dates[0] is None or case.dates[0] > as_of:
                continue  # not requisitioned yet
            # a step after as_of has not happened, and nor has any later one
            dates = list(case.dates)
            for i in range(1, len(dates)):
                prev = dates[i - 1]
                dates[i] = None if prev is None or (dates[i] or prev) > as_of else dates[i]
            for gid, sex in zip(ids, case.sexes, strict=True):
                rows.append(
                    {
                        "genome_id": gid,
                        "patient_group": case.group,
                        "requisition_region": case.region,
                        "requisition_date": _iso(dates[0]),
                        "sample_date": _iso(dates[1]),
                        "sequencing_date": _iso(dates[2]),
                        "delivery_date": _iso(dates[3]),
                        "report_date": _iso(dates[4]),
                        "urgency": case.urgency,
                        "family_id": family,
                        "sex": sex,
                        "answered": case.answered if dates[4] else "",
                    }
                )
    if given:
        raise ValueError(f"{len(given)} genome ids left over: n = {n} is too small for them")
    return rows


def _iso(d: dt.date | None) -> str:
    return "" if d is None else d.isoformat()


def write_case_manifest(
    path: Path,
    genome_ids: list[str] | None = None,
    n: int = 26_000,
    seed: int = SEED,
    as_of: dt.date | None = None,
) -> CaseSummary:
    """Write a synthetic case history of `n` genomes as a manifest CSV (atomically)."""
    rows = generate(n, seed=seed, as_of=as_of, genome_ids=genome_ids)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())
    cases = {r["family_id"] or r["genome_id"]: r for r in rows}
    requisitions = [r["requisition_date"] for r in rows] or [START.isoformat()]
    ids = set(genome_ids or ())
    return CaseSummary(
        path=path,
        genomes=len(rows),
        cases=len(cases),
        open_cases=sum(not r["report_date"] for r in cases.values()),
        first=dt.date.fromisoformat(min(requisitions)),
        last=dt.date.fromisoformat(max(requisitions)),
        by_group=dict(Counter(r["patient_group"] for r in rows)),
        given=[r for r in rows if r["genome_id"] in ids],
    )
