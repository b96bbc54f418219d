"""The frequency engine against independent counts, on SQLite and PostgreSQL catalogs.

A synthetic cohort (variants_cohort.py: VCF + gVCF per genome written with pysam, callable
regions from the gVCF, some genomes uncovered or poorly called at some sites, both sexes and
unknown sex on X and Y, multi-allelic sites, right-shifted deletions) is scanned into a catalog
and built. The allele table is compared with

* Debian's bcftools (its own htslib, an implementation independent of the vault's pysam):
  `merge --gvcf REF` of the gVCFs, genotypes with GQ < 20 or DP < 10 set missing (`+setGT`),
  `norm -m -any -f REF`, `+fill-tags -t AC,AN,AC_Hom,AC_Hemi`: AC, AN, nhomalt (AC_Hom / 2) and
  nhemi (AC_Hemi) of every allele. On X and Y the merge holds the genomes of known sex only,
  which is the engine's rule bcftools cannot express;
* a brute-force count from the genotypes as drawn, for every stratum.

Adding and removing genomes is checked to be exact: every Parquet row equal.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from wgsvault.catalog import Catalog
from wgsvault.catalog.manifest import import_manifest
from wgsvault.codec.callable_regions import callable_path
from wgsvault.codec.refs import Registry
from wgsvault.errors import InputError, IntegrityError
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan
from wgsvault.variants import engine
from wgsvault.variants.genome import GenomeTask, count_genome
from wgsvault.variants.release import release
from wgsvault.variants.state import read_state
from wgsvault.variants.store import FrequencyStore

import variants_cohort as vc
from conftest import unavailable

N_GENOMES = 24
Key = tuple[str, int, str, str]


@dataclass
class Oracle:
    cohort: vc.Cohort
    counts: dict[Key, tuple[int, int, int, int]]  # bcftools: ac, an, nhomalt, nhemi


def _system_bcftools() -> str:
    found = shutil.which("bcftools")
    if found is None or not found.startswith("/usr/"):
        unavailable("Debian bcftools is not installed (apt-get install bcftools)")
    return found


def _oracle(bcftools: str, fasta: Path, gvcfs: list[Path], work: Path, regions: str | None):
    listing = work / f"gvcfs{len(gvcfs)}{regions or ''}.txt"
    listing.write_text("".join(f"{g}\n" for g in gvcfs))
    merge = [bcftools, "merge", "--gvcf", str(fasta), "-l", str(listing), "-Ou"]
    if regions:
        merge += ["-r", regions]
    steps = [
        merge,
        [bcftools, "+setGT", "-Ou", "--", "-t", "q", "-n", ".", "-i", "FMT/GQ<20 | FMT/DP<10"],
        [bcftools, "norm", "-m", "-any", "-f", str(fasta), "-Ou"],
        [bcftools, "+fill-tags", "-Ou", "--", "-t", "AC,AN,AC_Hom,AC_Hemi"],
        [bcftools, "query", "-i", 'INFO/AC>0 && ALT!~"<"',
         "-f", "%CHROM\\t%POS\\t%REF\\t%ALT\\t%AC\\t%AN\\t%AC_Hom\\t%AC_Hemi\\n"],
    ]  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    prev = None
    for argv in steps:
        p = subprocess.Popen(argv, stdin=prev, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if prev is not None:
            prev.close()
        prev = p.stdout
        procs.append(p)
    out, _ = procs[-1].communicate()
    for p in procs:
        assert p.wait() == 0, p.args
    rows = {}
    for line in out.decode().splitlines():
        c, pos, ref, alt, ac, an, hom, hemi = line.split("\t")
        rows[(c, int(pos), ref, alt)] = (int(ac), int(an), int(hom) // 2, int(hemi))
    return rows


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Oracle:
    bcftools = _system_bcftools()
    work = tmp_path_factory.mktemp("cohort")
    cohort = vc.make_cohort(work, N_GENOMES, 15)
    allg = [cohort.gvcfs[p.name] for p in cohort.people]
    known = [cohort.gvcfs[p.name] for p in cohort.people if p.sex != "unknown"]
    counts = {
        k: v
        for k, v in _oracle(bcftools, cohort.fasta, allg, work, None).items()
        if k[0] not in ("chrX", "chrY")
    }
    counts.update(_oracle(bcftools, cohort.fasta, known, work, "chrX,chrY"))
    return Oracle(cohort, counts)


@pytest.fixture
def cohort(oracle: Oracle) -> vc.Cohort:
    return oracle.cohort


@pytest.fixture
def vault(
    cohort: vc.Cohort, catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Catalog, Path]]:
    """A catalog that knows the cohort (scanned, manifest, reference), and a store path."""
    monkeypatch.setenv("WGSVAULT_HOME", str(tmp_path / "home"))
    scan(catalog, [str(cohort.root)], DEFAULT_LAYOUT)
    import_manifest(catalog, cohort.manifest)
    Registry(catalog).add(cohort.fasta, vc.BUILD)
    yield catalog, tmp_path / "variants"


def _table(store: Path) -> dict[Key, dict[str, list[int]]]:
    """Every allele of the store: {stratum: [ac, an, nhomalt, nhemi]}, total included."""
    out: dict[Key, dict[str, list[int]]] = {}
    with FrequencyStore(store) as fs:
        for contig in fs.contigs():
            for a in fs.region(contig, 1, 10**9):
                assert 0 < a.ac <= a.an and a.af == a.ac / a.an
                cells = {"total": [a.ac, a.an, a.nhomalt, a.nhemi]}
                cells.update({n: [s.ac, s.an, s.nhomalt, s.nhemi] for n, s in a.strata.items()})
                out[(a.chrom, a.pos, a.ref, a.alt)] = cells
    return out


def _parquet_rows(store: Path) -> dict[str, list[tuple[object, ...]]]:
    """The rows of every Parquet table of the store's current data, sorted."""
    state = read_state(store)
    assert state is not None
    data = store / state["data"]
    con = duckdb.connect()
    out = {}
    for table in ("alleles", "coverage"):
        files = sorted(str(f) for f in (data / table).glob("chrom=*/data.parquet"))
        out[table] = sorted(
            con.execute(f"SELECT * FROM read_parquet({files!r})").fetchall(), key=repr
        )
    con.close()
    return out


