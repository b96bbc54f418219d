"""Ploidy by sex and the PARs of both assemblies, whatever the contigs are called; aliases."""

from __future__ import annotations

import pytest

from wgsvault.variants.ploidy import alias, assembly_of, ploidy_map

GRCH37 = {"1": 249_250_621, "X": 155_270_560, "Y": 59_373_566, "MT": 16_569}
GRCH38 = {"chr1": 248_956_422, "chrX": 156_040_895, "chrY": 57_227_415, "chrM": 16_569}


def test_assembly_from_name_or_x_length() -> None:
    assert assembly_of("GRCh38", {}) == "GRCh38" and assembly_of("hg19", {}) == "GRCh37"
    assert assembly_of("site-build-1", GRCH37) == "GRCh37"  # by the length of X
    assert assembly_of("site-build-2", GRCH38) == "GRCh38"
    assert assembly_of("mouse", {"chrX": 1000}) is None


@pytest.mark.parametrize(("contigs", "assembly", "x", "y"), [
    (GRCH37, "GRCh37", [(0, 60_000, 1), (60_000, 2_699_520, 2), (2_699_520, 154_931_043, 1),
                        (154_931_043, 155_260_560, 2), (155_260_560, 155_270_560, 1)],
     [(0, 10_000, 1), (2_649_520, 59_034_049, 1), (59_363_566, 59_373_566, 1)]),
    (GRCH38, "GRCh38", [(0, 10_000, 1), (10_000, 2_781_479, 2), (2_781_479, 155_701_382, 1),
                        (155_701_382, 156_030_895, 2), (156_030_895, 156_040_895, 1)],
     [(0, 10_000, 1), (2_781_479, 56_887_902, 1), (57_217_415, 57_227_415, 1)]),
])  # fmt: skip
def test_male_x_and_y(contigs: dict[str, int], assembly: str, x: list, y: list) -> None:
    rows = ploidy_map(contigs, "male", assembly)
    names = list(contigs)
    assert [r[1:] for r in rows if r[0] == names[1]] == x  # 0-based half-open; PARs diploid
    assert [r[1:] for r in rows if r[0] == names[2]] == y  # Y PARs counted on X only
    assert [r for r in rows if r[0] == names[0]] == [(names[0], 0, contigs[names[0]], 2)]
    assert not [r for r in rows if r[0] == names[3]]  # the mitochondrion is not counted


def test_female_and_unknown() -> None:
    female = ploidy_map(GRCH38, "female", "GRCh38")
    assert [r for r in female if r[0] in ("chrX", "chrY")] == [("chrX", 0, 156_040_895, 2)]
    unknown = ploidy_map(GRCH38, "unknown", "GRCh38")
    assert [r[0] for r in unknown] == ["chr1"]  # no X or Y: counting them either way biases AN


def test_aliases() -> None:
    assert alias("chr1", GRCH37) == "1" and alias("1", GRCH38) == "chr1"
    assert alias("chrM", GRCH37) == "MT" and alias("MT", GRCH38) == "chrM"
    assert alias("x", GRCH38) == "chrX" and alias("chr22", GRCH38) is None
