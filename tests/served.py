"""A small national store behind a running htsget service, for the server tests.

`build_store` writes one synthetic genome (NGC1: a CRAM cut into small containers, its index,
VCF + tabix, the FASTQ sidecar) into `national/`, a copy of its CRAM as region-east's NGC2, a
catalog that knows them, the reference in the registry, and three principals with tokens:
`clinician` (patient group "rare disease": NGC1 whole), `researcher` (NGC1, region
chrS:10001-20000 only) and `stranger` (no grant). `running` serves an app with uvicorn in a
thread of the test process.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pysam
import uvicorn
from fastapi import FastAPI

from wgsvault import access
from wgsvault.catalog import Catalog, open_catalog
from wgsvault.catalog.manifest import import_manifest
from wgsvault.codec import htslib
from wgsvault.codec.covers import verify_covers
from wgsvault.codec.refs import Registry
from wgsvault.demo.synth import write_genome, write_reference
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan

REGION = "chrS:10001-20000"  # the researcher's grant


@dataclass
class Store:
    root: Path
    catalog: Catalog
    cram: Path
    vcf: Path
    ref: Path
    tokens: dict[str, str]
    home: Path
    fastqs: list[Path]
    base: str = ""
    app: Any = field(default=None, repr=False)

    def headers(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}

    def get(self, path: str, who: str | None = "clinician", **params: object) -> httpx.Response:
        return httpx.get(f"{self.base}{path}", params=params, headers=self.headers(who), timeout=60)

    def client_get(self, endpoint: str, out: Path, who: str, **region: Any) -> None:
        """`out` written by the PyPI `htsget` client (an independent implementation)."""
        import htsget

        fmt = "CRAM" if endpoint == "reads" else "VCF"
        with open(out, "wb") as fh:
            htsget.get(f"{self.base}/{endpoint}/NGC1", fh, data_format=fmt,
                       bearer_token=self.tokens[who], **region)  # fmt: skip

    def samtools_env(self, tmp: Path, who: str) -> dict[str, str]:
        """Environment for Debian's samtools to follow tickets as `who`: the token, plain http
        on loopback, and the reference by M5 in a local REF_PATH (no network)."""
        auth = tmp / "token"
        auth.write_text(self.tokens[who])
        refs = tmp / "m5"
        refs.mkdir(exist_ok=True)
        with pysam.FastaFile(str(self.ref)) as fa:
            seq = fa.fetch(fa.references[0]).upper()
        (refs / hashlib.md5(seq.encode()).hexdigest()).write_text(seq)
        return {
            "HTS_AUTH_LOCATION": str(auth),
            # htslib sends a bearer token over plain http (loopback here) only when told to
            "HTS_ALLOW_UNENCRYPTED_AUTHORIZATION_HEADER": "I understand the risks",
            "REF_PATH": f"{refs}/%s",
            "PATH": "/usr/bin:/bin",
        }

    def fetch(self, ticket: dict[str, Any]) -> bytes:
        out = b""
        for u in ticket["htsget"]["urls"]:
            if u["url"].startswith("data:"):
                out += base64.b64decode(u["url"].split(",", 1)[1])
            else:
                r = httpx.get(u["url"], timeout=60)
                assert r.status_code == 200, r.text
                out += r.content
        return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_store(d: Path) -> Store:
    ref = write_reference(d / "ref" / "ref.fa", seed=41, length=60_000)
    g = write_genome(d / "work", "NGC1", ref, seed=41, n_pairs=3000)
    nat = d / "estate" / "national" / "NGC1"
    nat.mkdir(parents=True)
    cram = nat / "NGC1.cram"
    # small containers, so that a region costs only some of them
    opts = ["--output-fmt-option", "seqs_per_slice=300"]
    htslib.run(["view", "-C", "-T", str(ref), *opts, "-o", str(cram), str(g.bam)], cache=None,
               what="test")  # fmt: skip
    htslib.run(["index", str(cram)], cache=None, what="test")
    for p in (g.vcf, Path(f"{g.vcf}.tbi")):
        shutil.copy(p, nat / p.name)
    with htslib.reference_env(None):
        sidecar = nat / "NGC1.fastq.wgsvault-sidecar"
        rep = verify_covers([g.fastq_r1, g.fastq_r2], cram, reference=ref, sidecar=sidecar)
    assert rep.covered
    east = d / "estate" / "region-east" / "NGC2"
    east.mkdir(parents=True)
    shutil.copy(cram, east / "NGC2.cram")
    shutil.copy(Path(f"{cram}.crai"), east / "NGC2.cram.crai")
    shutil.copy(nat / "NGC1.fastq.wgsvault-sidecar", east / "NGC2.fastq.wgsvault-sidecar")
    manifest = d / "manifest.csv"
    manifest.write_text("genome_id,patient_group\nNGC1,rare disease\nNGC2,neonatal\n")
    home = d / "home"
    cat = open_catalog(f"sqlite:///{home / 'catalog.sqlite'}")
    Registry(cat, home / "refs").add(ref, "synth41")  # slices are encoded with it
    import_manifest(cat, manifest)
    scan(cat, [str(d / "estate")], DEFAULT_LAYOUT)
    tokens = {}
    for name in ("clinician", "researcher", "stranger"):
        access.add_principal(cat, name)
        tokens[name] = access.issue_token(cat, name)
    access.add_grant(cat, "clinician", patient_group="rare disease", granted_by="steward")
    access.add_grant(
        cat, "researcher", genomes=["NGC1"], region=REGION, granted_by="steward", project="P-1"
    )
    return Store(d, cat, cram, nat / g.vcf.name, ref, tokens, home, [g.fastq_r1, g.fastq_r2])


@contextmanager
def running(app: FastAPI, port: int) -> Iterator[uvicorn.Server]:
    """`app` served on 127.0.0.1:`port` until the block ends (lifespan included)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(10)
