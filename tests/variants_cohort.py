"""A synthetic cohort for the variant frequency tests: reference, VCF + gVCF per genome, truth.

Genotypes are drawn at random over a generated reference whose build is named like GRCh38 (so
the GRCh38 PARs apply): chr1 and chr2 (autosomes), chrX with sites in PAR1 and outside it (and
on both sides of its last base), chrY outside its PAR. Sexes are female, male and unknown;
males are written haploid outside the PARs, females have no chrY. Some genome x site pairs are
uncovered (a gap in the gVCF) or poorly called (GQ 10; callable regions come from
codec.callable_regions.extract): the VCF still carries their calls,
which must not be counted. Some sites are multi-allelic (a genome's record lists only the ALTs
it carries, some `1/2`); one kind of site is a deletion in a homopolymer written right-shifted,
which normalisation moves to the left. `truth()` is the brute-force count from what was drawn.
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pysam

CONTIGS = {"chr1": 30_000, "chr2": 12_000, "chrX": 2_784_000, "chrY": 2_783_500, "chrM": 400}
PAR_X_END = 2_781_479  # GRCh38 PAR1 of X and Y: 10,001-2,781,479
BUILD = "GRCh38-test"
GROUPS = ("rare disease", "oncology", "cardiology")
REGIONS = ("region-north", "region-south")


@dataclass
class Site:
    chrom: str
    pos: int  # of the record as written (1-based)
    ref: str
    alts: list[str]
    norm: tuple[int, str]  # normalised (pos, ref) of the first ALT; indel sites move left
    norm_alts: list[str]
    indel: bool = False


@dataclass
class Person:
    name: str
    sex: str
    group: str | None
    region: str | None
    gts: dict[int, tuple[int, ...]] = field(default_factory=dict)  # site index -> alleles
    state: dict[int, str] = field(default_factory=dict)  # site index -> ok | gap | lowq


def ploidy(sex: str, chrom: str, pos: int) -> int:
    if chrom == "chrM":
        return 0
    if chrom == "chrX":
        if sex == "female":
            return 2
        if sex == "male":
            return 2 if 10_001 <= pos <= PAR_X_END else 1
        return 0
    if chrom == "chrY":
        return 1 if sex == "male" and not 10_001 <= pos <= PAR_X_END else 0
    return 2


def _positions(rng: random.Random) -> list[tuple[str, int]]:
    out = [("chr1", p) for p in range(200, 29_500, 37)]
    out += [("chr2", p) for p in range(150, 11_800, 53)]
    out += [("chrX", p) for p in range(500, 9_800, 211)]  # before PAR1: haploid in males
    out += [("chrX", p) for p in range(10_050, 14_000, 61)]  # PAR1
    out += [("chrX", PAR_X_END - 30), ("chrX", PAR_X_END), ("chrX", PAR_X_END + 1)]
    out += [("chrX", p) for p in range(2_781_600, 2_783_800, 47)]
    out += [("chrY", p) for p in range(2_781_600, 2_783_300, 59)]
    return out


def make_reference(rng: random.Random) -> dict[str, bytearray]:
    return {c: bytearray(rng.choice(b"ACGT") for _ in range(n)) for c, n in CONTIGS.items()}


def write_fasta(seqs: dict[str, bytearray], path: Path) -> None:
    """The reference as FASTA (+ .fai), once the sites have shaped it."""
    with open(path, "wb") as fh:
        for name, seq in seqs.items():
            fh.write(b">" + name.encode() + b"\n")
            for i in range(0, len(seq), 60):
                fh.write(bytes(seq[i : i + 60]) + b"\n")
    pysam.faidx(str(path))


def make_sites(seqs: dict[str, bytearray], rng: random.Random) -> list[Site]:
    sites = []
    for chrom, pos in _positions(rng):
        seq = seqs[chrom]
        ref = chr(seq[pos - 1])
        kind = rng.random()
        if chrom == "chr1" and kind < 0.06 and pos + 6 < len(seq):
            # C A A A A G at pos..pos+5: deleting one A, written at its rightmost place
            seq[pos - 1 : pos + 5] = b"CAAAAG"
            sites.append(Site(chrom, pos + 3, "AA", ["A"], (pos, "CA"), ["C"], indel=True))
            continue
        others = [b for b in "ACGT" if b != ref]
        alts = rng.sample(others, 2) if kind < 0.2 else [rng.choice(others)]
        sites.append(Site(chrom, pos, ref, alts, (pos, ref), alts))
    return sites


def make_people(n: int, sites: list[Site], rng: random.Random) -> list[Person]:
    people = []
    for i in range(n):
        sex = ("female", "male", "unknown")[i % 3] if i < 6 else rng.choice(["female", "male"])
        group = rng.choice([*GROUPS, None]) if i % 7 else None
        person = Person(f"NGC{i:05d}", sex, group, rng.choice([*REGIONS, None]))
        for k, site in enumerate(sites):
            p = ploidy(sex, site.chrom, site.pos)
            if site.chrom == "chrX" and sex == "unknown":
                p = 2  # written diploid; the engine leaves unknown sex out of X
            if p == 0:
                continue  # no record at all (female chrY, chrM)
            freqs = [rng.choice([0.02, 0.1, 0.3, 0.6]) for _ in site.alts]
            gt = []
            for _ in range(p):
                r, acc, allele = rng.random(), 0.0, 0
                for j, f in enumerate(freqs):
                    acc += f / len(freqs)
                    if r < acc:
                        allele = j + 1
                        break
                gt.append(allele)
            person.gts[k] = tuple(sorted(gt))
            roll = rng.random()
            bad = not site.indel and not any(s.indel for s in sites[max(0, k - 1) : k + 2])
            person.state[k] = (
                "gap" if bad and roll < 0.07 else "lowq" if bad and roll < 0.12 else "ok"
            )
        people.append(person)
    return people


def _header(fasta_contigs: dict[str, int], name: str, gvcf: bool) -> pysam.VariantHeader:
    h = pysam.VariantHeader()
    for c, n in fasta_contigs.items():
        h.contigs.add(c, length=n)
    h.add_line('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">')
    h.add_line('##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">')
    h.add_line('##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">')
    if gvcf:
        h.add_line('##INFO=<ID=END,Number=1,Type=Integer,Description="End of the block">')
        h.add_line('##FORMAT=<ID=MIN_DP,Number=1,Type=Integer,Description="Minimum depth">')
        h.add_line('##ALT=<ID=NON_REF,Description="Any other allele">')
    h.add_sample(name)
    return h


def write_genome(
    person: Person, sites: list[Site], seqs: dict[str, bytearray], folder: Path
) -> tuple[Path, Path]:
    """The genome's VCF (variant calls only) and gVCF, bgzipped and indexed."""
    folder.mkdir(parents=True, exist_ok=True)
    vcf_path, gvcf_path = folder / f"{person.name}.vcf.gz", folder / f"{person.name}.g.vcf.gz"
    vh, gh = _header(CONTIGS, person.name, False), _header(CONTIGS, person.name, True)
    with (
        pysam.VariantFile(str(vcf_path), "wz", header=vh) as vcf,
        pysam.VariantFile(str(gvcf_path), "wz", header=gh) as gvcf,
    ):
        by_chrom: dict[str, list[int]] = defaultdict(list)
        for k in person.gts:
            by_chrom[sites[k].chrom].append(k)
        for chrom in CONTIGS:
            ks = sorted(by_chrom.get(chrom, []), key=lambda k: sites[k].pos)
            if not ks:
                continue

            def haploid_ref(pos: int, chrom: str = chrom) -> tuple[int, ...]:
                if person.sex == "unknown" and chrom == "chrX":
                    return (0, 0)  # written diploid; the engine leaves unknown sex out of X
                return (0,) * max(1, ploidy(person.sex, chrom, pos))

            seq, at = seqs[chrom], 1
            for k in ks:
                s, gt, state = sites[k], person.gts[k], person.state[k]
                if s.pos > at:
                    _block(gvcf, chrom, at, s.pos - 1, seq, haploid_ref(at), 40, 30)
                end = s.pos + len(s.ref) - 1
                carried = sorted({a for a in gt if a})
                gq, dp = (10, 30) if state == "lowq" else (45, 32)
                if carried:
                    alts = [s.alts[a - 1] for a in carried]
                    code = {a: i + 1 for i, a in enumerate(carried)}
                    rgt = tuple(code.get(a, 0) for a in gt)
                    _record(vcf, chrom, s.pos, s.ref, alts, rgt, gq, dp, None)
                    if state != "gap":
                        _record(gvcf, chrom, s.pos, s.ref, [*alts, "<NON_REF>"], rgt, gq, dp, None)
                elif state != "gap":
                    _block(gvcf, chrom, s.pos, end, seq, gt, gq, dp)
                at = end + 1
            last = CONTIGS[chrom] if chrom != "chrY" else 2_783_400
            if at <= last:
                _block(gvcf, chrom, at, last, seq, haploid_ref(at), 40, 30)
    for p in (vcf_path, gvcf_path):
        pysam.tabix_index(str(p), preset="vcf", force=True)
    return vcf_path, gvcf_path


