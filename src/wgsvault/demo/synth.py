"""Small but valid genome files, generated deterministically: the project's own test and demo data.

A genome here is what a regional production flow leaves behind for one sample, in miniature:

* an Illumina run folder (RunInfo.xml, RTAComplete.txt, one gzip'd BCL per cycle and a `.filter`
  file, in the MiSeq/HiSeq layout `Data/Intensities/BaseCalls/L001/C<cycle>.1/s_1_1101.bcl.gz`)
  whose base calls are exactly the reads of the FASTQ files;
* paired FASTQ.gz with Illumina read names and CASAVA 1.8 comments (`1:N:0:<i7>+<i5>`);
* the reads "aligned" to a reference: a coordinate-sorted, indexed BAM (read group, `@SQ M5`,
  proper pairs with mate fields, NM/MD, a few unmapped pairs) written like bwa would (comments
  dropped), and the same records as an indexed CRAM against the reference;
* a VCF and a gVCF (reference blocks with `<NON_REF>`) of the simulated SNPs, bgzip'd and tabix'd.

Reads are sampled from a diploid genome built by putting SNPs (heterozygous or homozygous) on the
reference, with Illumina-like binned qualities (2/12/23/37) and sequencing errors where quality is
low. Everything derives from `seed`, and gzip headers carry no time stamp, so the same call gives
the same bytes. The reads align by construction (no aligner is run): positions are known.
"""

from __future__ import annotations

import gzip
import hashlib
import random
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import dnaio
import pysam

COMPLEMENT = str.maketrans("ACGTN", "TGCAN")
BASES = "ACGT"
#: NovaSeq-style binned qualities and their weights (most calls are Q37)
QUALS = (37, 23, 12, 2)
QUAL_WEIGHTS = (0.86, 0.09, 0.04, 0.01)
INSTRUMENT = "A00531"


@dataclass(frozen=True)
class GenomeFiles:
    """Paths of one synthetic genome's files (each index lies beside its data file)."""

    genome_id: str
    reference: Path
    fastq_r1: Path
    fastq_r2: Path
    bam: Path
    cram: Path
    vcf: Path
    gvcf: Path
    run_folder: Path
    n_pairs: int


@dataclass(frozen=True)
class _Read:
    name: str  # without comment
    seq: str  # as sequenced (5'->3' of the read)
    qual: str
    ref_start: int  # leftmost reference position of the read (0-based), -1 if unmapped
    reverse: bool


def revcomp(seq: str) -> str:
    return seq.translate(COMPLEMENT)[::-1]


def write_reference(path: Path, *, seed: int, length: int = 40_000, name: str = "chrS") -> Path:
    """Write a random reference sequence as FASTA (60 columns) with its .fai; returns `path`."""
    rng = random.Random(seed)
    seq = "".join(rng.choices(BASES, weights=(0.3, 0.2, 0.2, 0.3), k=length))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f">{name}"] + [seq[i : i + 60] for i in range(0, length, 60)]
    path.write_text("\n".join(lines) + "\n")
    pysam.faidx(str(path))
    return path


def _read_reference(reference: Path) -> tuple[str, str]:
    with pysam.FastaFile(str(reference)) as fa:
        name = fa.references[0]
        return name, fa.fetch(name).upper()