def test_build_matches_bcftools_and_brute_force(
    oracle: Oracle, cohort: vc.Cohort, vault: tuple[Catalog, Path]
) -> None:
    catalog, store = vault
    outcome = engine.build(catalog, store, engine.reference(catalog, None))
    assert outcome.genomes == N_GENOMES and not outcome.skipped
    table = _table(store)
    assert outcome.alleles == len(table)

    totals = {k: tuple(v["total"]) for k, v in table.items()}
    assert totals == oracle.counts  # every allele, every figure, as bcftools counts them
    assert table == vc.truth(cohort.people, cohort.sites)  # and every stratum, by brute force

    # the cases the cohort was drawn to hold are really in it
    assert any(k[0] == "chrX" and v["total"][3] > 0 for k, v in table.items())  # hemizygous
    assert any(k[0] == "chrY" for k in table)
    assert any(len(k[2]) > len(k[3]) for k in table)  # a left-aligned deletion
    assert len({k[:3] for k in table}) < len(table)  # a multi-allelic site, split
    ignored = {p.state[k] for p in cohort.people for k in p.gts if any(p.gts[k])}
    assert ignored == {"ok", "gap", "lowq"}  # calls outside callable regions were in the VCFs

    with FrequencyStore(store) as fs:
        first = fs.region("chr1", 1, 10**9)[0]
        assert fs.lookup("chr1", first.pos, first.ref, first.alt) == [first]
        assert fs.lookup("1", first.pos, first.ref, first.alt) == [first]  # 1 is chr1
        assert fs.lookup("chr1", first.pos + 1, first.ref, first.alt) == []  # 1-based
        assert fs.lookup("chr1", first.pos, first.ref, "N") == []
        assert fs.lookup("chr22", 100, "A", "C") == []
        assert fs.region("1", first.pos, first.pos)[0] == first
        assert fs.genomes() == N_GENOMES and fs.assembly() == "GRCh38" and fs.release() is None
        assert fs.contigs() == ["chr1", "chr2", "chrX", "chrY"]
        assert first.as_json()["strata"] == {
            n: {"ac": s.ac, "an": s.an, "af": s.af, "nhomalt": s.nhomalt, "nhemi": s.nhemi}
            for n, s in first.strata.items()
        }

    state = read_state(store)
    assert state is not None
    shutil.rmtree(store / state["data"] / "lookup")  # derived: the Parquet files answer alike
    assert _table(store) == table


