"""`python -m wgsvault.codec.samtools ARGS...`: pysam's bundled samtools as an executable.

pysam runs samtools in-process and holds the GIL while it does, so a samtools command cannot
stream into a pipe that the same Python process reads. Running it through this entry point gives
a real child process (the exact samtools/htslib that pysam bundles, 1.24 here) whose stdin/stdout
are ordinary pipes; `htslib.py` is the only caller.

`CMD1 ARGS ::: CMD2 ARGS ...` runs several commands one after the other in the one process (its
start-up, importing pysam, costs more than a small command), stopping at the first failure.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from typing import Any

#: separates commands run one after the other in one process
SEPARATOR = ":::"


def main(argv: list[str]) -> int:
    import pysam
    import pysam.utils

    commands: list[list[str]] = [[]]
    for arg in argv:
        if arg == SEPARATOR:
            commands.append([])
        else:
            commands[-1].append(arg)
    if not all(commands):
        sys.stderr.write("usage: python -m wgsvault.codec.samtools COMMAND [ARGS...] [::: ...]\n")
        return 2
    for command in commands:
        rc = _one(pysam, command)
        if rc:
            return rc
    return 0


def _one(pysam: Any, argv: list[str]) -> int:
    cmd = "fqimport" if argv[0] == "import" else argv[0]
    fn = getattr(pysam.samtools, cmd, None) or getattr(pysam.samtools, argv[0], None)
    if fn is None:
        sys.stderr.write(f"samtools: unknown command {argv[0]!r}\n")
        return 2
    mode = os.fstat(1).st_mode
    cat = None
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode):
        target = "/dev/stdout"  # pysam opens, writes and closes (so flushes) it itself
    else:
        # a regular file would be truncated by that reopening: interpose a pipe to `cat`
        cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE)
        assert cat.stdin is not None
        target = f"/proc/self/fd/{cat.stdin.fileno()}"
    try:
        fn(*argv[1:], catch_stdout=False, save_stdout=target)
    except pysam.utils.SamtoolsError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    finally:
        if cat is not None:
            assert cat.stdin is not None
            cat.stdin.close()
            cat.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
