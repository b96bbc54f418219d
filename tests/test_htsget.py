"""htsget over a running server, read by independent clients (Debian samtools, `htsget` client)."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pysam
import pytest
import uvicorn

from wgsvault import access, audit
from wgsvault.catalog import Catalog, open_catalog
from wgsvault.catalog.manifest import import_manifest
from wgsvault.codec import htslib
from wgsvault.demo.synth import write_genome, write_reference
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan
from wgsvault.serve import Settings, create_app

SYSTEM_SAMTOOLS = shutil.which("samtools")


@dataclass
class Served:
    base: str
    catalog: Catalog
    cram: Path
    vcf: Path
    ref: Path
    tokens: dict[str, str]
    home: Path
    fastqs: list[Path]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    d = tmp_path_factory.mktemp("htsget")
    ref = write_reference(d / "ref" / "ref.fa", seed=41, length=60_000)
    g = write_genome(d / "work", "NGC1", ref, seed=41, n_pairs=3000)
    nat = d / "estate" / "national" / "NGC1"
    nat.mkdir(parents=True)
    cram = nat / "NGC1.cram"
    # small slices, so that a region costs only some containers
    htslib.run(
        [
            "view",
            "-C",
            "-T",
            str(ref),
            "--output-fmt-option",
            "seqs_per_slice=300",
            "-o",
            str(cram),
            str(g.bam),
        ],
        cache=None,
        what="test",
    )
    htslib.run(["index", str(cram)], cache=None, what="test")
    for p in (g.vcf, Path(f"{g.vcf}.tbi")):
        shutil.copy(p, nat / p.name)
    from wgsvault.codec.covers import verify_covers

    with htslib.reference_env(None):
        rep = verify_covers(
            [g.fastq_r1, g.fastq_r2],
            cram,
            reference=ref,
            sidecar=nat / "NGC1.fastq.wgsvault-sidecar",
        )
    assert rep.covered
    (d / "estate" / "region-east" / "NGC2").mkdir(parents=True)
    shutil.copy(cram, d / "estate" / "region-east" / "NGC2" / "NGC2.cram")
    manifest = d / "manifest.csv"
    manifest.write_text("genome_id,patient_group\nNGC1,rare disease\nNGC2,neonatal\n")
    home = d / "home"
    cat = open_catalog(f"sqlite:///{home / 'catalog.sqlite'}")
    import_manifest(cat, manifest)
    scan(cat, [str(d / "estate")], DEFAULT_LAYOUT)
    tokens = {}
    for name in ("clinician", "researcher", "stranger"):
        access.add_principal(cat, name)
        tokens[name] = access.issue_token(cat, name)
    access.add_grant(cat, "clinician", patient_group="rare disease", granted_by="steward")
    access.add_grant(
        cat,
        "researcher",
        genomes=["NGC1"],
        region="chrS:10001-20000",
        granted_by="steward",
        project="P-1",
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(Settings(cat.url, home, base, block_ttl=2))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    yield Served(base, cat, cram, nat / g.vcf.name, ref, tokens, home, [g.fastq_r1, g.fastq_r2])
    server.should_exit = True
    thread.join(5)
    cat.close()


def _get(s: Served, path: str, who: str | None = "clinician", **params: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {s.tokens[who]}"} if who else {}
    return httpx.get(f"{s.base}{path}", params=params, headers=headers, timeout=30)


def _fetch(s: Served, ticket: dict) -> bytes:  # type: ignore[type-arg]
    out = b""
    for u in ticket["htsget"]["urls"]:
        if u["url"].startswith("data:"):
            out += base64.b64decode(u["url"].split(",", 1)[1])
        else:
            r = httpx.get(u["url"], timeout=30)
            assert r.status_code == 200, r.text
            out += r.content
    return out


def _names(path: Path, ref: Path, region: tuple[str, int, int] | None = None) -> list[str]:
    with pysam.AlignmentFile(str(path), reference_filename=str(ref)) as fh:
        it = fh.fetch(*region) if region else fh.fetch(until_eof=True)
        return [f"{r.query_name}/{r.flag}" for r in it]


def test_service_info(served: Served) -> None:
    info = _get(served, "/reads/service-info", who=None).json()
    assert info["type"] == {"group": "org.ga4gh", "artifact": "htsget", "version": "1.3.0"}
    assert info["htsget"]["formats"] == ["CRAM"]


def test_region_ticket_costs_only_its_containers(served: Served, tmp_path: Path) -> None:
    r = _get(served, "/reads/NGC1", format="CRAM", referenceName="chrS", start=30000, end=31000)
    assert r.status_code == 200 and r.headers["content-type"].startswith(
        "application/vnd.ga4gh.htsget"
    )
    data = _fetch(served, r.json())
    assert len(data) < served.cram.stat().st_size / 3
    got = tmp_path / "region.cram"
    got.write_bytes(data)
    inside = [
        n
        for n, rec in zip(
            _names(got, served.ref),
            pysam.AlignmentFile(str(got), reference_filename=str(served.ref)),
            strict=True,
        )
        if rec.reference_end and rec.reference_start < 31000 and rec.reference_end > 30000
    ]
    assert inside == _names(served.cram, served.ref, ("chrS", 30000, 31000))


def test_whole_file_and_header(served: Served) -> None:
    whole = _fetch(served, _get(served, "/reads/NGC1", format="CRAM").json())
    assert whole == served.cram.read_bytes()
    header = _fetch(
        served, _get(served, "/reads/NGC1", format="CRAM", **{"class": "header"}).json()
    )
    assert header.startswith(b"CRAM") and len(header) < 10_000


def test_post_with_regions(served: Served) -> None:
    body = {
        "format": "CRAM",
        "regions": [
            {"referenceName": "chrS", "start": 100, "end": 200},
            {"referenceName": "chrS", "start": 50000, "end": 50100},
        ],
    }
    r = httpx.post(
        f"{served.base}/reads/NGC1",
        json=body,
        headers={"Authorization": f"Bearer {served.tokens['clinician']}"},
    )
    assert r.status_code == 200
    ranges = [u for u in r.json()["htsget"]["urls"] if not u["url"].startswith("data:")]
    assert ranges[0]["class"] == "header" and len(ranges) >= 2


def test_variants_region(served: Served, tmp_path: Path) -> None:
    r = _get(served, "/variants/NGC1", format="VCF", referenceName="chrS", start=10000, end=20000)
    assert r.status_code == 200
    out = tmp_path / "v.vcf.gz"
    out.write_bytes(_fetch(served, r.json()))
    with pysam.VariantFile(str(out)) as got, pysam.VariantFile(str(served.vcf)) as want:
        have = {(v.pos, v.alts) for v in got}
        assert {(v.pos, v.alts) for v in want.fetch("chrS", 10000, 20000)} <= have


@pytest.mark.skipif(SYSTEM_SAMTOOLS is None, reason="Debian samtools not installed")
def test_debian_samtools_reads_the_ticket(served: Served, tmp_path: Path) -> None:
    """samtools from Debian (its own htslib) follows the htsget ticket itself."""
    auth = tmp_path / "token"
    auth.write_text(served.tokens["clinician"])
    url = f"{served.base}/reads/NGC1?format=CRAM&referenceName=chrS&start=20000&end=21000"
    env = {
        "HTS_AUTH_LOCATION": str(auth),
        # htslib sends a bearer token over plain http (loopback here) only when told to
        "HTS_ALLOW_UNENCRYPTED_AUTHORIZATION_HEADER": "I understand the risks",
        "REF_PATH": f"{served.ref.parent}/%s",
        "PATH": "/usr/bin:/bin",
    }
    # the reference for decoding: a local REF_PATH by M5 (no network)
    m5dir = served.ref.parent
    with pysam.FastaFile(str(served.ref)) as fa:
        import hashlib

        seq = fa.fetch(fa.references[0]).upper()
        (m5dir / hashlib.md5(seq.encode()).hexdigest()).write_text(seq)
    res = subprocess.run(
        [SYSTEM_SAMTOOLS, "view", url], env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    recs = [ln.split("\t") for ln in res.stdout.splitlines()]
    got = [
        f"{f[0]}/{f[1]}"
        for f in recs
        if f[2] == "chrS" and int(f[3]) - 1 < 21000 and int(f[3]) - 1 + 150 > 20000
    ]
    want = subprocess.run(
        [SYSTEM_SAMTOOLS, "view", str(served.cram), "chrS:20001-21000"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert got == [f"{ln.split(chr(9))[0]}/{ln.split(chr(9))[1]}" for ln in want] and got


def test_htsget_python_client(served: Served, tmp_path: Path) -> None:
    import htsget

    whole = tmp_path / "whole.cram"
    with open(whole, "wb") as fh:
        htsget.get(
            f"{served.base}/reads/NGC1",
            fh,
            data_format="CRAM",
            bearer_token=served.tokens["clinician"],
        )
    assert whole.read_bytes() == served.cram.read_bytes()
    part = tmp_path / "part.cram"
    with open(part, "wb") as fh:
        htsget.get(
            f"{served.base}/reads/NGC1",
            fh,
            data_format="CRAM",
            reference_name="chrS",
            start=40000,
            end=41000,
            bearer_token=served.tokens["clinician"],
        )
    ticket = _get(
        served, "/reads/NGC1", format="CRAM", referenceName="chrS", start=40000, end=41000
    ).json()
    assert part.read_bytes() == _fetch(served, ticket)


@pytest.mark.parametrize(
    ("who", "token", "status", "error"),
    [
        (None, None, 401, "InvalidAuthentication"),
        ("x", "wgv_not-a-token", 401, "InvalidAuthentication"),
        ("stranger", None, 403, "PermissionDenied"),
    ],
)
def test_authentication_and_grants(
    served: Served, who: str | None, token: str | None, status: int, error: str
) -> None:
    headers = {}
    if who:
        headers["Authorization"] = f"Bearer {token or served.tokens[who]}"
    r = httpx.get(f"{served.base}/reads/NGC1?format=CRAM", headers=headers)
    assert r.status_code == status and r.json()["htsget"]["error"] == error


def test_expired_token(served: Served) -> None:
    import datetime as dt

    tok = access.issue_token(served.catalog, "clinician", expires_in=dt.timedelta(seconds=1))
    assert (
        httpx.get(
            f"{served.base}/reads/NGC1?format=CRAM", headers={"Authorization": f"Bearer {tok}"}
        ).status_code
        == 200
    )
    time.sleep(1.2)
    r = httpx.get(
        f"{served.base}/reads/NGC1?format=CRAM", headers={"Authorization": f"Bearer {tok}"}
    )
    assert r.status_code == 401


def test_region_grant(served: Served) -> None:
    assert (
        _get(
            served,
            "/reads/NGC1",
            "researcher",
            format="CRAM",
            referenceName="chrS",
            start=12000,
            end=13000,
        ).status_code
        == 200
    )
    assert (
        _get(
            served,
            "/reads/NGC1",
            "researcher",
            format="CRAM",
            referenceName="chrS",
            start=19000,
            end=25000,
        ).status_code
        == 403
    )
    assert _get(served, "/reads/NGC1", "researcher", format="CRAM").status_code == 403
    assert _get(served, "/reads/NGC2", "researcher", format="CRAM").status_code == 403


@pytest.mark.parametrize(
    "path",
    [
        "/reads/..%2F..%2Fetc%2Fpasswd",
        "/reads/%2Fetc%2Fpasswd",
        "/reads/../../etc/passwd",
        "/reads/NGC1%2F..%2F..",
        "/reads/.hidden",
        "/reads/NGC999",
    ],
)
def test_ids_never_reach_the_filesystem(served: Served, path: str) -> None:
    r = httpx.get(
        served.base + path + "?format=CRAM",
        headers={"Authorization": f"Bearer {served.tokens['clinician']}"},
    )
    assert r.status_code in (400, 404)
    assert r.json()["htsget"]["error"] in ("InvalidInput", "NotFound")


def test_block_urls_are_bound_and_expire(served: Served) -> None:
    t = _get(served, "/reads/NGC1", format="CRAM").json()
    url = next(u["url"] for u in t["htsget"]["urls"] if not u["url"].startswith("data:"))
    assert served.tokens["clinician"] not in url
    body, mac = url.rsplit("/", 1)[1].split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["e"] += 1000  # another range
    forged = (
        base64.urlsafe_b64encode(
            json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    r = httpx.get(url.rsplit("/", 1)[0] + f"/{forged}.{mac}")
    assert r.status_code == 401
    assert httpx.get(url).status_code == 200
    time.sleep(3)  # block_ttl=2 in this server
    r = httpx.get(url)
    assert r.status_code == 401 and "expired" in r.json()["htsget"]["message"]


def test_unsupported_format_and_bad_range(served: Served) -> None:
    r = _get(served, "/reads/NGC1", format="BAM")
    assert r.status_code == 400 and r.json()["htsget"]["error"] == "UnsupportedFormat"
    r = _get(served, "/reads/NGC1", format="CRAM", referenceName="chrS", start=500, end=100)
    assert r.status_code == 400 and r.json()["htsget"]["error"] == "InvalidRange"
    r = _get(served, "/reads/NGC1", format="CRAM", start=5)
    assert r.status_code == 400 and r.json()["htsget"]["error"] == "InvalidInput"


def test_every_access_and_refusal_is_audited(served: Served) -> None:
    before = len(audit.show(served.catalog))
    _get(served, "/reads/NGC1", "stranger", format="CRAM")
    _fetch(
        served,
        _get(served, "/reads/NGC1", format="CRAM", referenceName="chrS", start=1, end=2).json(),
    )
    rows = audit.show(served.catalog)[before:]
    events = [(r["event"], r["detail"].get("kind"), r["detail"].get("error")) for r in rows]
    assert ("refuse", None, "PermissionDenied") in events
    assert ("access", "ticket", None) in events and ("access", "block", None) in events
    assert audit.verify(served.catalog).ok


def test_restore_on_demand(served: Served) -> None:
    import gzip

    from wgsvault.codec.refs import Registry

    Registry(served.catalog, served.home / "refs").add(served.ref, "synth41")
    h = {"Authorization": f"Bearer {served.tokens['clinician']}"}
    r = httpx.post(f"{served.base}/restore/NGC1", headers=h, timeout=120)
    assert r.status_code == 200, r.text
    files = r.json()["restore"]["files"]
    assert [f["name"] for f in files] == ["NGC1_R1.fastq.gz", "NGC1_R2.fastq.gz"]
    for f, original in zip(files, served.fastqs, strict=True):
        got = gzip.decompress(httpx.get(f["url"], timeout=60).content).decode().splitlines()
        want = gzip.decompress(original.read_bytes()).decode().splitlines()
        as_records = lambda lines: sorted(tuple(lines[i : i + 4]) for i in range(0, len(lines), 4))  # noqa: E731
        assert as_records(got) == as_records(want)  # every record, in canonical order
    h2 = {"Authorization": f"Bearer {served.tokens['researcher']}"}
    assert (
        httpx.post(f"{served.base}/restore/NGC1", headers=h2).status_code == 403
    )  # region grant only
    assert any(e["event"] == "restore" for e in audit.show(served.catalog, genome="NGC1"))


def test_serve_command_runs_and_stops(tmp_path: Path) -> None:
    """`wgsvault serve --processes 2`: both processes answer; stopping the main one ends both."""
    import os
    import sys

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WGSVAULT_")}
    env["WGSVAULT_HOME"] = str(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wgsvault", "serve", "--port", str(port), "--processes", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(200):
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/reads/service-info", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        assert r.status_code == 200
        r = httpx.get(f"http://127.0.0.1:{port}/reads/NGC1?format=CRAM")
        assert r.status_code == 401 and r.json()["htsget"]["error"] == "InvalidAuthentication"
    finally:
        proc.terminate()
        proc.wait(15)
        proc.stderr.close()  # type: ignore[union-attr]
    for _ in range(100):  # the second process ends too (graceful shutdown takes a moment)
        try:
            httpx.get(f"http://127.0.0.1:{port}/reads/service-info", timeout=1)
        except httpx.ConnectError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("a server process outlived `wgsvault serve`")
