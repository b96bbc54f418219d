#!/usr/bin/env python3
"""htsget bench: ticket latency and region streaming over loopback, with concurrent clients.

A catalog holds one genome whose CRAM is the shared bench corpus (aligned, CRAM 3.1, indexed).
`wgsvault serve` runs as a real server process (uvicorn); clients are threads with their own
HTTP connections. Measured in one run:

* ticket latency (authenticate, authorise, index lookup, audit entry): p50/p95 for region tickets
  with 1, 4 and 16 concurrent clients;
* streaming: MB/s fetching ticket blocks (every block is authorised by its signature and
  audited), with 1 and 4 concurrent clients; the peer is Python's `http.server` serving the same
  file without any checks, measured in the same run;
* the cost of enforcing a region grant on the bytes (issue 10): a 10 kb region fetched end to end
  (ticket + every block) by a principal granted the whole genome (zero-copy byte ranges of the
  stored CRAM: whole containers) and by one granted only a region (a server-side slice of only
  the region's records, re-encoded by samtools), each a new region, and the same region again
  (the slice is cached): latency and bytes received.

Targets (issue 5): ticket p95 <= 20 ms, streaming >= 200 MB/s. Nothing is asserted.

    python bench/htsget.py [--shared ../shared/data] [--requests 400]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from wgsvault import access
from wgsvault.catalog import open_catalog
from wgsvault.codec import htslib
from wgsvault.codec.refs import Registry
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan

from loopback import free_port, wait_up

REPEATS = 20  # whole-file fetches per client
CONTIG = "chr20_9995001_11095000"


def run_clients(n: int, work) -> list[float]:  # type: ignore[no-untyped-def]
    out: list[float] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        with httpx.Client(timeout=60) as c:
            got = work(c, i)
        with lock:
            out.extend(got)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--catalog", help="catalog URL (default: a new SQLite file); e.g. PostgreSQL")
    a = ap.parse_args()
    bam, ref = a.shared / "bench" / "hsx.bam", a.shared / "real" / "chr20_region.fa"
    if not bam.exists():
        raise SystemExit(f"{a.shared}: shared data absent; nothing to measure")
    rows = []
    with tempfile.TemporaryDirectory(prefix="wgsvault-bench-htsget-") as tmpd:
        d = Path(tmpd)
        home = d / "home"
        nat = d / "estate" / "national" / "HSX1"
        nat.mkdir(parents=True)
        cram = nat / "HSX1.cram"
        htslib.run(
            [
                "view",
                "-C",
                "-T",
                str(ref),
                "-O",
                "cram,version=3.1,small",
                "-o",
                str(cram),
                str(bam),
            ],
            cache=None,
            what="bench",
        )
        htslib.run(["index", str(cram)], cache=None, what="bench")
        url = a.catalog or f"sqlite:///{home / 'catalog.sqlite'}"
        cat = open_catalog(url)
        scan(cat, [str(d / "estate")], DEFAULT_LAYOUT)
        access.add_principal(cat, "bench")
        token = access.issue_token(cat, "bench")
        access.add_grant(cat, "bench", genomes=["HSX1"], granted_by="bench")
        access.add_principal(cat, "bench-region")
        region_token = access.issue_token(cat, "bench-region")
        access.add_grant(cat, "bench-region", genomes=["HSX1"], region=CONTIG, granted_by="bench")
        Registry(cat, home / "refs").add(ref, "chr20-region")  # slices are encoded with it
        cat.close()
        for processes in (1, 2):
            rows += [
                (f"[{processes} process(es)] {m}", r, n)
                for m, r, n in measure(home, url, token, cram, a.requests, processes)
            ]
        rows += slicing(home, url, token, region_token, max(20, a.requests // 10))
        shutil.rmtree(home, ignore_errors=True)
    backend = (a.catalog or "sqlite").split(":")[0]
    table = Table(title=f"htsget on loopback ({os.cpu_count()} cores, {backend} catalog)")
    for col in ("measure", "result", "note"):
        table.add_column(col)
    for r in rows:
        table.add_row(*r)
    table.caption = "targets: ticket p95 <= 20 ms; streaming >= 200 MB/s"
    Console().print(table)


def measure(
    home: Path, url: str, token: str, cram: Path, requests: int, processes: int
) -> list[tuple[str, str, str]]:
    """All figures against one `wgsvault serve --processes N` (and the static peer)."""
    rows = []
    nat = cram.parent
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "WGSVAULT_HOME": str(home), "WGSVAULT_CATALOG": url}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wgsvault",
            "serve",
            "--port",
            str(port),
            "--processes",
            str(processes),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    static_port = free_port()
    static = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(static_port), "--bind", "127.0.0.1"],
        cwd=nat,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_up(f"{base}/reads/service-info")
        wait_up(f"http://127.0.0.1:{static_port}/")
        h = {"Authorization": f"Bearer {token}"}
        span = 1_100_000
        for clients in (1, 4, 16):
            per = max(1, requests // clients)

            def tickets(c: httpx.Client, i: int, per: int = per) -> list[float]:
                rng = random.Random(i)
                lat = []
                for _ in range(per):
                    s = rng.randrange(0, span - 10_000)
                    t0 = time.perf_counter()
                    r = c.get(
                        f"{base}/reads/HSX1",
                        params={
                            "format": "CRAM",
                            "referenceName": "chr20_9995001_11095000",
                            "start": s,
                            "end": s + 10_000,
                        },
                        headers=h,
                    )
                    lat.append(time.perf_counter() - t0)
                    assert r.status_code == 200, r.text
                return lat

            t0 = time.perf_counter()
            lat = sorted(run_clients(clients, tickets))
            wall = time.perf_counter() - t0
            p50 = statistics.median(lat) * 1000
            p95 = lat[int(0.95 * (len(lat) - 1))] * 1000
            rows.append(
                (
                    f"region ticket, {clients} client(s)",
                    f"p50 {p50:.1f} ms, p95 {p95:.1f} ms",
                    f"{len(lat) / wall:,.0f} tickets/s",
                )
            )
        whole = httpx.get(f"{base}/reads/HSX1", params={"format": "CRAM"}, headers=h).json()
        blocks = [u["url"] for u in whole["htsget"]["urls"] if not u["url"].startswith("data:")]
        size = cram.stat().st_size
        for clients in (1, 4):
            for label, urls in (
                ("wgsvault blocks (signed, audited)", blocks),
                (
                    "peer: python http.server, same file",
                    [f"http://127.0.0.1:{static_port}/HSX1.cram"],
                ),
            ):

                def fetch(c: httpx.Client, i: int, urls: list[str] = urls) -> list[float]:
                    n = 0
                    for _ in range(REPEATS):
                        for u in urls:
                            with c.stream("GET", u) as r:
                                for chunk in r.iter_bytes(1 << 20):
                                    n += len(chunk)
                    return [n]

                t0 = time.perf_counter()
                total = sum(run_clients(clients, fetch))
                wall = time.perf_counter() - t0
                rows.append(
                    (
                        f"stream: {label}, {clients} client(s)",
                        f"{total / wall / 1e6:,.0f} MB/s",
                        f"{total / 1e6:,.0f} MB in {wall:.1f} s ({size / 1e6:.1f} MB file)",
                    )
                )
    finally:
        server.terminate()
        static.terminate()
        server.wait(10)
        static.wait(10)
    return rows


def slicing(
    home: Path, url: str, whole: str, limited: str, requests: int
) -> list[tuple[str, str, str]]:
    """A 10 kb region end to end (ticket + blocks): whole-genome grant vs region grant."""
    rows = []
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "WGSVAULT_HOME": str(home), "WGSVAULT_CATALOG": url}
    server = subprocess.Popen(
        [sys.executable, "-m", "wgsvault", "serve", "--port", str(port), "--processes", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_up(f"{base}/reads/service-info")
        for clients in (1, 4):
            for label, token, fresh in (
                ("whole-genome grant: byte ranges of the stored CRAM", whole, True),
                ("region grant: server-side slice, new region each time", limited, True),
                ("region grant: the same region again (slice cached)", limited, False),
            ):
                per = max(1, requests // clients)

                def fetch(c: httpx.Client, i: int, token: str = token, fresh: bool = fresh,
                          per: int = per) -> list[float]:  # fmt: skip
                    rng = random.Random(1000 * per + i)
                    out = []
                    for _ in range(per):
                        s = rng.randrange(0, 1_090_000) if fresh else 500_000
                        t0 = time.perf_counter()
                        r = c.get(
                            f"{base}/reads/HSX1",
                            params={"referenceName": CONTIG, "start": s, "end": s + 10_000},
                            headers={"Authorization": f"Bearer {token}"},
                        )
                        assert r.status_code == 200, r.text
                        n = 0
                        for u in r.json()["htsget"]["urls"]:
                            if not u["url"].startswith("data:"):
                                n += len(c.get(u["url"]).content)
                        out += [time.perf_counter() - t0, n]
                    return out

                got = run_clients(clients, fetch)
                lat = sorted(got[0::2])
                p50 = statistics.median(lat) * 1000
                p95 = lat[int(0.95 * (len(lat) - 1))] * 1000
                mean_bytes = statistics.mean(got[1::2])
                rows.append(
                    (
                        f"10 kb region end to end, {label}, {clients} client(s)",
                        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms",
                        f"{mean_bytes / 1e3:,.1f} kB received per region",
                    )
                )
    finally:
        server.terminate()
        server.wait(10)
    return rows


if __name__ == "__main__":
    main()
