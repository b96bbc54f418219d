"""codec: lossless conversion to CRAM, the proofs that nothing was lost, and restores.

Stage: convert and verify (used by apply, serve and the CLI). `htslib` is the one door to
htslib/samtools (argument lists, the reference environment, tool versions; `samtools` runs pysam's
samtools as a child process); `refs` is the reference registry (builds, M5 and refget digests, the
REF_CACHE tree). A FASTQ is read exactly by `fastq_reader`, turned into SAM records that keep every
byte by `fastq_encode` and given back by `fastq_decode`; `fastqfmt` holds the restore recipe a
converted CRAM carries. `convert` writes FASTQ -> unaligned CRAM and BAM -> CRAM, proven by
`verify` before they land. `covers` proves that FASTQ files are contained in an aligned CRAM
(reading them with `fastq_input`, the CRAM with `records`; `covers_detail` finds where they differ)
and writes the `sidecar`, from which `covers_restore` gives the FASTQ back (an external bucket
sort: `covers_scatter`, `covers_batches` with `covers_sort`, `covers_write`); `restore` is the
one entry point for giving originals back. `callable_regions` keeps what a gVCF says about where
the genome is confidently called (a BGZF BED, through pysam's bcftools run as a child by
`bcftools`) before the gVCF may go; `callable_depth` approximates it from a CRAM's depth where
the gVCF is already gone.

May use: inventory (file types, digests), the catalog (the registry's rows) and the utilities.
Independent of plan.
"""
