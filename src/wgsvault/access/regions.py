"""Region restrictions of grants: parsing `chr1:100-200` and testing requests against them.

Region restrictions
    A grant may be limited to one region, given as text ``chr1:100-200`` (1-based, inclusive, as
    samtools and htsget users write it), ``chr1:100`` (to the end) or ``chr1`` (the whole
    sequence); ``{name}:start-end`` quotes a sequence name containing ``:``. In memory `Region`
    is 0-based half-open (`start`, `end`; `end` None = to the end of the sequence), the
    coordinates htsget requests use. Sequence names are compared exactly as the file's header
    spells them (``chr1`` and ``1`` are different sequences), so a mismatch refuses, never
    widens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wgsvault.errors import InputError

#: a reference sequence name as the SAM specification allows it
_SEQ_NAME = re.compile(r"[0-9A-Za-z!#$%&+./:;?@^_|~-][0-9A-Za-z!#$%&*+./:;=?@^_|~-]*\Z")
_COORD = re.compile(r"[0-9][0-9,]*\Z")


@dataclass(frozen=True)
class Region:
    """A sequence interval, 0-based half-open; `end` None = to the end of the sequence."""

    name: str
    start: int = 0
    end: int | None = None

    def __str__(self) -> str:
        """1-based inclusive text, as `parse_region` reads it back."""
        name = f"{{{self.name}}}" if ":" in self.name else self.name
        if self.start == 0 and self.end is None:
            return name
        if self.end is None:
            return f"{name}:{self.start + 1}"
        return f"{name}:{self.start + 1}-{self.end}"

    def covers(self, reference_name: str | None, start: int | None, end: int | None) -> bool:
        """Whether a request (htsget coordinates: 0-based `start`, exclusive `end`, None = from
        the beginning / to the end of the sequence) lies wholly inside this region.

        A request without `reference_name` (the whole file) is covered by no region.
        """
        if reference_name is None or reference_name != self.name:
            return False
        lo = 0 if start is None else start
        if lo < self.start:
            return False
        if self.end is None:
            return True
        return end is not None and end <= self.end


def parse_region(text: str) -> Region:
    """`chr1:100-200` (1-based inclusive), `chr1:100` (to the end), `chr1`, `{name:x}:1-9`."""
    raw = (text or "").strip()
    if not raw:
        raise InputError("region is empty: expected chr:start-end, e.g. chr1:100-200")
    if raw.startswith("{"):
        name, brace, rest = raw[1:].partition("}")
        if not brace or (rest and not rest.startswith(":")):
            raise InputError(f"region {text!r}: expected {{name}} or {{name}}:start-end")
        span = rest[1:] if rest else None
    else:
        name, colon, span = raw.rpartition(":")
        if not colon:
            name, span = raw, None
    if not _SEQ_NAME.match(name):
        raise InputError(f"region {text!r}: bad sequence name {name!r}")
    if span is None:
        return Region(name)
    first, dash, last = span.partition("-")
    if not _COORD.match(first) or (dash and not _COORD.match(last)):
        raise InputError(
            f"region {text!r}: expected chr:start-end with 1-based positions, e.g. chr1:100-200"
        )
    start = int(first.replace(",", ""))
    end = int(last.replace(",", "")) if dash else None
    if start < 1:
        raise InputError(f"region {text!r}: positions are 1-based; the first is 1")
    if end is not None and end < start:
        raise InputError(f"region {text!r}: end {end} is before start {start}")
    return Region(name, start - 1, end)


def check_request(reference_name: str | None, start: int | None, end: int | None) -> None:
    if reference_name is None:
        if start is not None or end is not None:
            raise InputError("start and end need a reference name")
        return
    if not reference_name:
        raise InputError("reference name must not be empty")
    for what, v in (("start", start), ("end", end)):
        if v is not None and v < 0:
            raise InputError(f"{what} must not be negative, not {v}")
    if start is not None and end is not None and end < start:
        raise InputError(f"end {end} is before start {start}")
