"""Writing files so that a crash never leaves a half-written file in place.

Content goes to a temporary name in the destination's directory, is fsync'd, and is renamed over
the destination; the directory is fsync'd so the rename itself is durable.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, atomically and durably."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make renames in `directory` durable."""
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def make_durable(path: Path) -> None:
    """Give a finished temporary file the usual mode (mkstemp makes it 0600) and fsync it."""
    os.chmod(path, 0o666 & ~_umask())
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def land(moves: list[tuple[Path, Path]]) -> None:
    """Make finished temporary files durable, then rename each into place, in the given order
    (an index before its data file), and make the renames durable."""
    for tmp, _ in moves:
        make_durable(tmp)
    for tmp, final in moves:
        os.replace(tmp, final)
    for directory in dict.fromkeys(final.parent for _, final in moves):
        fsync_dir(directory)


def clear_leftovers(out: Path) -> None:
    """Temporary files of a run that was killed while writing `out` (never `out` itself): those
    of `atomic_write_bytes` and of the CRAM conversions (`.NAME.XXXX.tmp[.cram[.crai|.hdr]]`)."""
    for tmp in out.parent.glob(f".{out.name}.*"):
        if tmp.name.endswith((".tmp", ".tmp.cram", ".tmp.cram.crai", ".tmp.cram.hdr")):
            tmp.unlink(missing_ok=True)