def _record(
    out: pysam.VariantFile,
    chrom: str,
    pos: int,
    ref: str,
    alts: list[str],
    gt: tuple[int, ...],
    gq: int,
    dp: int,
    end: int | None,
) -> None:
    stop = end if end is not None else pos - 1 + len(ref)
    rec = out.new_record(contig=chrom, start=pos - 1, stop=stop, alleles=(ref, *alts))
    sample = rec.samples[0]
    sample["GT"] = gt
    sample["GQ"] = gq
    sample["DP"] = dp
    if "MIN_DP" in out.header.formats:
        sample["MIN_DP"] = dp
    out.write(rec)


def _block(
    out: pysam.VariantFile,
    chrom: str,
    start: int,
    end: int,
    seq: bytearray,
    gt: tuple[int, ...],
    gq: int,
    dp: int,
) -> None:
    ref = chr(seq[start - 1])
    _record(out, chrom, start, ref, ["<NON_REF>"], gt, gq, dp, end)


def write_manifest(people: list[Person], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["genome_id", "sex", "patient_group", "requisition_region"])
        for p in people:
            w.writerow([p.name, p.sex, p.group or "", p.region or ""])


Key = tuple[str, int, str, str]


def truth(
    people: list[Person], sites: list[Site], *, strata: bool = True
) -> dict[Key, dict[str, list[int]]]:
    """Brute force: per normalised allele and stratum, [ac, an, nhomalt, nhemi] (alleles with
    a carrier only)."""
    counts: dict[Key, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0] * 4))
    for k, s in enumerate(sites):
        for j, alt in enumerate(s.norm_alts, 1):
            key = (s.chrom, s.norm[0], s.norm[1], alt)
            for person in people:
                p = ploidy(person.sex, s.chrom, s.pos)
                if p == 0 or person.state.get(k) != "ok" or k not in person.gts:
                    continue
                gt = person.gts[k]
                ac = min(1, gt.count(j)) if p == 1 else gt.count(j)
                names = ["total"]
                if strata:
                    names += [f"group:{person.group}"] * bool(person.group)
                    names += [f"region:{person.region}"] * bool(person.region)
                for name in names:
                    c = counts[key][name]
                    c[0] += ac
                    c[1] += p
                    c[2] += int(p == 2 and ac == 2)
                    c[3] += int(p == 1 and ac == 1)
    return {k: dict(v) for k, v in counts.items() if v["total"][0] > 0}