def test_remove_then_add_is_exact(cohort: vc.Cohort, vault: tuple[Catalog, Path]) -> None:
    catalog, store = vault
    engine.build(catalog, store, engine.reference(catalog, None))
    built = _parquet_rows(store)
    male = next(p for p in cohort.people if p.sex == "male" and p.group)
    female = next(p for p in cohort.people if p.sex == "female")

    engine.remove(catalog, store, male.name)  # withdrawal of consent
    rest = [p for p in cohort.people if p is not male]
    data = store / read_state(store)["data"]  # type: ignore[index]
    assert not list(data.glob("lookup/*/alleles.duckdb"))  # changed contigs: Parquet until release
    assert _table(store) == vc.truth(rest, cohort.sites)
    r = release(catalog, store, min_new_genomes=0)
    assert {p.parent.name for p in r.path.glob("lookup/*/alleles.duckdb")} == {
        p.parent.name for p in r.path.glob("alleles/*/data.parquet")
    }  # the release writes the lookup files back, and they answer as the Parquet files did
    assert _table(r.path) == vc.truth(rest, cohort.sites)
    listed = json.loads((r.path / "release.json").read_text())["files"]
    assert any(f.startswith("lookup/") for f in listed)
    without = _parquet_rows(store)

    engine.add(catalog, store, male.name)  # back: as if built with everyone
    assert _parquet_rows(store) == built
    engine.remove(catalog, store, male.name)  # add then remove: as before the add
    assert _parquet_rows(store) == without

    engine.remove(catalog, store, female.name)
    engine.add(catalog, store, female.name)
    engine.add(catalog, store, male.name)
    assert _parquet_rows(store) == built
    state = read_state(store)
    assert state is not None and len(state["members"]) == N_GENOMES
    assert len(list((store / "data").iterdir())) == 1  # old generations are gone

    with pytest.raises(InputError, match="already counted"):
        engine.add(catalog, store, male.name)
    engine.remove(catalog, store, male.name)
    with pytest.raises(InputError, match="not counted"):
        engine.remove(catalog, store, male.name)

    rebuilt = engine.build(catalog, store, engine.reference(catalog, None))
    assert "withdrawn" in rebuilt.skipped[male.name]  # a rebuild does not undo a withdrawal
    assert _parquet_rows(store) == without
    engine.add(catalog, store, male.name)  # named again: counted again
    assert _parquet_rows(store) == built


def test_vcf_on_another_reference_is_refused(cohort: vc.Cohort, tmp_path: Path) -> None:
    person = cohort.people[0]
    vcf = next(cohort.root.glob(f"*/{person.name}/{person.name}.vcf.gz"))
    bed = callable_path(vcf.with_name(f"{person.name}.g.vcf.gz"))
    other = tmp_path / "other.fa"
    other.write_text(cohort.fasta.read_text().replace("A", "T"))
    task = GenomeTask(person.name, vcf, bed, "female", other, vc.CONTIGS, "GRCh38", tmp_path / "g")
    with pytest.raises(InputError, match=rf"{vcf}: bcftools norm: .*mismatch"):
        count_genome(task)
    assert not (tmp_path / "g" / "calls.parquet").exists()  # nothing half-written
    good = GenomeTask(person.name, vcf, bed, "female", cohort.fasta, vc.CONTIGS, "GRCh38",
                      tmp_path / "g")  # fmt: skip
    assert count_genome(good).counted > 0


