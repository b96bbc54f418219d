"""`python -m wgsvault.codec.bcftools ARGS...`: pysam's bundled bcftools as an executable.

The twin of `samtools.py`: pysam runs bcftools in-process and holds the GIL while it does, so a
bcftools command cannot stream into a pipe that the same Python process reads. Running it through
this entry point gives a real child process (the bcftools/htslib 1.2x that pysam bundles, never
Debian's, which the tests keep as an independent oracle).

Give every command an explicit output (`-o FILE`, or `-o /dev/stdout` for a pipe): pysam's own
stdout redirection (`save_stdout`) aborts bcftools 1.2x with a double free at exit (measured with
`query` on pysam 0.24), while bcftools' own `-o` is clean. `argv(...)` is the argument list a
caller runs (with `htslib.child_env` for its reference environment); `run(about, ...)` runs a
command to its end and turns a failure into one InputError naming the file it was about.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from wgsvault.errors import InputError

BCFTOOLS = [sys.executable, "-m", "wgsvault.codec.bcftools"]


def argv(*args: str) -> list[str]:
    """The argument list that runs `bcftools ARGS` as a child process."""
    return [*BCFTOOLS, *args]


def run(about: Path, *args: str) -> None:
    """Run `bcftools ARGS` in a child to its end; a failure is one InputError naming `about`."""
    proc = subprocess.run(argv(*args), capture_output=True, check=False)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.decode(errors="replace").splitlines()]
        said = [ln for ln in lines if ln] or ["failed without a message"]
        telling = [ln for ln in said if "rror" in ln or "not match" in ln or "fail" in ln]
        message = (telling or said)[-1].replace("bcftools returned with error 1: stdout=None, ", "")
        raise InputError(f"{about}: bcftools {args[0]}: {message[:300]}")


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