@dataclass
class Cohort:
    root: Path  # the estate: <controller>/<genome>/<genome>.vcf.gz, .g.vcf.gz
    fasta: Path
    manifest: Path
    sites: list[Site]
    people: list[Person]
    gvcfs: dict[str, Path]


def make_cohort(work: Path, n: int, seed: int, *, callable_regions: bool = True) -> Cohort:
    """`n` genomes in two regions' folders, their manifest and the reference; callable regions
    beside each gVCF (codec.callable_regions.extract) unless `callable_regions` is False."""
    from wgsvault.codec.callable_regions import callable_path, extract

    rng = random.Random(seed)
    seqs = make_reference(rng)
    sites = make_sites(seqs, rng)
    fasta = work / "ref.fa"
    write_fasta(seqs, fasta)
    people = make_people(n, sites, rng)
    gvcfs: dict[str, Path] = {}
    for i, person in enumerate(people):
        folder = work / "estate" / ("region-north", "region-south")[i % 2] / person.name
        _, gvcfs[person.name] = write_genome(person, sites, seqs, folder)
        if callable_regions:
            extract(gvcfs[person.name], callable_path(gvcfs[person.name]))
    manifest = work / "manifest.csv"
    write_manifest(people, manifest)
    return Cohort(work / "estate", fasta, manifest, sites, people, gvcfs)
