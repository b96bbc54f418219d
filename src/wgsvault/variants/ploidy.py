"""How many copies of each base a genome has: contig naming, sex chromosomes and their PARs.

A genome counts at a site with its ploidy there (AN += ploidy):

* autosomes (and every contig not named below): 2;
* X: female 2; male 2 inside the pseudo-autosomal regions (PARs), 1 outside them;
* Y: male 1 outside the PARs; 0 inside them (PAR calls are made, and counted, on X); female 0;
* genomes of unknown sex are left out of X and Y altogether (ploidy 0): counting them as either
  sex would bias AN and the hemizygous counts of the other;
* the mitochondrion (chrM, MT) is not counted: heteroplasmy needs a dosage model of its own.

The PARs are those of the assembly (GRCh37 or GRCh38), named `chrX`/`X` alike. The assembly is
recognised from the reference build's name (`GRCh38`, `hg38`, `GRCh37`, `hg19`, `b37`), else from
the length of its X chromosome; a build that is neither has no PARs (and says so in the store).

Contig names are stored as the reference gives them; `alias` maps a query's `1`/`chr1`,
`MT`/`chrM` onto the name the store uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: 1-based inclusive PAR coordinates per assembly and chromosome (UCSC / GRC definitions)
PARS: dict[str, dict[str, tuple[tuple[int, int], ...]]] = {
    "GRCh37": {
        "X": ((60_001, 2_699_520), (154_931_044, 155_260_560)),
        "Y": ((10_001, 2_649_520), (59_034_050, 59_363_566)),
    },
    "GRCh38": {
        "X": ((10_001, 2_781_479), (155_701_383, 156_030_895)),
        "Y": ((10_001, 2_781_479), (56_887_903, 57_217_415)),
    },
}
#: length of chrX in each assembly, to recognise a build whose name does not say
X_LENGTH = {155_270_560: "GRCh37", 156_040_895: "GRCh38"}
SEXES = ("female", "male", "unknown")

_NAME = (
    (re.compile(r"(grch|hg|b)38", re.I), "GRCh38"),
    (re.compile(r"(grch37|hg19|b37|hs37)", re.I), "GRCh37"),
)


def bare(contig: str) -> str:
    """A contig's name without the `chr` prefix, `M` as `MT` (`chrX` -> `X`, `chrM` -> `MT`)."""
    name = contig[3:] if contig.lower().startswith("chr") else contig
    return "MT" if name.upper() in ("M", "MT") else name


def alias(contig: str, known: Iterable[str]) -> str | None:
    """The name in `known` that means the same contig as `contig` (`1` for `chr1`), or None."""
    names = list(known)
    if contig in names:
        return contig
    want = bare(contig).upper()
    for name in names:
        if bare(name).upper() == want:
            return name
    return None


def assembly_of(build_name: str, contigs: dict[str, int]) -> str | None:
    """GRCh37 or GRCh38 from a build's name, else from its X length; None when neither."""
    for pattern, name in _NAME:
        if pattern.search(build_name):
            return name
    for contig, length in contigs.items():
        if bare(contig).upper() == "X" and length in X_LENGTH:
            return X_LENGTH[length]
    return None


def ploidy_map(
    contigs: dict[str, int], sex: str, assembly: str | None
) -> list[tuple[str, int, int, int]]:
    """(contig, start, end, ploidy) with 0-based half-open bounds covering every contig, for one
    sex; segments of ploidy 0 are left out."""
    out: list[tuple[str, int, int, int]] = []
    for contig, length in contigs.items():
        name = bare(contig).upper()
        if name == "MT":
            continue
        if name not in ("X", "Y"):
            out.append((contig, 0, length, 2))
            continue
        if sex not in ("female", "male") or (name == "Y" and sex == "female"):
            continue
        if name == "X" and sex == "female":
            out.append((contig, 0, length, 2))
            continue
        pars = PARS.get(assembly or "", {}).get(name, ())
        inside = 2 if name == "X" else 0  # a male's PAR: two copies, counted on X only
        pos = 0
        for first, last in pars:
            start, end = min(first - 1, length), min(last, length)
            if start > pos:
                out.append((contig, pos, start, 1))
            if end > start and inside:
                out.append((contig, start, end, inside))
            pos = max(pos, end)
        if pos < length:
            out.append((contig, pos, length, 1))
    return out
