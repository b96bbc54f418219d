"""The FASTQ sidecar: what an aligned CRAM lacks to give back the original FASTQ files exactly.

An aligner keeps each read's name (without `/1` `/2`), mate flag, sequence and qualities, but drops
the rest of the FASTQ header line (CASAVA comments such as `1:N:0:ATCACGTT+GGTACCTT`), the `+` line
convention and the order of the records. The sidecar stores exactly that, compactly:

* per FASTQ file: its name, record count, sha256 of the decompressed stream and of the file, the
  `+` line convention and a *tail template*: the text that follows the bare read name on the
  header line (e.g. `/1` or ` 1:N:0:ATCACGTT+GGTACCTT`), the most common one of that file;
* *tail exceptions*: (name, mate, tail) for each record whose tail differs from its template
  (e.g. the rare `1:Y:0:...` filtered reads), sorted by name so they compress well;
* *excluded records*: (name, mate, first 8 bytes of the record's core digest) of primary CRAM
  records that are not in the FASTQ (e.g. singletons whose mate was dropped when the FASTQ was
  written, or a duplicated record), so a restore skips exactly those records;
* optionally the *order*: for each record (pair) in original order its rank in the canonical order
  (see `wgsvault.covers.canonical_key`), delta- and zigzag-encoded; an original order that already
  is canonical (usual for bcl2fastq output, which follows tile/y) is stored as the word `identity`;
* the sha256 of the CRAM the sidecar belongs to.

File layout (version 1): the 8 bytes `WGSVSC\\x00\\x01`, then one xz stream (CRC64) holding
`u32 LE length | JSON metadata | binary streams`, each stream's byte length listed in the
metadata's `streams` (in order). Names and tails are UTF-8, one per line.
"""

from __future__ import annotations

import json
import lzma
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wgsvault.errors import InputError

MAGIC = b"WGSVSC\x00\x01"
FORMAT = "wgsvault-fastq-sidecar"
VERSION = 1
#: mate codes used in keys and streams: 0 single-end, 1 READ1, 2 READ2
MATES = ("0", "1", "2")


@dataclass
class FileMeta:
    """One original FASTQ file."""

    name: str
    records: int
    sha256_decompressed: str
    sha256_file: str
    gzip: bool
    two_headers: bool
    tail_template: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Sidecar:
    """Decoded sidecar content. Keys are `bare name + mate code` (see `MATES`)."""

    cram_sha256: str
    cram_name: str
    layout: str  # "paired" | "single"
    files: list[FileMeta]
    tail_exceptions: dict[str, str] = field(default_factory=dict)
    excluded: list[tuple[str, bytes]] = field(default_factory=list)  # (key, digest prefix)
    order: str | None = None  # None | "identity" | "permutation"
    ranks: np.ndarray | None = None  # canonical rank of each unit, in original order
    canonical: str = "illumina-prefix/lane/tile/y/x, else name; ties by content digest"

    def mate_of_file(self, index: int) -> str:
        return "0" if self.layout == "single" else MATES[index + 1]


def _lines(items: list[str]) -> bytes:
    return "".join(f"{s}\n" for s in items).encode("utf-8")


def _unlines(data: bytes) -> list[str]:
    return data.decode("utf-8").split("\n")[:-1] if data else []


def _encode_ranks(ranks: np.ndarray) -> tuple[bytes, int]:
    deltas = np.diff(ranks.astype(np.int64), prepend=np.int64(-1))
    zz = (deltas << 1) ^ (deltas >> 63)  # zigzag: small |delta| -> small unsigned
    width = 1 if zz.max(initial=0) < 2**8 else 2 if zz.max() < 2**16 else 4
    dtype = {1: "<u1", 2: "<u2", 4: "<u4"}[width]
    return zz.astype(dtype).tobytes(), width