def _snps(rng: random.Random, ref: str) -> dict[int, tuple[str, str]]:
    """Position -> (alt base, genotype '0/1' or '1/1'), about one SNP per 400 bp."""
    out = {}
    for pos in sorted(rng.sample(range(200, len(ref) - 200), k=max(1, len(ref) // 400))):
        alt = rng.choice([b for b in BASES if b != ref[pos]])
        out[pos] = (alt, "1/1" if rng.random() < 0.35 else "0/1")
    return out


def _haplotypes(ref: str, snps: dict[int, tuple[str, str]]) -> tuple[str, str]:
    h1, h2 = list(ref), list(ref)
    for pos, (alt, gt) in snps.items():
        h2[pos] = alt
        if gt == "1/1":
            h1[pos] = alt
    return "".join(h1), "".join(h2)


def _sequenced(rng: random.Random, template: str) -> tuple[str, str]:
    """Sequence `template` with binned qualities; low-quality calls are sometimes wrong."""
    quals = rng.choices(QUALS, weights=QUAL_WEIGHTS, k=len(template))
    bases = []
    for base, q in zip(template, quals, strict=True):
        if q == 2:
            base = "N"
        elif q <= 12 and rng.random() < 0.2:
            base = rng.choice([b for b in BASES if b != base])
        bases.append(base)
    return "".join(bases), "".join(chr(q + 33) for q in quals)


def _simulate_pairs(
    rng: random.Random, ref: str, snps: dict[int, tuple[str, str]], n_pairs: int, read_length: int
) -> list[tuple[_Read, _Read]]:
    haps = _haplotypes(ref, snps)
    run = 1 + rng.randrange(999)
    ys = sorted(rng.sample(range(1000, 36000), n_pairs))
    pairs = []
    for i in range(n_pairs):
        name = f"{INSTRUMENT}:{run}:{{fc}}:1:1101:{rng.randrange(1000, 32000)}:{ys[i]}"
        if i % 97 == 13:  # an unmapped pair: adapter/contaminant sequence
            t1 = "".join(rng.choices(BASES, k=read_length))
            t2 = "".join(rng.choices(BASES, k=read_length))
            s1, q1 = _sequenced(rng, t1)
            s2, q2 = _sequenced(rng, t2)
            pairs.append((_Read(name, s1, q1, -1, False), _Read(name, s2, q2, -1, False)))
            continue
        frag_len = max(read_length, int(rng.gauss(350, 50)))
        start = rng.randrange(0, len(ref) - frag_len)
        frag = rng.choice(haps)[start : start + frag_len]
        left, right = frag[:read_length], revcomp(frag[-read_length:])
        s_left, q_left = _sequenced(rng, left)
        s_right, q_right = _sequenced(rng, right)
        r_left = _Read(name, s_left, q_left, start, False)
        r_right = _Read(name, s_right, q_right, start + frag_len - read_length, True)
        pairs.append((r_left, r_right) if rng.random() < 0.5 else (r_right, r_left))
    return pairs


def _write_fastq(path: Path, reads: list[_Read], comment: str, flowcell: str) -> None:
    # gzip without a time stamp, so that the same seed gives the same bytes
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0, filename="") as gz,
        dnaio.open(cast(BinaryIO, gz), mode="w", fileformat="fastq") as out,
    ):
        for r in reads:
            out.write(
                dnaio.SequenceRecord(f"{r.name.format(fc=flowcell)} {comment}", r.seq, r.qual)
            )


def _md_nm(read_seq: str, ref_seg: str) -> tuple[str, int]:
    md, run, nm = [], 0, 0
    for a, b in zip(read_seq, ref_seg, strict=True):
        if a == b:
            run += 1
        else:
            md.append(f"{run}{b}")
            run, nm = 0, nm + 1
    md.append(str(run))
    return "".join(md), nm


def _header(ref_name: str, ref: str, genome_id: str, flowcell: str) -> dict[str, Any]:
    return {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": ref_name, "LN": len(ref), "M5": hashlib.md5(ref.encode()).hexdigest()}],
        "RG": [
            {
                "ID": f"{flowcell}.1",
                "SM": genome_id,
                "LB": f"{genome_id}-lib1",
                "PL": "ILLUMINA",
                "PU": f"{flowcell}.1",
            }
        ],
        "PG": [{"ID": "wgsvault-synth", "PN": "wgsvault-synth", "VN": "1"}],
    }


def _alignments(
    pairs: list[tuple[_Read, _Read]],
    ref: str,
    header: pysam.AlignmentHeader,
    flowcell: str,
) -> list[pysam.AlignedSegment]:
    rg = f"{flowcell}.1"
    records = []
    for r1, r2 in pairs:
        for read, mate, flag_rn in ((r1, r2, 0x40), (r2, r1, 0x80)):
            a = pysam.AlignedSegment(header)
            a.query_name = read.name.format(fc=flowcell)
            seq, qual = (
                (revcomp(read.seq), read.qual[::-1]) if read.reverse else (read.seq, read.qual)
            )
            flag = 0x1 | flag_rn
            if read.ref_start < 0:
                flag |= 0x4 | 0x8
                a.reference_id = -1
                a.reference_start = -1
                a.next_reference_id = -1
                a.next_reference_start = -1
                a.mapping_quality = 0
            else:
                flag |= 0x2 | (0x10 if read.reverse else 0) | (0x20 if mate.reverse else 0)
                a.reference_id = 0
                a.reference_start = read.ref_start
                a.mapping_quality = 60
                a.cigarstring = f"{len(seq)}M"
                a.next_reference_id = 0
                a.next_reference_start = mate.ref_start
                left = min(read.ref_start, mate.ref_start)
                right = max(read.ref_start, mate.ref_start) + len(seq)
                a.template_length = (right - left) * (1 if read.ref_start <= mate.ref_start else -1)
            a.flag = flag
            a.query_sequence = seq
            a.query_qualities = pysam.qualitystring_to_array(qual)
            tags: list[tuple[str, object]] = []
            if read.ref_start >= 0:
                md, nm = _md_nm(seq, ref[read.ref_start : read.ref_start + len(seq)])
                tags += [("NM", nm), ("MD", md)]
            tags += [("RG", rg)]
            a.set_tags(tags)
            records.append(a)
    mapped = [a for a in records if not a.is_unmapped]
    unmapped = [a for a in records if a.is_unmapped]
    mapped.sort(key=lambda a: (a.reference_start, a.query_name, a.flag))
    return mapped + unmapped


def _write_alignments(
    path: Path,
    mode: str,
    header: dict[str, Any],
    records: list[pysam.AlignedSegment],
    reference: Path | None,
) -> None:
    ref = str(reference) if reference else None
    with pysam.AlignmentFile(str(path), mode, header=header, reference_filename=ref) as out:
        for a in records:
            out.write(a)
    pysam.index(str(path))


def _write_vcfs(
    outdir: Path, genome_id: str, ref_name: str, ref: str, snps: dict[int, tuple[str, str]]
) -> tuple[Path, Path]:
    meta = [
        "##fileformat=VCFv4.2",
        f"##contig=<ID={ref_name},length={len(ref)}>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
    ]
    cols = f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{genome_id}"
    vcf_lines, gvcf_lines = [], []
    prev_end = 0  # 0-based exclusive end of what the gVCF has covered
    for pos, (alt, gt) in snps.items():
        vcf_lines.append(
            f"{ref_name}\t{pos + 1}\t.\t{ref[pos]}\t{alt}\t60\tPASS\t.\tGT:DP\t{gt}:30"
        )
        if pos > prev_end:
            gvcf_lines.append(
                f"{ref_name}\t{prev_end + 1}\t.\t{ref[prev_end]}\t<NON_REF>\t.\t.\t"
                f"END={pos}\tGT:DP:GQ\t0/0:30:99"
            )
        gvcf_lines.append(
            f"{ref_name}\t{pos + 1}\t.\t{ref[pos]}\t{alt},<NON_REF>\t60\t.\t.\tGT:DP:GQ\t{gt}:30:99"
        )
        prev_end = pos + 1
    if prev_end < len(ref):
        gvcf_lines.append(
            f"{ref_name}\t{prev_end + 1}\t.\t{ref[prev_end]}\t<NON_REF>\t.\t.\t"
            f"END={len(ref)}\tGT:DP:GQ\t0/0:30:99"
        )
    out = []
    for name, extra, lines in (
        (f"{genome_id}.vcf", [], vcf_lines),
        (
            f"{genome_id}.g.vcf",
            [
                '##INFO=<ID=END,Number=1,Type=Integer,Description="End of reference block">',
                '##ALT=<ID=NON_REF,Description="Any other allele">',
                '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">',
            ],
            gvcf_lines,
        ),
    ):
        plain = outdir / name
        plain.write_text("\n".join(meta + extra + [cols] + lines) + "\n")
        out.append(Path(pysam.tabix_index(str(plain), preset="vcf", force=True)))
    return out[0], out[1]


def _write_run_folder(
    run_dir: Path,
    pairs: list[tuple[_Read, _Read]],
    index: tuple[str, str],
    flowcell: str,
    read_length: int,
) -> None:
    """BCL files whose calls are the FASTQ reads: cycles R1, i7, i5, R2 of one tile."""
    basecalls = run_dir / "Data" / "Intensities" / "BaseCalls" / "L001"
    basecalls.mkdir(parents=True, exist_ok=True)
    n = len(pairs)
    cycles = (
        [r1.seq for r1, _ in pairs],
        [index[0]] * n,
        [index[1]] * n,
        [r2.seq for _, r2 in pairs],
    )
    quals = [r1.qual for r1, _ in pairs], ["F" * 8] * n, ["F" * 8] * n, [r2.qual for _, r2 in pairs]
    code = {"A": 0, "C": 1, "G": 2, "T": 3}
    cycle = 0
    for seqs, qs in zip(cycles, quals, strict=True):
        for i in range(len(seqs[0])):
            cycle += 1
            calls = bytearray(struct.pack("<I", n))
            for s, q in zip(seqs, qs, strict=True):
                b = s[i]
                calls.append(0 if b == "N" else (min(ord(q[i]) - 33, 63) << 2) | code[b])
            d = basecalls / f"C{cycle}.1"
            d.mkdir(exist_ok=True)
            (d / "s_1_1101.bcl.gz").write_bytes(gzip.compress(bytes(calls), mtime=0))
    (basecalls / "s_1_1101.filter").write_bytes(struct.pack("<III", 0, 3, n) + b"\x01" * n)
    reads_xml = "".join(
        f'      <Read Number="{i + 1}" NumCycles="{c}" IsIndexedRead="{idx}"/>\n'
        for i, (c, idx) in enumerate(((read_length, "N"), (8, "Y"), (8, "Y"), (read_length, "N")))
    )
    run_id = run_dir.name
    (run_dir / "RunInfo.xml").write_text(
        '<?xml version="1.0"?>\n<RunInfo Version="5">\n'
        f'  <Run Id="{run_id}" Number="{run_id.split("_")[2]}">\n'
        f"    <Flowcell>{flowcell}</Flowcell>\n    <Instrument>{INSTRUMENT}</Instrument>\n"
        f"    <Reads>\n{reads_xml}    </Reads>\n"
        '    <FlowcellLayout LaneCount="1" SurfaceCount="1" SwathCount="1" TileCount="1"/>\n'
        "  </Run>\n</RunInfo>\n"
    )
    (run_dir / "RTAComplete.txt").write_text("RTA 3.4.4\n")


def write_genome(
    outdir: Path,
    genome_id: str,
    reference: Path,
    *,
    seed: int,
    n_pairs: int = 1500,
    read_length: int = 150,
    flowcell: str = "HKTLJDSXY",
) -> GenomeFiles:
    """Write one genome's production-flow files into `outdir` (created); see the module doc."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    ref_name, ref = _read_reference(reference)
    if len(ref) < 2 * read_length + 400:
        raise ValueError(f"{reference}: reference too short for {read_length} bp reads")
    snps = _snps(rng, ref)
    pairs = _simulate_pairs(rng, ref, snps, n_pairs, read_length)
    index = ("".join(rng.choices(BASES, k=8)), "".join(rng.choices(BASES, k=8)))
    comment = f"{{}}:N:0:{index[0]}+{index[1]}"

    r1_path = outdir / f"{genome_id}_R1.fastq.gz"
    r2_path = outdir / f"{genome_id}_R2.fastq.gz"
    _write_fastq(r1_path, [p[0] for p in pairs], comment.format(1), flowcell)
    _write_fastq(r2_path, [p[1] for p in pairs], comment.format(2), flowcell)

    header_dict = _header(ref_name, ref, genome_id, flowcell)
    header = pysam.AlignmentHeader.from_dict(header_dict)
    records = _alignments(pairs, ref, header, flowcell)
    bam = outdir / f"{genome_id}.bam"
    cram = outdir / f"{genome_id}.cram"
    _write_alignments(bam, "wb", header_dict, records, None)
    _write_alignments(cram, "wc", header_dict, records, Path(reference))

    vcf, gvcf = _write_vcfs(outdir, genome_id, ref_name, ref, snps)
    run_number = int(pairs[0][0].name.split(":")[1])
    run_dir = outdir / f"261101_{INSTRUMENT}_{run_number:04d}_A{flowcell}"
    _write_run_folder(run_dir, pairs, index, flowcell, read_length)
    return GenomeFiles(
        genome_id, Path(reference), r1_path, r2_path, bam, cram, vcf, gvcf, run_dir, n_pairs
    )
