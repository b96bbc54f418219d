"""Every parameter of a ticket request, type- and range-checked before anything is looked up.

A GET names one region in its query (`referenceName`, `start`, `end`), a POST any number in a
JSON body (`regions`); both may give `format` and `class` (and `fields`, `tags`, `notags`, which
are accepted and, as service-info says, not applied). Anything else, or a value of the wrong
type or range, is refused with htsget `InvalidInput` (400), never a 500:

* ids and reference names are matched whole (`\\Z`, so a trailing newline is not a match);
* coordinates are non-negative integers up to 2**62, written as digits in a query and as JSON
  integers in a body (no floats, booleans, `Infinity` or 30-digit numbers); `start > end` is
  `InvalidRange`;
* a body is read only after the request is authenticated, and only up to `max_body` bytes
  (`PayloadTooLarge`, 413); its JSON may nest at most `max_depth` levels, and it may name at
  most `max_regions` regions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from wgsvault.codec.slice import Span
from wgsvault.serve.errors import HtsgetError

#: a genome id as a request may name it; anything else is refused before any lookup
GENOME_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}\Z")
#: a reference sequence name as SAM allows it (at most 255 characters), or "*"
REFERENCE_NAME = re.compile(
    r"(?:\*|[0-9A-Za-z!#$%&+./:;?@^_|~-][0-9A-Za-z!#$%&*+./:;=?@^_|~-]{0,254})\Z"
)
_DIGITS = re.compile(r"[0-9]{1,19}\Z")
MAX_COORD = 2**62
FORMATS = {"reads": ("CRAM", ("BAM", "CRAM")), "variants": ("VCF", ("VCF", "BCF"))}
_QUERY_KEYS = frozenset({"format", "class", "referenceName", "start", "end", "fields", "tags"})
_QUERY_KEYS |= {"notags"}
_BODY_KEYS = frozenset({"format", "class", "fields", "tags", "notags", "regions"})
_REGION_KEYS = frozenset({"referenceName", "start", "end"})


@dataclass(frozen=True)
class Limits:
    max_body: int = 64 * 1024
    max_depth: int = 16
    max_regions: int = 64


@dataclass(frozen=True)
class TicketRequest:
    """A valid request: `spans` empty means the whole file."""

    format: str
    header_only: bool
    spans: tuple[Span, ...]


def invalid(message: str) -> HtsgetError:
    return HtsgetError("InvalidInput", message)


def check_genome_id(genome: str) -> None:
    if not GENOME_ID.match(genome):
        raise invalid("not a valid genome id")


def _format(value: object, endpoint: str) -> str:
    default, known = FORMATS[endpoint]
    if value is None:
        return default
    if not isinstance(value, str) or len(value) > 10:
        raise invalid("format must be a short string")
    fmt = value.upper()
    if fmt != default:
        served = "" if fmt in known else " (unknown format)"
        raise HtsgetError("UnsupportedFormat", f"{fmt[:10]}{served}: this server serves {default}")
    return fmt


def _class(value: object) -> bool:
    if value is None:
        return False
    if value != "header":
        raise invalid("class must be 'header' when given")
    return True


def _coord(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        if not _DIGITS.match(value):
            raise invalid(f"{what} must be a non-negative integer")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{what} must be a non-negative integer")
    if not 0 <= value <= MAX_COORD:
        raise invalid(f"{what} is out of range")
    return value


def _span(name: object, start: object, end: object) -> Span:
    lo, hi = _coord(start, "start"), _coord(end, "end")
    if name is None:
        if lo is not None or hi is not None:
            raise invalid("start and end need a referenceName")
        raise invalid("a region needs a referenceName")
    if not isinstance(name, str) or not REFERENCE_NAME.match(name):
        raise invalid("referenceName is not a valid reference sequence name")
    if name == "*" and (lo is not None or hi is not None):
        raise invalid("unplaced reads ('*') take no start or end")
    if lo is not None and hi is not None and lo > hi:
        raise HtsgetError("InvalidRange", f"start {lo} is after end {hi}")
    return Span(name, lo, hi)


def _strings(value: object, what: str) -> None:
    """`fields`, `tags`, `notags`: checked for type, not applied."""
    if value is None:
        return
    ok = isinstance(value, str) or (
        isinstance(value, list) and len(value) <= 256 and all(isinstance(v, str) for v in value)
    )
    if not ok:
        raise invalid(f"{what} must be a list of strings")


def from_query(params: Mapping[str, str], repeated: bool, endpoint: str) -> TicketRequest:
    """A GET request's parameters (`repeated`: some key was given twice)."""
    unknown = sorted(set(params) - _QUERY_KEYS)
    if unknown:
        raise invalid(f"unknown parameter {unknown[0][:40]!r}")
    if repeated:
        raise invalid("a parameter is given more than once")
    fmt = _format(params.get("format"), endpoint)
    header_only = _class(params.get("class"))
    for key in ("fields", "tags", "notags"):
        _strings(params.get(key), key)
    name, start, end = params.get("referenceName"), params.get("start"), params.get("end")
    if name is None and start is None and end is None:
        return TicketRequest(fmt, header_only, ())
    return TicketRequest(fmt, header_only, (_span(name, start, end),))


def from_body(data: object, endpoint: str, limits: Limits) -> TicketRequest:
    """A POST request's JSON body."""
    if not isinstance(data, dict):
        raise invalid("the request body must be a JSON object")
    unknown = sorted(set(data) - _BODY_KEYS)
    if unknown:
        raise invalid(f"unknown key {unknown[0][:40]!r} in the request body")
    fmt = _format(data.get("format"), endpoint)
    header_only = _class(data.get("class"))
    for key in ("fields", "tags", "notags"):
        _strings(data.get(key), key)
    regions = data.get("regions")
    if regions is None:
        return TicketRequest(fmt, header_only, ())
    if not isinstance(regions, list) or not regions:
        raise invalid("regions must be a non-empty list of objects")
    if len(regions) > limits.max_regions:
        raise invalid(f"at most {limits.max_regions} regions per request")
    spans = []
    for r in regions:
        if not isinstance(r, dict) or set(r) - _REGION_KEYS:
            raise invalid("each region is an object of referenceName, start and end")
        spans.append(_span(r.get("referenceName"), r.get("start"), r.get("end")))
    return TicketRequest(fmt, header_only, tuple(spans))


def _depth(text: str, limit: int) -> None:
    """Refuse JSON nested deeper than `limit` (counted outside strings), before parsing it."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                raise invalid(f"the request body nests deeper than {limit} levels")
        elif ch in "]}":
            depth -= 1


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def read_json(request: Request, limits: Limits) -> object:
    """The request's JSON body, read up to `limits.max_body` bytes; {} when it is empty."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limits.max_body):
        raise HtsgetError("PayloadTooLarge", f"the request body exceeds {limits.max_body} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body:
            raise HtsgetError(
                "PayloadTooLarge", f"the request body exceeds {limits.max_body} bytes"
            )
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
        _depth(text, limits.max_depth)
        return json.loads(text, parse_constant=_no_constant)
    except HtsgetError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise invalid("the request body is not valid JSON") from None
