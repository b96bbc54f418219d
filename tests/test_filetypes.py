import pytest

from wgsvault.inventory.filetypes import FileType, classify, fastq_read, index_targets


@pytest.mark.parametrize(
    ("name", "ftype"),
    [
        ("S1_L001_R1_001.fastq.gz", FileType.FASTQ),
        ("x.fq", FileType.FASTQ),
        ("x.FQ.GZ", FileType.FASTQ),
        ("x.fastq.bz2", FileType.FASTQ),
        ("x.bam", FileType.BAM),
        ("x.cram", FileType.CRAM),
        ("x.g.vcf.gz", FileType.GVCF),
        ("x.gvcf.gz", FileType.GVCF),
        ("x.vcf.gz", FileType.VCF),
        ("x.vcf", FileType.VCF),
        ("x.bcf", FileType.VCF),
        ("x.bam.bai", FileType.INDEX),
        ("x.bai", FileType.INDEX),
        ("x.cram.crai", FileType.INDEX),
        ("x.vcf.gz.tbi", FileType.INDEX),
        ("x.g.vcf.gz.tbi", FileType.INDEX),
        ("x.bam.csi", FileType.INDEX),
        ("G1.callable.bed.gz", FileType.CALLABLE),
        ("G1.callable.bed.gz.tbi", FileType.INDEX),
        ("regions.bed.gz", FileType.UNKNOWN),
        ("s_1_1101.bcl.gz", FileType.BCL),
        ("L001_1.cbcl", FileType.BCL),
        ("x.md5", FileType.OTHER),
        ("multiqc_report.html", FileType.OTHER),
        ("core", FileType.UNKNOWN),
        ("x.vcf.gz.bak", FileType.UNKNOWN),
        ("fastq", FileType.UNKNOWN),
    ],
)
def test_classify(name: str, ftype: FileType) -> None:
    assert classify(name) is ftype


@pytest.mark.parametrize(
    ("name", "read", "key"),
    [
        ("S1_L001_R1_001.fastq.gz", 1, "S1_L001_R{1,2}_001.fastq.gz"),
        ("S1_L001_R2_001.fastq.gz", 2, "S1_L001_R{1,2}_001.fastq.gz"),
        ("G1_R2.fastq.gz", 2, "G1_R{1,2}.fastq.gz"),
        ("sample.R1.fq", 1, "sample.R{1,2}.fq"),
        ("ERR013140_1.fastq.gz", 1, "ERR013140_{1,2}.fastq.gz"),
        ("ERR013140_2.fastq.gz", 2, "ERR013140_{1,2}.fastq.gz"),
        ("reads.fastq.gz", None, "reads.fastq.gz"),
        ("R1D2.fastq", None, "R1D2.fastq"),  # no separator before R1: not a read token
    ],
)
def test_fastq_read(name: str, read: int | None, key: str) -> None:
    assert fastq_read(name) == (read, key)


def test_index_targets() -> None:
    assert index_targets("x.bam.bai") == ["x.bam"]
    assert index_targets("x.bai") == ["x.bam", "x"]
    assert index_targets("x.crai") == ["x.cram", "x"]
    assert index_targets("x.vcf.gz.tbi") == ["x.vcf.gz"]
    assert index_targets("G1.callable.bed.gz.tbi") == ["G1.callable.bed.gz"]
    assert index_targets("x.bam") == []
