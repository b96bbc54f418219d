"""A Beacon v2 `g_variants` request, checked, and the alleles of the frequency database it matches.

Parameters are those of the genomicVariations model (`assemblyId`, `referenceName`, `start`,
`end`, `referenceBases`, `alternateBases`, `variantType`) plus the framework's
`requestedGranularity`, `skip`/`limit` and `includeResultsetResponses`; a GET gives them as query
parameters (a list as `start=100,200`), a POST as a request body `{"meta": ..., "query":
{"requestParameters": {...}, "requestedGranularity": ..., "pagination": {...}}}`, where the
parameters may sit directly in `requestParameters` or under its `g_variant` key (the model's
form). Anything unknown, mistyped or out of range is refused with 400 before the database is read.

Coordinates
    Beacon coordinates are 0-based (interbase, as VRS): `start` is the 0-based position of the
    first base, `end` is exclusive. The database keeps VCF positions (1-based), so a VCF record
    at POS 1000 is asked for with `start=999`; a range `start=999&end=2000` covers POS 1000 to
    2000 inclusive. Two kinds of query are served:

    * *sequence*: `start` and `alternateBases` (and usually `referenceBases`), no `end`: the
      alleles whose POS is `start + 1`; `referenceBases` "N" or absent matches any reference
      and `alternateBases` "N" any single base;
    * *range*: `start` and `end` (`end > start`, at most `max_range` bases): the alleles whose
      POS lies in `[start + 1, end]`, optionally filtered by `referenceBases`,
      `alternateBases` and `variantType` (SNP, MNP, INS, DEL, INDEL = INS or DEL).

    Bracket queries (`start` or `end` with two values) are refused (400). Reference names are
    matched as the database's store does it: `chr1` and `1` (and `chrM` and `MT`) name the same
    contig; responses use the reference's own name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from wgsvault.serve.params import REFERENCE_NAME

GRANULARITIES = ("boolean", "count", "record")
VARIANT_TYPES = ("SNP", "MNP", "INS", "DEL", "INDEL")
_BASES = re.compile(r"[ACGTUNRYSWKMBDHV.-]{1,1000}\Z")
_DIGITS = re.compile(r"[0-9]{1,19}\Z")
_ASSEMBLY = re.compile(r"[A-Za-z0-9._-]{1,50}\Z")
MAX_COORD = 2**62
_PARAMS = frozenset(
    {"assemblyId", "referenceName", "start", "end", "referenceBases", "alternateBases"}
) | {"variantType"}
_GET_KEYS = _PARAMS | {"requestedGranularity", "skip", "limit", "includeResultsetResponses"}
_INCLUDE = ("ALL", "HIT", "MISS", "NONE")


class BadQuery(Exception):
    """A request the Beacon refuses with 400 (the message says what to change)."""


class Stratum(Protocol):
    ac: int
    an: int
    af: float | None
    nhomalt: int
    nhemi: int


class Allele(Protocol):
    """One allele of the frequency database (variants.store.AlleleFrequency)."""

    chrom: str
    pos: int
    ref: str
    alt: str
    ac: int
    an: int
    af: float | None
    nhomalt: int
    nhemi: int

    @property
    def strata(self) -> Mapping[str, Stratum]: ...


class Frequencies(Protocol):
    """What the Beacon reads of the frequency database (variants.store.FrequencyStore)."""

    def lookup(self, chrom: str, pos: int, ref: str, alt: str) -> list[Any]: ...
    def region(self, chrom: str, start: int, end: int) -> list[Any]: ...
    def contigs(self) -> list[str]: ...
    def assembly(self) -> str | None: ...
    def genomes(self) -> int: ...
    def release(self) -> int | None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class VariantQuery:
    reference_name: str
    start: int
    end: int | None
    reference_bases: str | None = None
    alternate_bases: str | None = None
    variant_type: str | None = None
    assembly_id: str | None = None
    granularity: str = "boolean"
    skip: int = 0
    limit: int = 10
    include: str = "HIT"

    def echo(self) -> dict[str, Any]:
        """The request parameters as the model writes them (`start`/`end` as lists)."""
        out: dict[str, Any] = {"referenceName": self.reference_name, "start": [self.start]}
        if self.end is not None:
            out["end"] = [self.end]
        for key, value in (
            ("referenceBases", self.reference_bases),
            ("alternateBases", self.alternate_bases),
            ("variantType", self.variant_type),
            ("assemblyId", self.assembly_id),
        ):
            if value is not None:
                out[key] = value
        return out


def _int(value: object, what: str, lo: int = 0) -> int:
    if isinstance(value, str):
        if not _DIGITS.match(value):
            raise BadQuery(f"{what} must be a non-negative integer")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadQuery(f"{what} must be a non-negative integer")
    if not lo <= value <= MAX_COORD:
        raise BadQuery(f"{what} is out of range")
    return value


def _one(value: object, what: str) -> object:
    """A coordinate given once: a scalar, a one-item list, or "N" in a query string."""
    if isinstance(value, str) and "," in value:
        value = value.split(",")
    if isinstance(value, list):
        if len(value) != 1:
            raise BadQuery(f"{what} with two values (a bracket query) is not supported")
        return value[0]
    return value


def _bases(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _BASES.match(value.upper()):
        raise BadQuery(f"{what} must be bases (IUPAC letters, '-' or '.')")
    return value.upper()


def _text(value: object, what: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise BadQuery(f"{what} must be one of {', '.join(choices)}")
    return value


def parse(
    params: Mapping[str, object],
    *,
    granularity: object,
    skip: object,
    limit: object,
    include: object,
    max_range: int,
    max_records: int,
) -> VariantQuery:
    """A checked query from the g_variant parameters and the framework's options."""
    unknown = sorted(set(params) - _PARAMS)
    if unknown:
        raise BadQuery(f"unknown parameter {unknown[0][:40]!r}")
    name = params.get("referenceName")
    if name is None:
        raise BadQuery("referenceName is required")
    if not isinstance(name, str) or name == "*" or not REFERENCE_NAME.match(name):
        raise BadQuery("referenceName is not a valid reference sequence name")
    if params.get("start") is None:
        raise BadQuery("start is required (0-based)")
    start = _int(_one(params["start"], "start"), "start")
    end_value = params.get("end")
    end = None if end_value is None else _int(_one(end_value, "end"), "end", lo=1)
    ref = _bases(params.get("referenceBases"), "referenceBases")
    alt = _bases(params.get("alternateBases"), "alternateBases")
    vtype = params.get("variantType")
    if vtype is not None:
        vtype = _text(
            vtype.upper() if isinstance(vtype, str) else vtype, "variantType", VARIANT_TYPES
        )
    assembly = params.get("assemblyId")
    if assembly is not None and (not isinstance(assembly, str) or not _ASSEMBLY.match(assembly)):
        raise BadQuery("assemblyId must be a short assembly name such as GRCh38")
    if end is None:
        if alt is None:
            raise BadQuery("a sequence query needs alternateBases (or give end: a range query)")
    elif end <= start:
        raise BadQuery(f"end {end} must be after start {start} (0-based, end exclusive)")
    elif end - start > max_range:
        raise BadQuery(f"a range query may span at most {max_range} bases")
    gran = (
        "boolean"
        if granularity is None
        else _text(granularity, "requestedGranularity", GRANULARITIES)
    )
    lim = 10 if limit is None else _int(limit, "limit")
    return VariantQuery(
        name,
        start,
        end,
        ref,
        alt,
        vtype,
        assembly,
        gran,
        skip=0 if skip is None else _int(skip, "skip"),
        limit=max_records if lim == 0 else min(lim, max_records),
        include="HIT" if include is None else _text(include, "includeResultsetResponses", _INCLUDE),
    )


