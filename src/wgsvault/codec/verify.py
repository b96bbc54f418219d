"""Proof of losslessness: what must hold before an original may ever be deleted.

A proof is a small JSON document (format `wgsvault-proof/1`): input and output digests, the checks
run and their outcome, tool versions and reference digests. Checks:

* `record_checksums` (alignment sources): `samtools checksum` over name, flags, sequence, qualities,
  every aux tag, position, CIGAR, MAPQ and mate fields, order-independent, of the original and of
  the CRAM must be equal. Unmapped reads are sanitised the same way on both sides (`-z all`): CRAM
  does not keep the meaningless CIGAR/MAPQ of an unmapped read.
* `restore_sha256` (FASTQ sources): the FASTQ that `samtools fastq` restores from the CRAM, with
  the recipe the CRAM carries, must have the sha256 of the decompressed original, file by file.
* `decode_with_registry`: the CRAM decodes completely with references from the registry only
  (REF_PATH/REF_CACHE set to it, no FASTA given, no network): the checksum or restore pass above is
  that decode.

All passes stream: original and CRAM are read concurrently by separate processes/threads, nothing
is held in memory but digests.
"""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pysam
from xopen import xopen

from wgsvault.codec import htslib
from wgsvault.codec.fastq_decode import decode_cram
from wgsvault.codec.fastqfmt import Recipe, diagnose, read_recipe
from wgsvault.codec.refs import Registry, read_header_sq
from wgsvault.errors import InputError, IntegrityError
from wgsvault.inventory.digest import sha256_file
from wgsvault.inventory.filetypes import FileType, classify

PROOF_FORMAT = "wgsvault-proof/1"
CHECKSUM_ARGS = ["-P", "-C", "-M", "-b", "0xfff", "-f", "0", "-F", "0", "-z", "all,cigarx"]
CHECKSUM_ARGS += ["-t", "*"]
CHUNK = 1 << 20


def decompressed_sha256(path: Path) -> tuple[str, int]:
    """sha256 and length of a (possibly gzip/bgzip) file's decompressed content."""
    h = hashlib.sha256()
    n = 0
    try:
        with xopen(path, "rb", threads=0) as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
                n += len(chunk)
    except (OSError, EOFError, ValueError) as exc:
        raise InputError(f"{path}: cannot decompress: {exc}") from None
    return h.hexdigest(), n


def file_entry(path: Path, decompressed: bool) -> dict[str, object]:
    entry: dict[str, object] = {
        "path": str(Path(path).resolve()),
        "bytes": path.stat().st_size,
        "sha256": sha256_file(str(path)),
    }
    if decompressed:
        entry["decompressed_sha256"], entry["decompressed_bytes"] = decompressed_sha256(path)
    return entry


def restored_digests(
    cram: Path, recipe: Recipe, *, cache: Path | None, threads: int = 0
) -> list[tuple[str, int]]:
    """sha256/length of each FASTQ file that the restore gives back from `cram` (streamed, the
    very decoding path `restore` uses: fastq_decode)."""
    digests = [hashlib.sha256() for _ in recipe.files]
    sizes = [0 for _ in recipe.files]

    def sink(i: int) -> Callable[[bytes | memoryview], None]:
        def take(data: bytes | memoryview) -> None:
            digests[i].update(data)
            sizes[i] += len(data)

        return take

    decode_cram(
        cram, recipe, [[sink(i)] for i in range(len(recipe.files))], cache=cache, threads=threads
    )
    return [(d.hexdigest(), n) for d, n in zip(digests, sizes, strict=True)]


