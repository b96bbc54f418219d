"""The slices served to region-limited principals, cached by what they are made of.

A slice (codec/slice.py) holds only the records of the requested regions under a public header.
It is written once to `<home>/serve-cache/slices/<key>.<ext>`, `key` being the sha256 of the
stored file's identity (catalog id, path, size, mtime), the regions and the header policy, so an
identical request reuses it, and a changed stored file never serves an old slice. Within a
process, concurrent requests for the same slice wait for the one that writes it. Slices are
reaped (`reap`) once unused for twice the block URL lifetime: a URL is valid for one lifetime
after the ticket that last used its slice, which touched it.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from wgsvault.catalog.models import File
from wgsvault.codec import slice as codec_slice
from wgsvault.codec.slice import Span

#: bumped whenever what a slice holds changes (header policy, record selection)
POLICY = "public-header/1"
EXTENSIONS = {"cram": ".cram", "vcf": ".vcf.gz"}


class SliceCache:
    def __init__(self, root: Path, refs_cache: Path) -> None:
        self.root, self.refs_cache = root, refs_cache
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def key(self, f: File, spans: Sequence[Span], header_only: bool) -> str:
        st = os.stat(f.path)
        regions = ";".join(f"{s.name}\t{s.start}\t{s.end}" for s in spans)
        ident = f"{POLICY}|{f.id}|{f.path}|{st.st_size}|{st.st_mtime_ns}|{header_only}|{regions}"
        return hashlib.sha256(ident.encode()).hexdigest()

    def path_of(self, name: str) -> Path | None:
        """The slice file a block URL names, if it is one (a bare `<key>.<ext>` name)."""
        stem, _, ext = name.partition(".")
        hexadecimal = len(stem) == 64 and not stem.strip("0123456789abcdef")
        if not hexadecimal or f".{ext}" not in EXTENSIONS.values():
            return None
        return self.root / name

    def get(self, f: File, spans: Sequence[Span], header_only: bool) -> Path:
        """The slice of stored file `f` for `spans`, written now or reused."""
        key = self.key(f, spans, header_only)
        out = self.root / f"{key}{EXTENSIONS[f.type]}"
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if out.exists():
                os.utime(out)
            else:
                self.root.mkdir(parents=True, exist_ok=True)
                if f.type == "cram":
                    codec_slice.slice_cram(
                        Path(f.path), spans, out, cache=self.refs_cache, header_only=header_only
                    )
                else:
                    codec_slice.slice_vcf(Path(f.path), spans, out, header_only=header_only)
        with self._guard:
            self._locks.pop(key, None)
        return out

    def reap(self, older_than: float) -> int:
        """Remove slices unused for `older_than` seconds (and leftovers of killed writers)."""
        removed = 0
        cutoff = time.time() - older_than
        for p in self.root.glob("*") if self.root.exists() else []:
            try:
                if p.stat().st_mtime < cutoff:
                    p.unlink()
                    removed += 1
            except FileNotFoundError:
                pass  # another process reaped it first
        return removed