def from_query(params: Mapping[str, str], repeated: bool, s_range: int, s_rec: int) -> VariantQuery:
    """A GET request's query parameters (`repeated`: some key was given twice)."""
    unknown = sorted(set(params) - _GET_KEYS)
    if unknown:
        raise BadQuery(f"unknown parameter {unknown[0][:40]!r}")
    if repeated:
        raise BadQuery("a parameter is given more than once")
    model = {k: v for k, v in params.items() if k in _PARAMS}
    return parse(
        model,
        granularity=params.get("requestedGranularity"),
        skip=params.get("skip"),
        limit=params.get("limit"),
        include=params.get("includeResultsetResponses"),
        max_range=s_range,
        max_records=s_rec,
    )


def from_body(data: object, s_range: int, s_rec: int) -> VariantQuery:
    """A POST request's JSON body (a Beacon request body)."""
    if not isinstance(data, dict):
        raise BadQuery("the request body must be a JSON object")
    unknown = sorted(set(data) - {"$schema", "meta", "query"})
    if unknown:
        raise BadQuery(f"unknown key {unknown[0][:40]!r} in the request body")
    query = data.get("query", {})
    if not isinstance(query, dict):
        raise BadQuery("query must be an object")
    known = {"requestParameters", "requestedGranularity", "pagination", "filters"}
    unknown = sorted(set(query) - known - {"includeResultsetResponses", "testMode"})
    if unknown:
        raise BadQuery(f"unknown key {unknown[0][:40]!r} in query")
    if query.get("filters"):
        raise BadQuery("filters are not supported (filtering_terms lists none)")
    if query.get("testMode") not in (None, False):
        raise BadQuery("testMode is not supported")
    rp = query.get("requestParameters", {})
    if isinstance(rp, dict) and isinstance(rp.get("g_variant"), dict) and len(rp) == 1:
        rp = rp["g_variant"]
    if not isinstance(rp, dict):
        raise BadQuery("requestParameters must be an object")
    page = query.get("pagination", {})
    if not isinstance(page, dict) or set(page) - {"skip", "limit"}:
        raise BadQuery("pagination is an object of skip and limit")
    return parse(
        rp,
        granularity=query.get("requestedGranularity"),
        skip=page.get("skip"),
        limit=page.get("limit"),
        include=query.get("includeResultsetResponses"),
        max_range=s_range,
        max_records=s_rec,
    )