def prove_fastq(
    inputs: list[Path],
    cram: Path,
    recipe: Recipe,
    *,
    threads: int = 0,
    originals: list[dict[str, object]] | None = None,
) -> dict[str, Any]:
    """Prove that `cram` restores every FASTQ in `inputs` byte for byte; raise if not.

    `originals`: the inputs' entries (`file_entry`) if the caller hashed them while converting."""
    with ThreadPoolExecutor(max_workers=len(inputs) + 1) as pool:
        orig = [pool.submit(file_entry, p, True) for p in inputs] if originals is None else []
        out_entry = pool.submit(file_entry, cram, False)
        restored = restored_digests(cram, recipe, cache=None, threads=threads)
        entries = originals if originals is not None else [f.result() for f in orig]
        output = out_entry.result()
    checks = []
    for i, (path, entry, (digest, n)) in enumerate(zip(inputs, entries, restored, strict=True)):
        ok = digest == entry["decompressed_sha256"]
        checks.append({"file": str(path), "restored_sha256": digest, "bytes": n, "ok": ok})
        if not ok:
            with tempfile.TemporaryDirectory(prefix="wgsvault-diag-") as d:
                where = _diagnose(path, cram, recipe, Path(d), i)
            raise InputError(
                f"{path}: the CRAM would not give this FASTQ back byte for byte: {where}; "
                "nothing was written"
            )
    return {
        "format": PROOF_FORMAT,
        "kind": "fastq->cram",
        "ok": True,
        "inputs": entries,
        "output": output,
        "recipe": recipe.to_dict(),
        "checks": {"restore_sha256": checks, "decode_with_registry": True},
        "tools": htslib.versions(),
        "reference": None,
    }


def _diagnose(original: Path, cram: Path, recipe: Recipe, d: Path, index: int) -> str:
    paths = [d / f"r{i}.fq" for i in range(len(recipe.files))]
    files = [open(p, "wb") for p in paths]  # noqa: SIM115 - closed below
    try:
        decode_cram(cram, recipe, [[f.write] for f in files], cache=None)
    finally:
        for f in files:
            f.close()
    return diagnose(original, paths[index])


def record_checksums(path: Path, *, cache: Path | None, threads: int = 0) -> dict[str, str]:
    """The order-independent record checksums of an alignment file (the `all` row)."""
    proc = htslib.run(
        ["checksum", *CHECKSUM_ARGS, str(path)],
        cache=cache,
        what=f"{path}: full decode (samtools checksum)",
        stdout=subprocess.PIPE,
        threads=threads,
    )
    return parse_checksum(proc.stdout.decode())


def parse_checksum(text: str) -> dict[str, str]:
    header: list[str] = []
    for line in text.splitlines():
        if line.startswith("# Group"):
            header = line[2:].split()
        elif line.startswith("all") and header:
            values = line.split()
            return dict(zip(header[2:], values[2:], strict=True))
    raise IntegrityError(f"unexpected samtools checksum output: {text[:200]!r}")


