"""The restore recipe of a converted FASTQ: how the CRAM's records become the original file(s).

`convert fastq` (convert.py, fastq_encode.py) keeps every byte of each record in the CRAM record
itself (name, bases, qualities, and aux tags for the rest); what belongs to a file rather than to a
record goes into the recipe, which the CRAM carries in its header as `@CO wgsvault-fastq: {json}`:

* `layout`: `single`, `paired` (two files, READ1/READ2) or `interleaved` (pairs in one file);
* per file (`FileStyle`): its name, record count, CR LF line ends, whether the last line has a
  line end, whether `+` lines repeat the header, blank lines after the last record;
* `tags`: how many records carry each tag (for the reader's information).

Version 1 recipes (written before dialects were kept: plain names, `/1` `/2` suffixes rebuilt by
`samtools fastq -N`, CASAVA comments rebuilt from flags and `BC` by `samtools fastq -i`) still
restore. `diagnose` names the first line where a restored file differs from its original.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pysam
from xopen import xopen

from wgsvault.errors import InputError

#: starts the header comment that holds a converted CRAM's restore recipe (`@CO`, then JSON)
RECIPE_TAG = "wgsvault-fastq:"
#: tags the encoder may write (fastq_encode); `samtools fastq -T` asks for all of them
TAGS = ("CO", "zt", "zn", "zc", "zs", "zq", "zp")
LAYOUTS = ("single", "paired", "interleaved")


@dataclass(frozen=True)
class FileStyle:
    """What one original FASTQ file looks like beyond its records."""

    name: str
    records: int | None = None
    crlf: bool = False
    final_newline: bool = True
    plus_repeats: bool = False
    trailer: bytes = b""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "records": self.records,
            "crlf": self.crlf,
            "final_newline": self.final_newline,
            "plus_repeats": self.plus_repeats,
            "trailer": self.trailer.decode("latin-1"),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileStyle:
        return cls(
            name=str(d["name"]),
            records=d.get("records"),
            crlf=bool(d.get("crlf", False)),
            final_newline=bool(d.get("final_newline", True)),
            plus_repeats=bool(d.get("plus_repeats", False)),
            trailer=str(d.get("trailer", "")).encode("latin-1"),
        )


@dataclass(frozen=True)
class Recipe:
    """How to restore the FASTQ file(s) of one converted CRAM."""

    layout: str
    files: tuple[FileStyle, ...]
    version: int = 2
    tags: dict[str, int] = field(default_factory=dict)
    casava: bool = False  # version 1 only
    suffix: bool = False  # version 1 only

    @property
    def paired(self) -> bool:
        return self.layout != "single"

    def fastq_args(self) -> list[str]:
        """`samtools fastq` options that write the records as the decoder expects them."""
        if self.version >= 2:
            return ["-n", "-T", ",".join(TAGS)]
        args = ["-N" if self.suffix else "-n"]
        if self.casava:
            args += ["-i", "--index-format", "i*i*"]
        return args

    def output_args(self, files: list[str]) -> list[str]:
        """`samtools fastq` options that send every record to `files` (one per original file).

        Version 1 `samtools import -i` flagged CASAVA single-end reads READ1 (mate-less); they
        go to `-o`. Plain single-end reads carry neither READ flag and go to `-0`.
        """
        if self.layout == "paired":
            return ["-1", files[0], "-2", files[1], "-0", "/dev/null", "-s", "/dev/null"]
        if self.layout == "interleaved":
            return ["-o", files[0], "-0", "/dev/null", "-s", "/dev/null"]
        if self.casava:
            return ["-o", files[0], "-0", "/dev/null"]
        return ["-0", files[0], "-s", "/dev/null"]

    def to_dict(self) -> dict[str, Any]:
        if self.version < 2:
            return {
                "v": 1,
                "paired": self.paired,
                "casava": self.casava,
                "suffix": self.suffix,
                "files": [f.name for f in self.files],
            }
        return {
            "v": 2,
            "layout": self.layout,
            "files": [f.to_dict() for f in self.files],
            "tags": dict(sorted(self.tags.items())),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        if d.get("v", 1) == 1:
            names = d.get("files") or (["R1", "R2"] if d["paired"] else ["R0"])
            return cls(
                layout="paired" if d["paired"] else "single",
                files=tuple(FileStyle(name=n) for n in names),
                version=1,
                casava=bool(d["casava"]),
                suffix=bool(d["suffix"]),
            )
        if d["layout"] not in LAYOUTS:
            raise InputError(f"recipe layout {d['layout']!r} unknown")
        return cls(
            layout=d["layout"],
            files=tuple(FileStyle.from_dict(f) for f in d["files"]),
            tags={str(k): int(v) for k, v in d.get("tags", {}).items()},
        )

    def header_line(self) -> str:
        return f"@CO\t{RECIPE_TAG} {json.dumps(self.to_dict(), separators=(',', ':'))}\n"


def diagnose(original: Path, restored: Path) -> str:
    """Where a restored FASTQ first differs from its original (line and record)."""
    try:
        with xopen(original, "rb", threads=0) as a, xopen(restored, "rb", threads=0) as b:
            n = 0
            for n, (x, y) in enumerate(zip(a, b, strict=False), 1):
                if x != y:
                    return (
                        f"line {n:,} (record {(n - 1) // 4 + 1:,}) differs: "
                        f"{x[:60]!r} became {y[:60]!r}"
                    )
            rest_a, rest_b = a.read(1), b.read(1)
            if rest_a or rest_b:
                return f"after line {n:,} only the {'original' if rest_a else 'restore'} goes on"
            return "the same lines, but the bytes differ"
    except (OSError, EOFError, ValueError) as exc:
        return f"cannot compare: {exc}"


def read_recipe(cram: Path) -> Recipe | None:
    """The FASTQ restore recipe a converted CRAM carries in its header, if any."""
    level = pysam.set_verbosity(0)  # no "could not retrieve index" noise: only the header is read
    try:
        with pysam.AlignmentFile(str(cram), "rc", check_sq=False) as fh:
            comments = fh.header.to_dict().get("CO", [])
    except (OSError, ValueError) as exc:
        raise InputError(f"{cram}: cannot read CRAM header: {exc}") from None
    finally:
        pysam.set_verbosity(level)
    for co in comments:
        if co.startswith(RECIPE_TAG):
            try:
                return Recipe.from_dict(json.loads(co[len(RECIPE_TAG) :]))
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"{cram}: unreadable FASTQ recipe in the header: {exc}") from None
    return None