def variant_type(ref: str, alt: str) -> str:
    """SNP, MNP, INS or DEL of a normalised (split, left-aligned) allele."""
    if len(ref) == len(alt):
        return "SNP" if len(ref) == 1 else "MNP"
    return "DEL" if len(ref) > len(alt) else "INS"


def _wanted(q: VariantQuery, a: Allele) -> bool:
    if a.ac <= 0:
        return False
    if q.reference_bases not in (None, "N") and a.ref != q.reference_bases:
        return False
    if q.alternate_bases == "N":
        if len(a.alt) != 1:
            return False
    elif q.alternate_bases is not None and a.alt != q.alternate_bases:
        return False
    if q.variant_type is not None:
        kind = variant_type(a.ref, a.alt)
        if q.variant_type == "INDEL":
            return kind in ("INS", "DEL")
        return kind == q.variant_type
    return True


def find(store: Frequencies, q: VariantQuery) -> list[Allele]:
    """The alleles (carried by at least one genome) the query matches, by position."""
    pos = q.start + 1  # 0-based start -> VCF POS
    if q.end is None:
        exact = q.reference_bases not in (None, "N") and q.alternate_bases != "N"
        if exact:
            assert q.reference_bases is not None and q.alternate_bases is not None
            found = store.lookup(q.reference_name, pos, q.reference_bases, q.alternate_bases)
        else:
            found = store.region(q.reference_name, pos, pos)
        hits = [a for a in found if a.pos == pos and _wanted(q, a)]
    else:
        hits = [a for a in store.region(q.reference_name, pos, q.end) if _wanted(q, a)]
    return sorted(hits, key=lambda a: (a.pos, a.ref, a.alt))
