"""`python -m wgsvault.codec.bcftools ARGS...`: pysam's bundled bcftools as an executable.

The twin of `samtools.py`: pysam runs bcftools in-process and holds the GIL while it does, so a
bcftools command cannot stream into a pipe that the same Python process reads. Running it through
this entry point gives a real child process (the bcftools/htslib 1.2x that pysam bundles, never
Debian's, which the tests keep as an independent oracle).

Give every command an explicit output (`-o FILE`, or `-o /dev/stdout` for a pipe): pysam's own
stdout redirection (`save_stdout`) aborts bcftools 1.2x with a double free at exit (measured with
`query` on pysam 0.24), while bcftools' own `-o` is clean. `argv(...)` is the argument list a
caller runs (with `htslib.child_env` for its reference environment).
"""

from __future__ import annotations

import sys

BCFTOOLS = [sys.executable, "-m", "wgsvault.codec.bcftools"]


def argv(*args: str) -> list[str]:
    """The argument list that runs `bcftools ARGS` as a child process."""
    return [*BCFTOOLS, *args]


def main(argv: list[str]) -> int:
    import pysam.bcftools
    import pysam.utils

    if not argv:
        sys.stderr.write("usage: python -m wgsvault.codec.bcftools COMMAND [ARGS...]\n")
        return 2
    fn = getattr(pysam.bcftools, argv[0], None)
    if fn is None:
        sys.stderr.write(f"bcftools: unknown command {argv[0]!r}\n")
        return 2
    try:
        fn(*argv[1:], catch_stdout=False)
    except pysam.utils.SamtoolsError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
