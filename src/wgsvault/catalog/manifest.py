"""Importing the clinical context of genomes from a CSV manifest.

Columns: `genome_id` (required) and any of `patient_group`, `indication`, `requisition_region`,
the case's dates `requisition_date`, `sample_date`, `sequencing_date`, `delivery_date`,
`report_date` (YYYY-MM-DD; empty while a step is pending), `urgency` (`acute`, `urgent`,
`standard`), `family_id` (genomes of one trio or family share it), `sex` (`female`, `male`,
`unknown`) and `answered` (`yes`/`no`: the report answered the clinical question). Comma,
semicolon or tab separated, UTF-8 (a BOM is accepted). The whole file is validated before
anything is written: every problem is reported with its line number, and the import is all or
nothing. Known genomes are updated, new ones added; an empty cell leaves a known value as it was,
so importing the same file again changes nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import bindparam, insert, select, update

from wgsvault.catalog.db import Catalog
from wgsvault.catalog.models import Genome, table_of
from wgsvault.errors import InputError

DATES = ("requisition_date", "sample_date", "sequencing_date", "delivery_date", "report_date")
#: dates that cannot come before others (a case is requisitioned, then delivered and reported)
ORDER = (
    ("requisition_date", "delivery_date"),
    ("requisition_date", "report_date"),
    ("sample_date", "delivery_date"),
)
CHOICES = {
    "urgency": ("acute", "urgent", "standard"),
    "sex": ("female", "male", "unknown"),
    "answered": ("yes", "no"),
}
COLUMNS = (
    "genome_id",
    "patient_group",
    "indication",
    "requisition_region",
    *DATES,
    "urgency",
    "family_id",
    "sex",
    "answered",
)
GENOME_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}\Z")
MAX_ERRORS = 50
BATCH = 5000  # rows per INSERT/UPDATE statement


class ManifestError(InputError):
    """A manifest with one or more bad lines; `errors` holds one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(errors[0] + more)
        self.errors = errors


@dataclass(frozen=True)
class ImportResult:
    added: int
    updated: int


def read_manifest(path: Path) -> list[dict[str, object]]:
    """Validated rows of a manifest; raises ManifestError listing every bad line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise InputError(f"{path}:1: empty manifest: expected a header with {COLUMNS[0]}")
    delim = max(",;\t", key=lines[0].count)
    reader = csv.reader(lines, delimiter=delim)
    header = [h.strip().lower() for h in next(reader)]
    errors: list[str] = []
    unknown = [h for h in header if h not in COLUMNS]
    if "genome_id" not in header or unknown or len(set(header)) != len(header):
        what = f"unknown column(s) {', '.join(unknown)}" if unknown else "bad header"
        raise ManifestError(
            [f"{path}:1: {what}: columns are {', '.join(COLUMNS)} (genome_id required, each once)"]
        )
    rows: list[dict[str, object]] = []
    seen: dict[str, int] = {}
    today = dt.date.today()
    for lineno, fields in enumerate(reader, start=2):
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            errors.append(f"{path}:{lineno}: {len(fields)} fields, header has {len(header)}")
            continue
        row: dict[str, object] = {
            h: (f.strip() or None) for h, f in zip(header, fields, strict=True)
        }
        gid = row["genome_id"]
        if not isinstance(gid, str) or not GENOME_ID.match(gid):
            errors.append(
                f"{path}:{lineno}: genome_id {gid!r} is not a valid id (letters, digits, . _ -)"
            )
        elif gid in seen:
            errors.append(f"{path}:{lineno}: genome_id {gid} repeats line {seen[gid]}")
        else:
            seen[gid] = lineno
        errors += _check_case(row, f"{path}:{lineno}", today)
        if len(errors) >= MAX_ERRORS:
            break
        rows.append(row)
    if errors:
        raise ManifestError(errors)
    return rows


def _check_case(row: dict[str, object], where: str, today: dt.date) -> list[str]:
    """Parse the row's dates and choices in place; the problems found, one line each."""
    errors: list[str] = []
    for col in DATES:
        value = row.get(col)
        if not isinstance(value, str):
            continue
        try:
            row[col] = parsed = dt.date.fromisoformat(value)
        except ValueError:
            errors.append(f"{where}: {col} {value!r} is not a date YYYY-MM-DD")
            continue
        if parsed > today:
            errors.append(f"{where}: {col} {value} is in the future")
    for a, b in ORDER:
        da, db = row.get(a), row.get(b)
        if isinstance(da, dt.date) and isinstance(db, dt.date) and db < da:
            errors.append(f"{where}: {b} {db} is before {a} {da}")
    for col, allowed in CHOICES.items():
        value = row.get(col)
        if isinstance(value, str):
            if value.lower() not in allowed:
                errors.append(f"{where}: {col} {value!r}: choose one of {', '.join(allowed)}")
            else:
                row[col] = value.lower() == "yes" if col == "answered" else value.lower()
    return errors


def import_manifest(catalog: Catalog, path: Path) -> ImportResult:
    """Validate `path` whole, then add or update its genomes in one transaction.

    New genomes are inserted and known ones updated in bulk (one statement per set of columns a
    row fills), so a national manifest of 60,000 rows does not build 60,000 ORM objects."""
    rows = read_manifest(path)
    now = dt.datetime.now(dt.UTC)
    table = table_of(Genome)
    with catalog.session() as s:
        conn = s.connection()
        known: dict[str, int] = {n: i for n, i in conn.execute(select(Genome.name, Genome.id))}
        new: list[dict[str, object]] = []
        changes: dict[tuple[str, ...], list[dict[str, object]]] = defaultdict(list)
        for row in rows:
            name = str(row["genome_id"])
            values = {c: row[c] for c in COLUMNS[1:] if row.get(c) is not None}
            values.update(manifest=str(path), updated_at=now)
            gid = known.get(name)
            if gid is None:
                new.append({"name": name, **dict.fromkeys(COLUMNS[1:]), **values})
            else:
                changes[tuple(sorted(values))].append(
                    {"gid": gid, **{f"v_{c}": v for c, v in values.items()}}
                )
        for i in range(0, len(new), BATCH):
            conn.execute(insert(table), new[i : i + BATCH])
        for cols, items in changes.items():
            stmt = (
                update(table)
                .where(table.c.id == bindparam("gid"))
                .values({c: bindparam(f"v_{c}") for c in cols})
            )
            for i in range(0, len(items), BATCH):
                conn.execute(stmt, items[i : i + BATCH])
    return ImportResult(len(new), sum(len(v) for v in changes.values()))
