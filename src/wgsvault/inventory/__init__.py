"""inventory: what is stored where, found by walking the storage trees.

Stage: scan. `walk` lists directories with one `stat` per file and never reads content;
`filetypes` classifies files by name (FASTQ pairs, BAM, CRAM, VCF, gVCF, indexes, Illumina run
folders); `layout` maps a path to its data controller and genome; `scan` brings the catalog up
to date incrementally; `digest` computes content sha256 of files and run folders on request.

May use: the catalog and the utilities (errors, config, bulk). Independent of audit; every later
stage may use it.
"""
