"""demo: a national genome store the project builds itself, and the main job run over it.

`synth` writes small but valid genome data (reference, FASTQ pair, BAM, CRAM, VCF, gVCF, an
Illumina run folder); `estate` builds two regions and the national database from it and from
sparse files at the owners' per-genome sizes, then scans, plans A, B, C and applies plan B, and
imports the case history `cases` generates (for the governance reports and the dashboard).
`dialects` writes a corpus of FASTQ dialects (every one must round-trip byte for byte).

May use every stage below the CLI; only the CLI (and tests, benchmarks) use it.
"""
