"""htsget over a running server, read by independent clients (Debian samtools, `htsget` client)."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pysam
import pytest

from wgsvault import access, audit
from wgsvault.serve import Settings, create_app

from served import Store, build_store, free_port, running


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = build_store(tmp_path_factory.mktemp("htsget"))
    port = free_port()
    store.base = f"http://127.0.0.1:{port}"
    settings = Settings(store.catalog.url, store.home, store.base, block_ttl=2)
    with running(create_app(settings), port):
        yield store
    store.catalog.close()


def _get(s: Store, path: str, who: str | None = "clinician", **params: object) -> httpx.Response:
    return s.get(path, who, **params)


def _fetch(s: Store, ticket: dict[str, Any]) -> bytes:
    return s.fetch(ticket)


def _names(path: Path, ref: Path, region: tuple[str, int, int] | None = None) -> list[str]:
    with pysam.AlignmentFile(str(path), reference_filename=str(ref)) as fh:
        it = fh.fetch(*region) if region else fh.fetch(until_eof=True)
        return [f"{r.query_name}/{r.flag}" for r in it]


def test_service_info(served: Store) -> None:
    info = _get(served, "/reads/service-info", who=None).json()
    assert info["type"] == {"group": "org.ga4gh", "artifact": "htsget", "version": "1.3.0"}
    assert info["htsget"]["formats"] == ["CRAM"]


def test_region_ticket_costs_only_its_containers(served: Store, tmp_path: Path) -> None:
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


def test_whole_file_and_header(served: Store) -> None:
    whole = _fetch(served, _get(served, "/reads/NGC1", format="CRAM").json())
    assert whole == served.cram.read_bytes()
    header = _fetch(
        served, _get(served, "/reads/NGC1", format="CRAM", **{"class": "header"}).json()
    )
    assert header.startswith(b"CRAM") and len(header) < 10_000


def test_post_with_regions(served: Store) -> None:
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


def test_variants_region(served: Store, tmp_path: Path) -> None:
    r = _get(served, "/variants/NGC1", format="VCF", referenceName="chrS", start=10000, end=20000)
    assert r.status_code == 200
    out = tmp_path / "v.vcf.gz"
    out.write_bytes(_fetch(served, r.json()))
    with pysam.VariantFile(str(out)) as got, pysam.VariantFile(str(served.vcf)) as want:
        have = {(v.pos, v.alts) for v in got}
        assert {(v.pos, v.alts) for v in want.fetch("chrS", 10000, 20000)} <= have


def test_debian_samtools_reads_the_ticket(
    served: Store, tmp_path: Path, system_samtools: str
) -> None:
    """samtools from Debian (its own htslib) follows the htsget ticket itself."""
    url = f"{served.base}/reads/NGC1?format=CRAM&referenceName=chrS&start=20000&end=21000"
    env = served.samtools_env(tmp_path, "clinician")
    res = subprocess.run(
        [system_samtools, "view", url], env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    recs = [ln.split("\t") for ln in res.stdout.splitlines()]
    got = [
        f"{f[0]}/{f[1]}"
        for f in recs
        if f[2] == "chrS" and int(f[3]) - 1 < 21000 and int(f[3]) - 1 + 150 > 20000
    ]
    want = subprocess.run(
        [system_samtools, "view", str(served.cram), "chrS:20001-21000"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert got == [f"{ln.split(chr(9))[0]}/{ln.split(chr(9))[1]}" for ln in want] and got


def test_htsget_python_client(served: Store, tmp_path: Path) -> None:
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
        ("stranger", None, 404, "NotFound"),  # no grant: as if the genome did not exist
    ],
)
def test_authentication_and_grants(
    served: Store, who: str | None, token: str | None, status: int, error: str
) -> None:
    headers = {}
    if who:
        headers["Authorization"] = f"Bearer {token or served.tokens[who]}"
    r = httpx.get(f"{served.base}/reads/NGC1?format=CRAM", headers=headers)
    assert r.status_code == status and r.json()["htsget"]["error"] == error


def test_expired_token(served: Store) -> None:
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


def test_region_grant(served: Store) -> None:
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
    assert _get(served, "/reads/NGC2", "researcher", format="CRAM").status_code == 404


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
def test_ids_never_reach_the_filesystem(served: Store, path: str) -> None:
    r = httpx.get(
        served.base + path + "?format=CRAM",
        headers={"Authorization": f"Bearer {served.tokens['clinician']}"},
    )
    assert r.status_code in (400, 404)
    assert r.json()["htsget"]["error"] in ("InvalidInput", "NotFound")


def test_block_urls_are_bound_and_expire(served: Store) -> None:
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


def test_unsupported_format_and_bad_range(served: Store) -> None:
    r = _get(served, "/reads/NGC1", format="BAM")
    assert r.status_code == 400 and r.json()["htsget"]["error"] == "UnsupportedFormat"
    r = _get(served, "/reads/NGC1", format="CRAM", referenceName="chrS", start=500, end=100)
    assert r.status_code == 400 and r.json()["htsget"]["error"] == "InvalidRange"
    r = _get(served, "/reads/NGC1", format="CRAM", start=5)
    assert r.status_code == 400 and r.json()["htsget"]["error"] == "InvalidInput"


def test_every_access_and_refusal_is_audited(served: Store) -> None:
    before = len(audit.show(served.catalog))
    _get(served, "/reads/NGC1", "stranger", format="CRAM")
    _fetch(
        served,
        _get(served, "/reads/NGC1", format="CRAM", referenceName="chrS", start=1, end=2).json(),
    )
    rows = audit.show(served.catalog)[before:]
    events = [(r["event"], r["detail"].get("kind"), r["detail"].get("error")) for r in rows]
    assert ("refuse", None, "NotFound") in events
    assert ("access", "ticket", None) in events and ("access", "block", None) in events
    assert audit.verify(served.catalog).ok


def test_restore_on_demand(served: Store) -> None:
    import gzip

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

    port = free_port()
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