def _decode_ranks(data: bytes, width: int) -> np.ndarray:
    zz = np.frombuffer(data, dtype={1: "<u1", 2: "<u2", 4: "<u4"}[width]).astype(np.int64)
    deltas = (zz >> 1) ^ -(zz & 1)
    return np.cumsum(deltas) - 1  # the first delta was taken from -1


def encode(sc: Sidecar, *, with_order: bool = True) -> bytes:
    """Serialize `sc` (optionally leaving the order out) to the compressed file format."""
    exc = sorted(sc.tail_exceptions.items())
    excluded = sorted(sc.excluded)
    streams: list[tuple[str, bytes]] = [
        ("exception_names", _lines([k[:-1] for k, _ in exc])),
        ("exception_mates", "".join(k[-1] for k, _ in exc).encode()),
        ("exception_tails", _lines([t for _, t in exc])),
        ("excluded_names", _lines([k[:-1] for k, _ in excluded])),
        ("excluded_mates", "".join(k[-1] for k, _ in excluded).encode()),
        ("excluded_digests", b"".join(d for _, d in excluded)),
    ]
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "cram_sha256": sc.cram_sha256,
        "cram_name": sc.cram_name,
        "layout": sc.layout,
        "files": [f.to_dict() for f in sc.files],
        "canonical_order": sc.canonical,
        "order": sc.order if with_order else None,
    }
    if with_order and sc.order == "permutation" and sc.ranks is not None:
        data, width = _encode_ranks(sc.ranks)
        streams.append(("order_ranks", data))
        meta["order_width"] = width
        meta["order_units"] = int(len(sc.ranks))
    meta["streams"] = [[name, len(data)] for name, data in streams]
    js = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    payload = b"".join([struct.pack("<I", len(js)), js, *(d for _, d in streams)])
    return MAGIC + lzma.compress(payload, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=9)


def decode(data: bytes, *, what: str = "sidecar") -> Sidecar:
    """Parse sidecar bytes; InputError (naming `what`) when they are not a valid sidecar."""
    if not data.startswith(MAGIC[:6]):
        raise InputError(f"{what}: not a wgsvault FASTQ sidecar (bad magic)")
    if data[:8] != MAGIC:
        raise InputError(f"{what}: unsupported sidecar version {data[6:8].hex()}")
    try:
        payload = lzma.decompress(data[8:], format=lzma.FORMAT_XZ)
        (n,) = struct.unpack_from("<I", payload)
        meta = json.loads(payload[4 : 4 + n])
        pos = 4 + n
        streams: dict[str, bytes] = {}
        for name, length in meta["streams"]:
            streams[name] = payload[pos : pos + length]
            pos += length
        if meta.get("format") != FORMAT or pos != len(payload):
            raise ValueError("bad layout")
    except (lzma.LZMAError, struct.error, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{what}: corrupt sidecar ({exc})") from None
    names = _unlines(streams["exception_names"])
    mates = streams["exception_mates"].decode()
    tails = _unlines(streams["exception_tails"])
    ex_names = _unlines(streams["excluded_names"])
    ex_mates = streams["excluded_mates"].decode()
    ex_digests = streams["excluded_digests"]
    ranks = None
    if meta.get("order") == "permutation":
        ranks = _decode_ranks(streams["order_ranks"], meta["order_width"])
    return Sidecar(
        cram_sha256=meta["cram_sha256"],
        cram_name=meta["cram_name"],
        layout=meta["layout"],
        files=[FileMeta(**f) for f in meta["files"]],
        tail_exceptions={n + m: t for n, m, t in zip(names, mates, tails, strict=True)},
        excluded=[
            (n + m, ex_digests[8 * i : 8 * i + 8])
            for i, (n, m) in enumerate(zip(ex_names, ex_mates, strict=True))
        ],
        order=meta.get("order"),
        ranks=ranks,
        canonical=meta.get("canonical_order", ""),
    )


def read(path: Path) -> Sidecar:
    """Read and decode a sidecar file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read sidecar ({exc.strerror})") from None
    return decode(data, what=str(path))
