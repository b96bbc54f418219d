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
  (see `wgsvault.codec.records.canonical_key`), delta- and zigzag-encoded; an original order that
  already is canonical (usual for bcl2fastq output, which follows tile/y) is stored as the word
  `identity`;
* the sha256 of the CRAM the sidecar belongs to.

File layout (version 1): the 8 bytes `WGSVSC\\x00\\x01`, then one xz stream (CRC64) holding
`u32 LE length | JSON metadata | binary streams`, each stream's byte length listed in the
metadata's `streams` (in order). Names and tails are UTF-8, one per line.
"""

from __future__ import annotations

import json
import lzma
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wgsvault.errors import InputError

MAGIC = b"WGSVSC\x00\x01"
#: the name apply gives a FASTQ unit's sidecar beside the aligned CRAM: `<stem>` + SUFFIX
SUFFIX = ".fastq.wgsvault-sidecar"
FORMAT = "wgsvault-fastq-sidecar"
VERSION = 1
#: mate codes used in keys and streams: 0 single-end, 1 READ1, 2 READ2
MATES = ("0", "1", "2")
#: ranks decoded/encoded at a time (int64 temporaries of 8 bytes each)
RANK_CHUNK = 1 << 20
_WIDTH_DTYPE = {1: "<u1", 2: "<u2", 4: "<u4"}


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
    """Decoded sidecar content. Keys are `bare name + mate code` (see `MATES`).

    The order is either `ranks` (an integer array, as `verify_covers` gives it to `encode`) or, as
    `decode` leaves it, the encoded rank stream (1 to 4 bytes per unit), decoded chunk by chunk by
    `rank_chunks()` so that a reader never holds more than that stream plus one chunk.
    """

    cram_sha256: str
    cram_name: str
    layout: str  # "paired" | "single"
    files: list[FileMeta]
    tail_exceptions: dict[str, str] = field(default_factory=dict)
    excluded: list[tuple[str, bytes]] = field(default_factory=list)  # (key, digest prefix)
    order: str | None = None  # None | "identity" | "permutation"
    ranks: np.ndarray | None = None  # canonical rank of each unit, in original order
    canonical: str = "illumina-prefix/lane/tile/y/x, else name; ties by content digest"
    order_stream: Any = None  # encoded ranks (bytes-like), as read
    order_width: int = 0

    def mate_of_file(self, index: int) -> str:
        return "0" if self.layout == "single" else MATES[index + 1]

    @property
    def order_units(self) -> int:
        """Number of units (pairs or single reads) the stored permutation orders."""
        if self.ranks is not None:
            return len(self.ranks)
        return len(self.order_stream) // self.order_width if self.order_stream is not None else 0

    def rank_chunks(self, chunk: int = RANK_CHUNK) -> Iterator[np.ndarray]:
        """The canonical ranks in original order, as int64 arrays of at most `chunk` values."""
        if self.ranks is not None:
            for i in range(0, len(self.ranks), chunk):
                yield np.asarray(self.ranks[i : i + chunk], dtype=np.int64)
            return
        if self.order_stream is None:
            return
        zz_all = np.frombuffer(self.order_stream, dtype=_WIDTH_DTYPE[self.order_width])
        last = np.int64(-1)  # the first delta was taken from -1
        for i in range(0, len(zz_all), chunk):
            zz = zz_all[i : i + chunk].astype(np.int64)
            out = np.cumsum((zz >> 1) ^ -(zz & 1)) + last
            if len(out):
                last = out[-1]
            yield out

    def drop_order(self) -> None:
        """Release the order (ranks or their encoded stream)."""
        self.ranks = None
        self.order_stream = None


def _lines(items: list[str]) -> bytes:
    return "".join(f"{s}\n" for s in items).encode("utf-8")


def _unlines(data: Any) -> list[str]:
    return bytes(data).decode("utf-8").split("\n")[:-1] if data else []


def _zigzag_chunks(ranks: np.ndarray) -> Iterator[np.ndarray]:
    """Zigzag-encoded deltas of `ranks`, chunk by chunk (small |delta| -> small unsigned)."""
    prev = np.int64(-1)
    for i in range(0, len(ranks), RANK_CHUNK):
        chunk = np.asarray(ranks[i : i + RANK_CHUNK], dtype=np.int64)
        deltas = np.diff(chunk, prepend=prev)
        if len(chunk):
            prev = chunk[-1]
        yield (deltas << 1) ^ (deltas >> 63)


def _encode_ranks(ranks: np.ndarray) -> Iterator[bytes]:
    """The rank stream in pieces; the first item is the width (1, 2 or 4) as one byte."""
    top = max((int(zz.max()) for zz in _zigzag_chunks(ranks) if len(zz)), default=0)
    width = 1 if top < 2**8 else 2 if top < 2**16 else 4
    yield bytes([width])
    for zz in _zigzag_chunks(ranks):
        yield zz.astype(_WIDTH_DTYPE[width]).tobytes()


def encode(sc: Sidecar, *, with_order: bool = True) -> bytes:
    """Serialize `sc` (optionally leaving the order out) to the compressed file format.

    A permutation is encoded and compressed piece by piece: besides `sc.ranks`, this holds about
    the compressed output and one chunk.
    """
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
    pieces: Iterator[bytes] = iter(())
    if (
        with_order
        and sc.order == "permutation"
        and (sc.ranks is not None or sc.order_stream is not None)
    ):
        if sc.ranks is not None:
            pieces = _encode_ranks(sc.ranks)
            width = next(pieces)[0]
        else:
            width, pieces = sc.order_width, iter([bytes(sc.order_stream)])
        units = sc.order_units
        streams.append(("order_ranks", b""))  # length set below; data comes from `pieces`
        meta["order_width"] = width
        meta["order_units"] = int(units)
        meta["streams"] = [[name, len(data)] for name, data in streams[:-1]]
        meta["streams"].append(["order_ranks", int(units) * width])
    else:
        meta["streams"] = [[name, len(data)] for name, data in streams]
    js = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    comp = lzma.LZMACompressor(format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=9)
    out = [MAGIC, comp.compress(struct.pack("<I", len(js)) + js)]
    for _, d in streams:
        out.append(comp.compress(d))
    for piece in pieces:
        out.append(comp.compress(piece))
    out.append(comp.flush())
    return b"".join(out)


def decode(data: bytes, *, what: str = "sidecar") -> Sidecar:
    """Parse sidecar bytes; InputError (naming `what`) when they are not a valid sidecar."""
    if not data.startswith(MAGIC[:6]):
        raise InputError(f"{what}: not a wgsvault FASTQ sidecar (bad magic)")
    if data[:8] != MAGIC:
        raise InputError(f"{what}: unsupported sidecar version {data[6:8].hex()}")
    try:
        payload = memoryview(lzma.decompress(data[8:], format=lzma.FORMAT_XZ))
        (n,) = struct.unpack_from("<I", payload)
        meta = json.loads(bytes(payload[4 : 4 + n]))
        pos = 4 + n
        streams: dict[str, Any] = {}
        for name, length in meta["streams"]:
            streams[name] = payload[pos : pos + length]
            pos += length
        if meta.get("format") != FORMAT or pos != len(payload):
            raise ValueError("bad layout")
        width = int(meta.get("order_width", 0)) if meta.get("order") == "permutation" else 0
        if width and (width not in _WIDTH_DTYPE or len(streams["order_ranks"]) % width):
            raise ValueError("bad order stream")
    except (lzma.LZMAError, struct.error, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{what}: corrupt sidecar ({exc})") from None
    names = _unlines(streams["exception_names"])
    mates = bytes(streams["exception_mates"]).decode()
    tails = _unlines(streams["exception_tails"])
    ex_names = _unlines(streams["excluded_names"])
    ex_mates = bytes(streams["excluded_mates"]).decode()
    ex_digests = bytes(streams["excluded_digests"])
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
        canonical=meta.get("canonical_order", ""),
        order_stream=streams["order_ranks"] if width else None,
        order_width=width,
    )


def read(path: Path) -> Sidecar:
    """Read and decode a sidecar file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read sidecar ({exc.strerror})") from None
    return decode(data, what=str(path))