def prove_alignment(
    original: Path,
    new: Path,
    *,
    registry: Registry,
    build: str | None = None,
    threads: int = 0,
    original_sums: Future[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Compare record checksums of `original` and `new` (decoded with the registry only).

    `original_sums` lets a caller compute the original's checksums while it converts. File
    digests are computed only once the records are proven equal."""
    htslib.check_magic(original, "bam", "cram", "sam")
    htslib.check_magic(new, "cram", "bam")
    with ThreadPoolExecutor(max_workers=2) as pool:
        a = original_sums or pool.submit(
            record_checksums, original, cache=registry.cache, threads=threads
        )
        b = pool.submit(record_checksums, new, cache=registry.cache, threads=max(threads, 1))
        ca = a.result()
        try:
            cb = b.result()
            decode_error = None
        except IntegrityError as exc:
            cb, decode_error = {}, str(exc)
    if decode_error is None and ca == cb:
        with ThreadPoolExecutor(max_workers=2) as pool:
            entries = list(pool.map(lambda p: file_entry(p, False), (original, new)))
    else:
        entries = [{"path": str(Path(p).resolve())} for p in (original, new)]
    failure = None
    if decode_error:
        failure = decode_error
    elif ca != cb:
        cols = [k for k in ca if ca[k] != cb.get(k)]
        first = first_difference(original, new, cache=registry.cache)
        failure = f"record checksums differ ({', '.join(cols)}); {first}"
    sq = read_header_sq(new)
    ref = registry.get(build) if build else None
    return {
        "format": PROOF_FORMAT,
        "kind": "alignment->cram",
        "ok": failure is None,
        "failure": failure,
        "inputs": [entries[0]],
        "output": entries[1],
        "checks": {
            "record_checksums": {"original": ca, "converted": cb, "equal": ca == cb},
            "decode_with_registry": decode_error is None,
        },
        "tools": htslib.versions(),
        "reference": {
            "build": ref.name if ref else None,
            "sequences": [{"name": s["SN"], "M5": s.get("M5"), "LN": s["LN"]} for s in sq],
            "refget": {s.name: s.refget for s in ref.sequences} if ref else {},
        },
    }


def _comparable(rec: pysam.AlignedSegment) -> tuple[object, ...]:
    fields = rec.to_string().split("\t")
    if rec.is_unmapped:  # CRAM keeps no CIGAR/MAPQ for unmapped reads (as `checksum -z all`)
        fields[4], fields[5] = "0", "*"
    return (*fields[:11], tuple(sorted(rec.get_tags(with_value_type=True))))


def first_difference(original: Path, new: Path, *, cache: Path | None) -> str:
    """The first record, in file order, where `new` differs from `original` (diagnosis only)."""
    level = pysam.set_verbosity(0)
    try:
        with (
            htslib.reference_env(cache),
            pysam.AlignmentFile(str(original), check_sq=False) as a,
            pysam.AlignmentFile(str(new), check_sq=False) as b,
        ):
            i = 0
            for i, (x, y) in enumerate(
                itertools.zip_longest(a.fetch(until_eof=True), b.fetch(until_eof=True)), 1
            ):
                if x is None or y is None:
                    which = new if x is not None else original
                    return f"record {i}: {which} ends early"
                if _comparable(x) != _comparable(y):
                    fields = [
                        n
                        for n, p, q in zip(_FIELDS, _comparable(x), _comparable(y), strict=True)
                        if p != q
                    ]
                    return f"first differing record {i} ({x.query_name}): {', '.join(fields)}"
            return f"all {i:,} records equal in order; checksums differ in sanitised fields"
    except (OSError, ValueError) as exc:
        return f"cannot compare records: {exc}"
    finally:
        pysam.set_verbosity(level)


_FIELDS = (
    "name",
    "flag",
    "rname",
    "pos",
    "mapq",
    "cigar",
    "rnext",
    "pnext",
    "tlen",
    "seq",
    "qual",
    "aux",
)


def verify(originals: list[Path], new: Path, *, registry: Registry) -> dict[str, Any]:
    """`wgsvault verify ORIGINAL... NEW`: the proof for a FASTQ or alignment source."""
    for p in [*originals, new]:
        if not Path(p).is_file():
            raise InputError(f"{p}: no such file")
    kinds = {classify(Path(p).name) for p in originals}
    if kinds == {FileType.FASTQ}:
        fmt = read_recipe(new)
        if fmt is None:
            raise InputError(f"{new}: no wgsvault FASTQ recipe in its header (not from convert)")
        if len(originals) != len(fmt.files):
            raise InputError(
                f"{new}: holds {fmt.layout} reads from {len(fmt.files)} FASTQ file(s), "
                f"not {len(originals)}"
            )
        try:
            return prove_fastq(list(originals), new, fmt)
        except InputError as exc:
            return _failed("fastq->cram", str(exc))
        except IntegrityError as exc:
            return _failed("fastq->cram", str(exc))
    if len(originals) != 1:
        raise InputError("verify: give one alignment file (BAM/CRAM) or a FASTQ file or pair")
    return prove_alignment(Path(originals[0]), new, registry=registry)


def _failed(kind: str, reason: str) -> dict[str, Any]:
    return {"format": PROOF_FORMAT, "kind": kind, "ok": False, "failure": reason}
