"""The one place that talks to htslib/samtools: argument lists, reference environment, versions.

Every samtools command runs as a child process (`python -m wgsvault.codec.samtools`, i.e. the
samtools 1.24 that pysam bundles), so that its input and output are real pipes the caller can
stream and hash while samtools works, and so that a crash of htslib never takes the vault down
with it.

References are resolved only through the vault's registry: `REF_PATH` and `REF_CACHE` point at the
registry's htslib cache (`<ref cache>/%2s/%2s/%s`, by `M5`), which also switches off htslib's
default fetch from the EBI server. No command here ever goes to the network for a reference.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pysam.version as pysam_version

from wgsvault.errors import InputError, IntegrityError, VaultError

SAMTOOLS = [sys.executable, "-m", "wgsvault.codec.samtools"]


def ref_path(cache: Path) -> str:
    """The REF_PATH/REF_CACHE template of a registry cache directory."""
    return f"{cache}/%2s/%2s/%s"


def child_env(cache: Path | None) -> dict[str, str]:
    """Environment for a samtools child: the registry's references, and nothing else."""
    env = dict(os.environ)
    # an empty cache directory still means "no network": htslib falls back to EBI only when unset
    template = ref_path(cache) if cache else "/nonexistent/%2s/%2s/%s"
    env["REF_PATH"] = env["REF_CACHE"] = template
    return env


@contextmanager
def reference_env(cache: Path | None) -> Iterator[None]:
    """Set REF_PATH/REF_CACHE for htslib calls made in this process (pysam readers)."""
    old = {k: os.environ.get(k) for k in ("REF_PATH", "REF_CACHE")}
    os.environ.update({k: v for k, v in child_env(cache).items() if k in old})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def samtools_argv(*args: str) -> list[str]:
    return [*SAMTOOLS, *args]


def first_error(stderr: str) -> str:
    """The most telling line of samtools' stderr (htslib's [E::...] lines come first)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("[E::") or "error" in ln.lower() or "fail" in ln.lower():
            return ln.replace("samtools returned with error 1: stdout=None, stderr=", "")
    return lines[-1] if lines else "failed without a message"


def run(
    args: Sequence[str],
    *,
    cache: Path | None,
    what: str,
    stdout: int | None = subprocess.DEVNULL,
    threads: int = 0,
    error: type[VaultError] = IntegrityError,
    writes: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `samtools ARGS`; a failure raises `error` naming `what` (file and step).

    `writes`: the file the command writes. samtools reports a full disk only as a failed write
    or close (`error closing ...: -1`), so when the command fails and that file's filesystem
    has no room left, the failure is an `OSError(ENOSPC)` naming it, as a full disk is.
    """
    argv = samtools_argv(*args[:1], *(["-@", str(threads)] if threads else []), *args[1:])
    proc = subprocess.run(
        argv, env=child_env(cache), stdout=stdout, stderr=subprocess.PIPE, check=False
    )
    if proc.returncode != 0:
        message = first_error(proc.stderr.decode(errors="replace"))
        if writes is not None and disk_full(writes.parent):
            raise OSError(errno.ENOSPC, f"{what}: {os.strerror(errno.ENOSPC)} ({message})")
        raise error(f"{what}: {message}")
    return proc


def disk_full(directory: Path, room: int = 1 << 20) -> bool:
    """Whether the filesystem of `directory` has less than `room` bytes left for a user."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < room


def popen(
    args: Sequence[str],
    *,
    cache: Path | None,
    stdout: int | None = subprocess.PIPE,
    stderr: int | IO[bytes] | None = subprocess.PIPE,
    stdin: int | None = None,
    threads: int = 0,
) -> subprocess.Popen[bytes]:
    """Start `samtools ARGS` streaming to `stdout`; the caller waits and checks."""
    argv = samtools_argv(*args[:1], *(["-@", str(threads)] if threads else []), *args[1:])
    return subprocess.Popen(argv, env=child_env(cache), stdout=stdout, stderr=stderr, stdin=stdin)


def versions() -> dict[str, str]:
    """Tool versions recorded in every proof."""
    return {
        "pysam": pysam_version.__version__,
        "htslib": pysam_version.__htslib_version__,
        "samtools": pysam_version.__samtools_version__,
    }


_MAGIC = {
    "bam": (b"\x1f\x8b\x08\x04",),  # BGZF
    "cram": (b"CRAM",),
    "sam": (b"@",),
    "fastq": (b"@", b"\x1f\x8b"),  # plain, or gzip/BGZF
}


def check_magic(path: Path, *kinds: str) -> None:
    """Refuse at once a file that does not start like any of `kinds` (e.g. a placeholder of
    zeros), before a tool reads gigabytes of it."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not any(head.startswith(m) for k in kinds for m in _MAGIC[k]):
        raise InputError(f"{path}: not a {' or '.join(k.upper() for k in kinds)} file")
