"""Content digests: streamed sha256 of files and of Illumina run folders.

A run folder is digested as a manifest: one line `relpath<TAB>size<TAB>sha256` per file in sorted
order, hashed with sha256, so two folders have the same digest exactly when they hold the same files
with the same bytes. Files are read in 1 MiB blocks; hashlib releases the GIL, so a thread pool
hashes several files in parallel.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

BLOCK = 1 << 20


def sha256_file(path: str, on_bytes: Callable[[int], None] | None = None) -> str:
    """Hex sha256 of a file's content, streamed."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(BLOCK)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            h.update(view[:n])
            if on_bytes is not None:
                on_bytes(n)
    return h.hexdigest()


def sha256_tree(path: str, on_bytes: Callable[[int], None] | None = None) -> str:
    """Hex sha256 of the manifest of a directory tree (relative path, size, sha256 per file)."""
    lines = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, path)
            lines.append(f"{rel}\t{os.path.getsize(full)}\t{sha256_file(full, on_bytes)}\n")
    lines.sort()
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def sha256_path(path: str, on_bytes: Callable[[int], None] | None = None) -> str:
    """sha256 of a file, or of a run folder's manifest when `path` is a directory."""
    if os.path.isdir(path):
        return sha256_tree(path, on_bytes)
    return sha256_file(path, on_bytes)
