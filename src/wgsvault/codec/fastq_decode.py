"""Give back the exact FASTQ bytes from an unaligned CRAM written by `convert fastq`.

`samtools fastq -n -T CO,zt,...` decodes the CRAM (htslib does the work, on every core given) and
writes each record as `@QNAME<TAB>tags`, the bases, `+` and the qualities; `Decoder` turns that
stream back into the original file (fastq_encode describes the tags):

* the fast path, for files whose records carry no tag but `CO` (the recipe counts the tags): one
  bulk replace of `\\tCO:Z:` by nothing puts each comment back after its name (a `CO` value holds
  no tab, and no other line of samtools' output holds a tab, so nothing else can match);
* the record path, for files with any other tag or whose `+` lines repeat the header: each
  record rebuilt from its tags, in blocks cut at record boundaries (counted lines);
* then the file's layout: CR LF line ends, a missing final line end, blank lines at the end.

`decode_cram` runs samtools into FIFOs, one reader thread per output file, and hands each
decoded block to a sink (a file, a digest): the restore and the proof share this one path.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from wgsvault.codec import htslib
from wgsvault.codec.fastq_encode import apply_case, unescape
from wgsvault.codec.fastqfmt import FileStyle, Recipe
from wgsvault.errors import IntegrityError

Sink = Callable[[bytes | memoryview], object]
CHUNK = 1 << 22
PIPE_SIZE = 1 << 20  # the default maximum of /proc/sys/fs/pipe-max-size


class Decoder:
    """samtools fastq output of one file -> the original bytes, block by block.

    `fast`: the file's records carry no tag but `CO` and its `+` lines are bare (the recipe
    says so), so blocks need not be cut at record boundaries and no record is parsed."""

    def __init__(self, style: FileStyle, fast: bool) -> None:
        self.style = style
        self.fast = fast and not style.plus_repeats
        self._rest = b""
        self._held = b""  # the last line end, written only if the original has one

    def feed(self, data: bytes) -> bytes | memoryview:
        buf = self._rest + data if self._rest else data
        if self.fast:
            # a `CO` tag cut by the chunk boundary stays in the rest and is whole next time
            buf = buf.replace(b"\tCO:Z:", b"")
            end = buf.rfind(b"\n") + 1
        else:
            end = buf.rfind(b"\n") + 1
            for _ in range(buf.count(b"\n", 0, end) % 4):  # back to the last whole record
                end = buf.rfind(b"\n", 0, end - 1) + 1
        self._rest = buf[end:]
        if not end:
            return b""
        block: bytes | memoryview = memoryview(buf)[:end]
        if not self.fast:
            block = _records(bytes(block), self.style.plus_repeats)
        if self.style.crlf:
            block = bytes(block).replace(b"\n", b"\r\n")
        if self.style.final_newline:
            return block
        cut = len(block) - (2 if self.style.crlf else 1)
        out = self._held + bytes(block[:cut])
        self._held = bytes(block[cut:])
        return out

    def finish(self) -> bytes:
        if self._rest:
            raise IntegrityError(f"samtools fastq output ends inside a record: {self._rest[:60]!r}")
        return self.style.trailer


def _records(block: bytes, plus_repeats: bool) -> bytes:
    """Rebuild each record of `block` from its tags (the record path)."""
    lines = block.split(b"\n")
    out: list[bytes] = []
    for i in range(0, len(lines) - 1, 4):
        h, s, q = lines[i], lines[i + 1], lines[i + 3]
        plus: bytes | None = None
        tab = h.find(b"\t")
        if tab < 0:
            header = h[1:]
        else:
            name, tail = h[1:tab], b""
            for tag in h[tab + 1 :].split(b"\t"):
                key, value = tag[:2], tag[5:]
                if key == b"CO":
                    tail = value
                elif key == b"zt":
                    tail = unescape(value)
                elif key == b"zn":
                    name = unescape(value)
                elif key == b"zc":
                    s = apply_case(s, value)
                elif key == b"zs":
                    s = unescape(value)
                elif key == b"zq":
                    q = unescape(value)
                elif key == b"zp":
                    plus = unescape(value)
            header = name + tail
        if plus is None:
            plus = header if plus_repeats else b""
        out += (b"@" + header, s, b"+" + plus, q)
    out.append(b"")
    return b"\n".join(out)


def decode_cram(
    cram: Path,
    recipe: Recipe,
    sinks: list[list[Sink]],
    *,
    cache: Path | None,
    threads: int = 0,
) -> None:
    """Decode `cram` to its original FASTQ file(s): each block of file i goes to `sinks[i]`."""
    with tempfile.TemporaryDirectory(prefix="wgsvault-fastq-") as d:
        fifos = [os.path.join(d, f"r{i}.fq") for i in range(len(recipe.files))]
        for f in fifos:
            os.mkfifo(f)
        errors: list[BaseException] = []
        fast = recipe.version >= 2 and not set(recipe.tags) - {"CO"}
        readers = [
            threading.Thread(target=_pump, args=(f, Decoder(style, fast), out, errors), daemon=True)
            for f, style, out in zip(fifos, recipe.files, sinks, strict=True)
        ]
        for t in readers:
            t.start()
        args = ["fastq", *recipe.fastq_args(), *recipe.output_args(fifos), str(cram)]
        proc = htslib.popen(args, cache=cache, stdout=subprocess.DEVNULL, threads=threads)
        _, err = proc.communicate()
        if proc.returncode != 0:
            for f, t in zip(fifos, readers, strict=True):
                _release(f, t)
        for t in readers:
            t.join()
        if proc.returncode != 0:
            raise IntegrityError(f"{cram}: restore failed: {htslib.first_error(err.decode())}")
        if errors:
            raise errors[0]


def _pump(fifo: str, dec: Decoder, sinks: list[Sink], errors: list[BaseException]) -> None:
    with open(fifo, "rb", buffering=0) as fh:
        with contextlib.suppress(OSError):  # fewer, larger writes from samtools: less switching
            fcntl.fcntl(fh.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        try:
            while data := fh.read(CHUNK):
                out = dec.feed(data)
                for sink in sinks:
                    sink(out)
            out = dec.finish()
            for sink in sinks:
                sink(out)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            errors.append(exc)
            while fh.read(CHUNK):  # drain, so that samtools does not block on a full FIFO
                pass


def _release(fifo: str, reader: threading.Thread) -> None:
    """Unblock a reader still waiting for a writer that will never come (samtools failed)."""
    while reader.is_alive():
        with contextlib.suppress(OSError):  # ENXIO: the reader has not opened its end yet
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(0.01)
