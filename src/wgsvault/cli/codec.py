"""Command line of the codec layer: ref, convert, verify, verify-covers, restore.

Parsing and printing only; the work is in `wgsvault.codec`.
Every command exits 0 on success and non-zero on any failed check (4 for a failed proof).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from wgsvault import audit
from wgsvault.cli.common import CODEC, open_selected, out, progress
from wgsvault.codec.convert import Converted
from wgsvault.codec.refs import Registry
from wgsvault.errors import IntegrityError
from wgsvault.report import render

app = typer.Typer()
ref_app = typer.Typer(help="Reference genome registry (REF_CACHE, M5 and refget digests).")
convert_app = typer.Typer(help="Lossless conversion to CRAM 3.1 (proven before it lands).")
app.add_typer(ref_app, name="ref", rich_help_panel=CODEC)
app.add_typer(convert_app, name="convert", rich_help_panel=CODEC)
#: proof and restore commands come after `ref` and `convert` in the help, as in the data flow
tools = typer.Typer()
app.add_typer(tools)

Threads = Annotated[int, typer.Option("--threads", "-@", help="Extra htslib threads")]
Profile = Annotated[
    str, typer.Option("--profile", help="CRAM 3.1 profile: fast, normal, small, archive")
]


def _registry() -> Registry:
    return Registry(open_selected())


@ref_app.command("add")
def ref_add(
    fasta: Annotated[Path, typer.Argument(help="FASTA file (plain or gzip)")],
    build: Annotated[str, typer.Option("--build", help="Build name, e.g. GRCh38")],
    description: Annotated[str | None, typer.Option(help="Free text")] = None,
) -> None:
    """Register a reference build: per-sequence M5 and refget digests, REF_CACHE copy."""
    b = _registry().add(fasta, build, description)
    out.print(f"{b.name}: {len(b.sequences)} sequences, {b.length:,} bp; FASTA copy {b.fasta}")


@ref_app.command("list")
def ref_list(
    sequences: Annotated[bool, typer.Option("--sequences", help="List every sequence")] = False,
) -> None:
    """List registered builds (and their sequences with digests)."""
    t = Table()
    cols = (
        ("build", "sequence", "length", "M5", "refget")
        if sequences
        else ("build", "sequences", "bp")
    )
    for c in cols:
        t.add_column(c)
    for b in _registry().builds():
        if sequences:
            for s in b.sequences:
                t.add_row(b.name, s.name, f"{s.length:,}", s.md5, s.refget)
        else:
            t.add_row(b.name, str(len(b.sequences)), f"{b.length:,}")
    out.print(t)


@ref_app.command("check")
def ref_check(files: Annotated[list[Path], typer.Argument(help="SAM/BAM/CRAM files")]) -> None:
    """List every @SQ whose M5 the registry lacks; non-zero exit if any."""
    reg = _registry()
    missing = 0
    for f in files:
        problems = reg.check_file(f)
        missing += len(problems)
        for name, why in problems:
            out.print(f"{f}\t{name}\t{why}", highlight=False)
        if not problems:
            out.print(f"{f}: every reference sequence is in the registry", highlight=False)
    if missing:
        raise IntegrityError(f"{missing} reference sequence(s) missing from the registry")


def _print_proof(proof: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(proof, indent=1))
        return
    if proof.get("ok"):
        kind = proof.get("kind")
        outp = proof.get("output", {})
        out.print(f"proof ok ({kind}): {outp.get('path', '')} sha256 {outp.get('sha256', '')}")
    else:
        out.print(f"proof FAILED: {proof.get('failure')}", highlight=False)


@convert_app.command("fastq")
def convert_fastq_cmd(
    r1: Annotated[Path, typer.Argument(help="FASTQ (R1, or single-end)")],
    r2: Annotated[Path | None, typer.Argument(help="FASTQ R2")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .cram")] = Path(),
    profile: Profile = "small",
    threads: Threads = 0,
    interleaved: Annotated[
        bool, typer.Option("--interleaved", help="R1 holds pairs, mates one after the other")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the proof JSON")] = False,
) -> None:
    """FASTQ -> unaligned CRAM 3.1 that restores the FASTQ byte for byte (proven).

    Any header comment, name convention, '+' line, base letter and line end is kept; the
    restore gives back the same file(s), an interleaved file as one file."""
    from wgsvault.codec.convert import convert_fastq

    _need_output(output)
    res = convert_fastq(r1, r2, output, profile=profile, threads=threads, interleaved=interleaved)
    _done(res, as_json)


@convert_app.command("bam")
def convert_bam_cmd(
    bam: Annotated[Path, typer.Argument(help="BAM to convert")],
    ref: Annotated[str, typer.Option("--ref", help="Registered reference build")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .cram")] = Path(),
    profile: Profile = "small",
    threads: Threads = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the proof JSON")] = False,
) -> None:
    """BAM -> CRAM 3.1 against a registered build, every record kept (proven)."""
    from wgsvault.codec.convert import convert_bam

    _need_output(output)
    res = convert_bam(
        bam, output, registry=_registry(), build=ref, profile=profile, threads=threads
    )
    _done(res, as_json)


def _need_output(output: Path) -> None:
    if output == Path():
        raise typer.BadParameter("give the output CRAM with -o/--output")


def _done(res: Converted, as_json: bool) -> None:
    if as_json:
        print(json.dumps(res.proof, indent=1))
        return
    p = res.proof
    src = sum(int(i["bytes"]) for i in p["inputs"])
    dst = int(p["output"]["bytes"])
    out.print(
        f"{res.output}: {render.human(dst)} from {render.human(src)} "
        f"({dst / src:.1%}); converted in {res.seconds_convert:.1f} s, "
        f"proven in {res.seconds_verify:.1f} s; proof {res.output}.proof.json"
    )


@tools.command(rich_help_panel=CODEC)
def verify(
    files: Annotated[list[Path], typer.Argument(help="ORIGINAL... NEW (FASTQ [R2] or BAM/CRAM)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the proof JSON")] = False,
) -> None:
    """Prove NEW holds ORIGINAL losslessly (record checksums, restore hash, full decode)."""
    from wgsvault.codec.verify import verify as run_verify

    if len(files) < 2:
        raise typer.BadParameter("give ORIGINAL... NEW")
    proof = run_verify(files[:-1], files[-1], registry=_registry())
    _print_proof(proof, as_json)
    if not proof["ok"]:
        raise typer.Exit(IntegrityError.exit_code)


@tools.command("verify-covers", rich_help_panel=CODEC)
def verify_covers_cmd(
    files: Annotated[list[Path], typer.Argument(help="FASTQ [FASTQ_R2] CRAM")],
    sidecar: Annotated[
        Path | None, typer.Option("--sidecar", help="Write the restore sidecar here if covered")
    ] = None,
    keep_order: Annotated[
        bool, typer.Option("--keep-order", help="Sidecar also keeps the original record order")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report JSON")] = False,
) -> None:
    """Prove every FASTQ record is in the aligned CRAM (name, sequence, qualities)."""
    from wgsvault.codec.covers import verify_covers
    from wgsvault.codec.htslib import reference_env

    if len(files) < 2:
        raise typer.BadParameter("give FASTQ... CRAM")
    reg = _registry()
    with reference_env(reg.cache):
        rep = verify_covers(files[:-1], files[-1], sidecar=sidecar, keep_order=keep_order)
    d = rep.to_dict()
    if as_json:
        print(json.dumps(d, indent=1, default=str))
    else:
        verdict = "covered" if rep.covered else "NOT covered"
        out.print(f"{files[-1]}: {verdict}: {rep.reason}", highlight=False)
        for k in ("fastq_records", "matched", "missing", "altered", "extra"):
            if k in d:
                out.print(f"  {k}: {d[k]:,}")
        if rep.covered and sidecar:
            out.print(f"  sidecar: {sidecar} ({d.get('sidecar_bytes', 0):,} bytes)")
    if not rep.covered:
        raise typer.Exit(IntegrityError.exit_code)


@tools.command(rich_help_panel=CODEC)
def restore(
    cram: Annotated[Path, typer.Argument(help="CRAM to restore from")],
    to: Annotated[str, typer.Option("--to", help="fastq or bam")],
    output: Annotated[Path, typer.Option("--output", "-o", help="FASTQ prefix or BAM file")],
    sidecar: Annotated[
        Path | None, typer.Option("--sidecar", help="Sidecar of an aligned CRAM (FASTQ restore)")
    ] = None,
    keep_order: Annotated[
        bool, typer.Option("--keep-order", help="Original record order (sidecar must keep it)")
    ] = False,
    gzip: Annotated[bool, typer.Option("--gzip/--no-gzip", help="Compress FASTQ")] = True,
    threads: Annotated[
        int | None, typer.Option("--threads", "-@", help="Extra threads (default: all cores)")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Who restores (default user@host)")] = None,
) -> None:
    """Stream the original back from a CRAM (FASTQ as PREFIX_R1/_R2.fastq[.gz], or BAM)."""
    from wgsvault.codec.restore import restore as run_restore

    reg = _registry()
    with progress(True) as bar:
        task = bar.add_task("restore", total=None, extra="")

        def cb(n: int) -> None:
            bar.update(task, completed=n, extra=render.human(n))

        outs = run_restore(
            cram,
            to,
            output,
            registry=reg,
            gz=gzip,
            sidecar=sidecar,
            keep_order=keep_order,
            progress=cb,
            threads=threads,
        )
    audit.record(
        reg.catalog,
        actor=actor or audit.default_actor(),
        event="restore",
        detail={
            "from": str(cram.resolve()),
            "to": to,
            "outputs": [{"path": str(o.resolve()), "size": o.stat().st_size} for o in outs],
        },
    )
    for o in outs:
        out.print(f"{o}\t{render.human(o.stat().st_size)}", highlight=False)
