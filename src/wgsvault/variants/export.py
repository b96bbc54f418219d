"""Export: the frequency database as a sites-only VCF that annotation tools read.

One record per allele (multi-allelic sites stay split, as stored), in the reference's contig
order and by position, with no samples. INFO carries `AC`, `AN`, `AF`, `nhomalt` and `nhemi`
in total, and the same five per stratum as `AC_<id>` and so on, where `<id>` is the stratum's
column id: its name with every character outside `[A-Za-z0-9]` as `_` (`group:rare disease` ->
`AC_group_rare_disease`; state.stratum_id); each ##INFO line names the stratum it counts. A
stratum's fields are absent on a record where its AN is 0. The header names the format, the
reference build, the store or release, the number of genomes and the wgsvault version.

The text is written to a temporary name, compressed with BGZF and indexed with tabix (pysam's
htslib), and the `.tbi` and the VCF land together: an interrupted export leaves nothing.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Any

import duckdb
import pysam

import wgsvault
from wgsvault.errors import InputError
from wgsvault.fsutil import land
from wgsvault.variants.state import connect, data_dir, partition, read_state

FIELDS = (
    ("AC", "A", "Integer", "Alternate allele count"),
    ("AN", "1", "Integer", "Total number of alleles in called genotypes"),
    ("AF", "A", "Float", "Alternate allele frequency"),
    ("nhomalt", "A", "Integer", "Number of homozygous alternate carriers"),
    ("nhemi", "A", "Integer", "Number of hemizygous alternate carriers"),
)
_BATCH = 50_000


def export(store: Path, out: Path) -> int:
    """Write the store (or release) `store` as a bgzipped, tabix-indexed sites-only VCF `out`;
    the number of records."""
    state = read_state(store)
    if state is None:
        raise InputError(f"{store}: no frequency database here; run: wgsvault variants build")
    if not out.name.endswith(".vcf.gz"):
        raise InputError(f"{out}: the export is a bgzipped VCF; name it *.vcf.gz")
    data = data_dir(store, state)
    contigs: dict[str, int] = state.get("contigs", {})
    files = [p for c in contigs if (p := partition(data, "alleles", c)).exists()]
    names: dict[str, str] = dict(state.get("strata", {}))  # column id -> stratum
    con = connect()
    try:
        ids = {names.get(i, i): i for f in files for i in _strata(con, f)}
        ids = dict(sorted(ids.items()))
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp.vcf", dir=out.parent)
        text = Path(name)
        gz, tbi = Path(f"{text}.gz"), Path(f"{text}.gz.tbi")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                _header(fh, state, store, contigs, ids)
                n = sum(_records(con, f, fh) for f in files)
            pysam.tabix_index(str(text), preset="vcf", force=True, keep_original=False)
            land([(tbi, Path(f"{out}.tbi")), (gz, out)])
        finally:
            for p in (text, gz, tbi):
                p.unlink(missing_ok=True)
    finally:
        con.close()
    return n


def _strata(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """The stratum ids with columns in one allele partition."""
    cols = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    return [c[0][3:] for c in cols if c[0].startswith("ac_")]


def _header(
    fh: IO[str],
    state: dict[str, Any],
    store: Path,
    contigs: dict[str, int],
    ids: dict[str, str],
) -> None:
    fh.write("##fileformat=VCFv4.3\n")
    fh.write(f"##source=wgsvault-{wgsvault.__version__} variants export\n")
    fh.write(f"##reference={state.get('build')}\n")
    fh.write(
        f"##wgsvault_variants=<format={state.get('format')},release={state.get('release')},"
        f"genomes={len(state.get('members', {}))},assembly={state.get('assembly')}>\n"
    )
    for contig, length in contigs.items():
        fh.write(f"##contig=<ID={contig},length={length}>\n")
    for key, number, kind, text in FIELDS:
        fh.write(f'##INFO=<ID={key},Number={number},Type={kind},Description="{text}">\n')
    for stratum, sid in ids.items():
        label = stratum.replace('"', "'").replace("\\", "/")
        for key, number, kind, text in FIELDS:
            fh.write(
                f"##INFO=<ID={key}_{sid},Number={number},Type={kind},"
                f'Description="{text} in stratum {label}">\n'
            )
    fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")


def _records(con: duckdb.DuckDBPyConnection, path: Path, fh: IO[str]) -> int:
    ids = _strata(con, path)
    cols = ", ".join(f"{f}_{i}" for i in ids for f in ("ac", "an", "nhomalt", "nhemi"))
    cur = con.execute(
        f"SELECT chrom, pos, ref, alt, ac, an, nhomalt, nhemi{', ' * bool(cols)}{cols} "
        "FROM read_parquet(?) ORDER BY pos, ref, alt",
        [str(path)],
    )
    n = 0
    while rows := cur.fetchmany(_BATCH):
        lines = []
        for row in rows:
            info = [_cell("", *row[4:8])]
            for k, sid in enumerate(ids):
                ac, an, hom, hemi = row[8 + 4 * k : 12 + 4 * k]
                if an > 0:
                    info.append(_cell(f"_{sid}", ac, an, hom, hemi))
            lines.append(f"{row[0]}\t{row[1]}\t.\t{row[2]}\t{row[3]}\t.\t.\t{';'.join(info)}\n")
        fh.write("".join(lines))
        n += len(rows)
    return n


def _cell(suffix: str, ac: int, an: int, hom: int, hemi: int) -> str:
    af = f"{ac / an:.6g}" if an else "."
    return (
        f"AC{suffix}={ac};AN{suffix}={an};AF{suffix}={af};"
        f"nhomalt{suffix}={hom};nhemi{suffix}={hemi}"
    )