def _file_order(store: Path) -> list[tuple[str, int, int, bool]]:
    """Per allele partition: contig, rows, sorted leading rows (metadata), rows in order."""
    from wgsvault.variants.aggregate import sorted_rows

    state = read_state(store)
    assert state is not None
    con = duckdb.connect()
    out = []
    for f in sorted((store / state["data"] / "alleles").glob("chrom=*/data.parquet")):
        keys = con.execute(f"SELECT pos, ref, alt FROM read_parquet('{f}')").fetchall()
        head = sorted_rows(con, f)
        out.append((f.parent.name, len(keys), len(keys) if head is None else head,
                    keys == sorted(keys)))  # fmt: skip
    con.close()
    return out


def test_add_appends_new_alleles_then_sorts(
    cohort: vc.Cohort, vault: tuple[Catalog, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`add` streams the stored rows and appends the genome's new alleles as a sorted run (the
    file says how many leading rows are sorted); past TAIL_LIMIT it sorts the contig whole.
    Either way the rows and every answer are a build's; remove restores the file's order."""
    from wgsvault.variants import delta

    catalog, store = vault
    engine.build(catalog, store, engine.reference(catalog, None))
    built, order = _parquet_rows(store), _file_order(store)
    assert all(n == head and in_order for _, n, head, in_order in order)  # a build: sorted
    everyone = vc.truth(cohort.people, cohort.sites)

    def own(p: vc.Person) -> int:  # alleles no other genome of the cohort carries
        return len(everyone) - len(vc.truth([q for q in cohort.people if q is not p], cohort.sites))

    someone = max(cohort.people, key=own)
    assert own(someone) > 0
    engine.remove(catalog, store, someone.name)
    without = _file_order(store)
    engine.add(catalog, store, someone.name)
    appended = _file_order(store)
    assert _parquet_rows(store) == built
    assert _table(store) == vc.truth(cohort.people, cohort.sites)  # lookups read the runs too
    assert any(head < n and not in_order for _, n, head, in_order in appended)
    for _, n, head, _in_order in appended:
        assert head <= n
    engine.remove(catalog, store, someone.name)
    assert _file_order(store) == without  # the same rows in the same order

    monkeypatch.setattr(delta, "TAIL_LIMIT", 0.0)
    monkeypatch.setattr(delta, "ROW_GROUP", 0)
    engine.add(catalog, store, someone.name)  # every run too long: contigs sorted again
    assert _parquet_rows(store) == built
    assert all(n == head and in_order for _, n, head, in_order in _file_order(store))


def test_a_contribution_that_does_not_match_is_refused(
    cohort: vc.Cohort, vault: tuple[Catalog, Path]
) -> None:
    """Removing a genome whose stored calls say more than the store holds (a corrupted member
    file) stops with an IntegrityError naming the contig and position; the store is unchanged."""
    catalog, store = vault
    engine.build(catalog, store, engine.reference(catalog, None))
    state = read_state(store)
    assert state is not None
    someone = cohort.people[0].name
    calls = store / state["members"][someone]["dir"] / "calls.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * REPLACE (ac * 1000 AS ac) FROM read_parquet('{calls}')) "
                f"TO '{calls}.x' (FORMAT parquet)")  # fmt: skip
    con.close()
    Path(f"{calls}.x").replace(calls)
    before = (store / "state.json").read_bytes()
    with pytest.raises(IntegrityError, match=r"contig \S+: counts at \d+ fell below 0"):
        engine.remove(catalog, store, someone)
    assert (store / "state.json").read_bytes() == before
