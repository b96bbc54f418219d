"""The access service tried as an attacker would: each finding of the review (issue 10), replayed.

1. A region grant gives only the records of the region, never the stored file's bytes around
   them, nor a header with server paths (reads and variants; Debian samtools and the PyPI client
   decode what a region-limited principal receives).
2. Block and restore URLs die with the authority they were issued under.
3. Work is bounded before and after authentication (body size and depth, regions, slow slicing
   off the event loop, restores shared and limited, scratch reaped).
4. Every parameter is validated (400, never 500), and every refusal is audited once.
5. No caching, no token material, no Host-header redirects, 405s, and anonymous refusals that
   cannot flood the audit log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pysam
import pytest

from wgsvault import access, audit
from wgsvault.codec import slice as codec_slice
from wgsvault.serve import Settings, create_app
from wgsvault.serve import restore as serve_restore
from wgsvault.serve.params import Limits

from served import REGION, Store, build_store, free_port, running

G_LO, G_HI = 10000, 20000  # the researcher's grant, htsget coordinates


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = build_store(tmp_path_factory.mktemp("security"))
    access.add_grant(s.catalog, "clinician", genomes=["NGC2"], granted_by="steward")
    port = free_port()
    s.base = f"http://127.0.0.1:{port}"
    settings = Settings(
        s.catalog.url,
        s.home,
        s.base,
        block_ttl=120,
        refusal_window=3600,
        reap_every=3600,
        restores_per_principal=1,
        restores_total=2,
    )
    s.app = create_app(settings)
    with running(s.app, port):
        yield s
    s.catalog.close()


def _principal(s: Store, name: str, **grant: Any) -> str:
    access.add_principal(s.catalog, name)
    access.add_grant(s.catalog, name, granted_by="steward", **grant)
    token = access.issue_token(s.catalog, name)
    s.tokens[name] = token
    return token


def _block_urls(ticket: dict[str, Any]) -> list[str]:
    return [u["url"] for u in ticket["htsget"]["urls"] if not u["url"].startswith("data:")]


def _refusals(s: Store, actor: str) -> list[dict[str, Any]]:
    return [e for e in audit.show(s.catalog, event="refuse") if e["actor"] == actor]


# ----------------------------------------------------------------------------- 1. on the bytes


def _cigar_end(pos: int, cigar: str) -> int:
    return pos + sum(int(n) for n, op in re.findall(r"(\d+)([MDN=X])", cigar))


def test_region_grant_serves_only_the_region_reads(store: Store, tmp_path: Path) -> None:
    """The original finding: 101 bases granted, 973 reads (the whole file) given away."""
    lo, hi = 15000, 15101
    t = store.get("/reads/NGC1", "researcher", referenceName="chrS", start=lo, end=hi)
    assert t.status_code == 200, t.text
    assert t.json()["htsget"]["urls"][0]["url"].startswith(store.base + "/blocks/")
    data = store.fetch(t.json())
    got = tmp_path / "slice.cram"
    got.write_bytes(data)
    with pysam.AlignmentFile(str(got), reference_filename=str(store.ref)) as fh:
        header = str(fh.header)
        recs = list(fh)
    with pysam.AlignmentFile(str(store.cram), reference_filename=str(store.ref)) as fh:
        want = sorted(f"{r.query_name}/{r.flag}" for r in fh.fetch("chrS", lo, hi))
    with pysam.AlignmentFile(str(store.cram), reference_filename=str(store.ref)) as fh:
        total = sum(1 for _ in fh.fetch(until_eof=True))
    assert recs and len(recs) < total / 10
    assert all(r.reference_start < hi and r.reference_end > lo for r in recs)
    assert sorted(f"{r.query_name}/{r.flag}" for r in recs) == want
    assert "@PG" not in header and "UR:" not in header and "@CO" not in header


def test_debian_samtools_decodes_only_the_granted_region(
    store: Store, tmp_path: Path, system_samtools: str
) -> None:
    env = store.samtools_env(tmp_path, "researcher")
    lo, hi = 12000, 12500
    url = f"{store.base}/reads/NGC1?format=CRAM&referenceName=chrS&start={lo}&end={hi}"
    res = subprocess.run(
        [system_samtools, "view", "-h", url], env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    header = [ln for ln in lines if ln.startswith("@")]
    records = [ln.split("\t") for ln in lines if not ln.startswith("@")]
    assert records
    for f in records:  # every record overlaps the request (and so the grant)
        pos = int(f[3]) - 1
        assert pos < hi and _cigar_end(pos, f[5]) > lo, f[:6]
    assert not any("UR:" in h or h.startswith("@CO") for h in header)
    assert not any(h.startswith("@PG") and "wgsvault" in h for h in header)  # only samtools' own
    outside = subprocess.run(
        [system_samtools, "view", url.replace(f"start={lo}&end={hi}", "start=1&end=500")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert outside.returncode != 0  # outside the grant: refused, nothing decoded
    assert outside.stdout == ""


def test_htsget_client_gets_a_slice(store: Store, tmp_path: Path) -> None:
    part = tmp_path / "part.cram"
    store.client_get("reads", part, "researcher", reference_name="chrS", start=19000, end=20000)
    with pysam.AlignmentFile(str(part), reference_filename=str(store.ref)) as fh:
        recs = list(fh)
    assert recs and all(r.reference_start < 20000 and r.reference_end > 19000 for r in recs)


def test_region_grant_variants_only_in_the_region(store: Store, tmp_path: Path) -> None:
    lo, hi = 14000, 14100
    with pysam.VariantFile(str(store.vcf)) as v:
        want = [(r.pos, r.alts) for r in v.fetch("chrS", lo, hi)]
        everything = sum(1 for _ in v.fetch())
    t = store.get("/variants/NGC1", "researcher", referenceName="chrS", start=lo, end=hi)
    assert t.status_code == 200, t.text
    out = tmp_path / "v.vcf.gz"
    out.write_bytes(store.fetch(t.json()))
    with pysam.VariantFile(str(out)) as got:
        recs = [(r.pos, r.alts) for r in got]
        header = str(got.header)
    assert recs == want and len(recs) < everything
    assert all(lo < pos <= hi for pos, _ in recs)
    assert "Command" not in header and "##reference" not in header
    part = tmp_path / "client.vcf.gz"
    store.client_get("variants", part, "researcher", reference_name="chrS", start=lo, end=hi)
    with pysam.VariantFile(str(part)) as got:
        assert [(r.pos, r.alts) for r in got] == want


def test_region_principal_header_has_no_server_paths(store: Store, tmp_path: Path) -> None:
    t = store.get("/reads/NGC1", "researcher", format="CRAM", **{"class": "header"})
    assert t.status_code == 200, t.text
    hdr = tmp_path / "h.cram"
    hdr.write_bytes(store.fetch(t.json()))
    with pysam.AlignmentFile(str(hdr), reference_filename=str(store.ref)) as fh:
        text = str(fh.header)
        assert list(fh) == []
    assert "@SQ\tSN:chrS" in text and "@RG" in text
    assert str(store.root) not in text and "@PG" not in text and "UR:" not in text
    # the whole file stays refused, and a genome outside the grant is unknown to it
    assert store.get("/reads/NGC1", "researcher", format="CRAM").status_code == 403
    assert store.get("/reads/NGC2", "researcher", format="CRAM").status_code == 404


# ------------------------------------------------------------------------ 2. live authorisation


@pytest.mark.parametrize("revoke", ["token", "principal", "grant"])
def test_block_urls_die_with_their_authority(store: Store, revoke: str) -> None:
    name = f"revoke-{revoke}"
    token = _principal(store, name, genomes=["NGC1"])
    t = store.get("/reads/NGC1", name, format="CRAM", referenceName="chrS", start=0, end=5000)
    url = _block_urls(t.json())[0]
    assert httpx.get(url).status_code == 200
    if revoke == "token":
        access.revoke_token(store.catalog, token)
    elif revoke == "principal":
        access.disable_principal(store.catalog, name)
    else:
        (g,) = access.list_grants(store.catalog, name)
        access.revoke_grant(store.catalog, g.id)
    r = httpx.get(url)  # replayed, without any Authorization header
    assert r.status_code == (403 if revoke == "grant" else 401)
    error = "PermissionDenied" if revoke == "grant" else "InvalidAuthentication"
    assert r.json()["htsget"]["error"] == error
    pid = next(p.id for p in access.list_principals(store.catalog) if p.name == name)
    assert [e["detail"]["error"] for e in _refusals(store, f"principal#{pid}")] == [error]


def test_expired_grant_stops_its_urls(store: Store) -> None:
    import datetime as dt

    access.add_principal(store.catalog, "short")
    store.tokens["short"] = access.issue_token(store.catalog, "short")
    access.add_grant(
        store.catalog, "short", genomes=["NGC1"], expires_in=dt.timedelta(seconds=2),
        granted_by="steward",
    )  # fmt: skip
    url = _block_urls(store.get("/reads/NGC1", "short", format="CRAM").json())[0]
    assert httpx.get(url).status_code == 200
    time.sleep(2.2)
    assert httpx.get(url).status_code == 403
    assert store.get("/reads/NGC1", "short", format="CRAM").status_code == 404


def test_restore_urls_die_with_their_grant(store: Store) -> None:
    _principal(store, "restorer", genomes=["NGC1"])
    r = httpx.post(f"{store.base}/restore/NGC1", headers=store.headers("restorer"), timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    url = r.json()["restore"]["files"][0]["url"]
    assert httpx.get(url).status_code == 200
    (g,) = access.list_grants(store.catalog, "restorer")
    access.revoke_grant(store.catalog, g.id)
    assert httpx.get(url).status_code == 403


# ------------------------------------------------------------------------------------ 3. bounds


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def test_huge_body_without_token_is_not_read(store: Store) -> None:
    before = _rss()

    def body() -> Iterator[bytes]:
        chunk = b"x" * (1 << 20)
        for _ in range(150):
            yield chunk

    r = httpx.post(f"{store.base}/reads/NGC1", content=body(), timeout=60)
    assert r.status_code == 401
    assert _rss() - before < 50 * 2**20  # the server (this process) never held the body


def test_body_size_depth_and_regions_are_bounded(store: Store) -> None:
    h = {**store.headers("clinician"), "Content-Type": "application/json"}
    big = json.dumps({"regions": [{"referenceName": "chrS", "start": 1, "end": 2}] * 8000})
    r = httpx.post(f"{store.base}/reads/NGC1", content=big, headers=h)
    assert r.status_code == 413 and r.json()["htsget"]["error"] == "PayloadTooLarge"
    deep = "[" * 100_000 + "]" * 100_000
    r = httpx.post(f"{store.base}/reads/NGC1", content=deep, headers=h)
    assert r.status_code == 413
    deep = '{"regions": ' + "[" * 1000 + "]" * 1000 + "}"
    r = httpx.post(f"{store.base}/reads/NGC1", content=deep, headers=h)
    assert r.status_code == 400 and "deeper" in r.json()["htsget"]["message"]
    many = json.dumps({"regions": [{"referenceName": "chrS", "start": i, "end": i + 1}
                                   for i in range(Limits().max_regions + 1)]})  # fmt: skip
    r = httpx.post(f"{store.base}/reads/NGC1", content=many, headers=h)
    assert r.status_code == 400 and "at most" in r.json()["htsget"]["message"]


def test_slow_slicing_does_not_stall_the_service(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()
    real = codec_slice.slice_cram

    def slow(*args: Any, **kwargs: Any) -> None:
        entered.set()
        release.wait(30)
        real(*args, **kwargs)

    monkeypatch.setattr(codec_slice, "slice_cram", slow)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            store.get, "/reads/NGC1", "researcher", referenceName="chrS", start=17000, end=17333
        )
        assert entered.wait(30)
        info = httpx.get(f"{store.base}/reads/service-info", timeout=10)
        ticket = store.get("/reads/NGC1", "clinician", referenceName="chrS", start=1, end=99)
        assert info.status_code == 200 and ticket.status_code == 200
        assert not pending.done()
        release.set()
        assert pending.result().status_code == 200


def test_concurrent_restores_share_one(store: Store) -> None:
    _principal(store, "crowd", genomes=["NGC1"])

    def one(_: int) -> httpx.Response:
        return httpx.post(f"{store.base}/restore/NGC1", headers=store.headers("crowd"), timeout=300)

    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(one, range(30)))
    assert {r.status_code for r in answers} == {200}, {r.text for r in answers}
    names = {tuple(f["name"] for f in r.json()["restore"]["files"]) for r in answers}
    assert names == {("NGC1_R1.fastq.gz", "NGC1_R2.fastq.gz")}
    scratch = store.home / "restore-scratch"
    finished = [p for p in scratch.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(finished) == 1  # one restore, shared (not 30 copies)


def test_restores_are_limited_per_principal(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()
    real = serve_restore.restore

    def slow(*args: Any, **kwargs: Any) -> list[Path]:
        entered.set()
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(serve_restore, "restore", slow)
    for p in (store.home / "restore-scratch").glob("NGC2.*"):
        shutil.rmtree(p)
    h = store.headers("clinician")
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(httpx.post, f"{store.base}/restore/NGC2", headers=h, timeout=300)
        assert entered.wait(60)
        for p in (store.home / "restore-scratch").glob("NGC1.*"):
            shutil.rmtree(p)  # so that NGC1 must be restored again, not reused
        second = httpx.post(f"{store.base}/restore/NGC1", headers=h, timeout=60)
        assert second.status_code == 429 and second.headers["retry-after"]
        assert second.json()["htsget"]["error"] == "TooManyRequests"
        release.set()
        assert first.result().status_code == 200
    assert any(e["detail"].get("error") == "TooManyRequests"
               for e in _refusals(store, "principal:clinician"))  # fmt: skip


def test_scratch_and_slices_are_reaped(store: Store, tmp_path: Path) -> None:
    home = tmp_path / "home"
    scratch, slices = home / "restore-scratch", home / "serve-cache" / "slices"
    old = time.time() - 10_000
    for i in range(50):  # finished restores and slices of a past run, unused for long
        d = scratch / f"G{i}.0123456789abcdef"
        d.mkdir(parents=True)
        (d / "done.json").write_text("[]")
        os.utime(d / "done.json", (old, old))
        slices.mkdir(parents=True, exist_ok=True)
        (slices / f"{i:064x}.cram").write_bytes(b"x")
        os.utime(slices / f"{i:064x}.cram", (old, old))
    (scratch / ".work-G9.0123456789abcdef-abc").mkdir()  # a killed restore's work
    fresh = scratch / "G99.0123456789abcdef"
    fresh.mkdir()
    (fresh / "done.json").write_text("[]")
    settings = Settings(store.catalog.url, home, "http://x", block_ttl=1, reap_every=1)
    app = create_app(settings)
    port = free_port()
    with running(app, port):  # start-up reaps the old ones at once
        left = sorted(p.name for p in scratch.iterdir() if not p.name.endswith(".lock"))
        assert left == ["G99.0123456789abcdef"] and not any(slices.iterdir())
        for _ in range(100):  # and the background sweep the fresh one, once it ages
            if not fresh.exists():
                break
            time.sleep(0.1)
        assert not fresh.exists()
    # two sweeps racing over the same entries: neither fails on what the other removed
    for i in range(200):
        d = scratch / f"R{i}.0123456789abcdef"
        d.mkdir()
        (d / "done.json").write_text("[]")
        os.utime(d / "done.json", (old, old))
    restores = serve_restore.Restores(app.state.context)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: restores.reap(1), range(2)))
    assert not list(scratch.glob("R*"))


# --------------------------------------------------------------------------------- 4. validation

BAD_QUERIES: list[dict[str, Any]] = [
    {"end": "Infinity", "referenceName": "chrS"},
    {"end": "9" * 30, "referenceName": "chrS"},
    {"start": "-1", "referenceName": "chrS"},
    {"start": "1e3", "referenceName": "chrS"},
    {"referenceName": "chr S"},
    {"referenceName": "x" * 300},
    {"class": "body"},
    {"format": "CRAM", "bogus": "1"},
]
BAD_BODIES = [
    '{"regions": ["x"]}',
    '{"regions": 5}',
    '{"format": 5}',
    '{"regions": [{"referenceName": "chrS", "end": Infinity}]}',
    '{"regions": [{"referenceName": "chrS", "end": 999999999999999999999999999999}]}',
    '{"regions": [{"referenceName": "chrS", "start": 1.5}]}',
    '{"regions": [{"referenceName": "chrS", "start": true}]}',
    '{"regions": []}',
    '{"regions": [{"referenceName": "chrS", "colour": "red"}]}',
    "[1, 2]",
    "not json at all",
    '{"format": "CRAM"',
    '"\\ud800"',
]


def _refusal_count(store: Store) -> int:
    return len(_refusals(store, "principal:clinician"))


@pytest.mark.parametrize("query", BAD_QUERIES)
def test_bad_queries_are_400_and_audited_once(store: Store, query: dict[str, Any]) -> None:
    before = _refusal_count(store)
    r = httpx.get(f"{store.base}/reads/NGC1", params=query, headers=store.headers("clinician"))
    assert r.status_code == 400 and r.json()["htsget"]["error"] == "InvalidInput", r.text
    assert _refusal_count(store) == before + 1


@pytest.mark.parametrize("body", BAD_BODIES)
def test_bad_bodies_are_400_and_audited_once(store: Store, body: str) -> None:
    before = _refusal_count(store)
    h = {**store.headers("clinician"), "Content-Type": "application/json"}
    r = httpx.post(f"{store.base}/reads/NGC1", content=body, headers=h)
    assert r.status_code == 400 and r.json()["htsget"]["error"] == "InvalidInput", r.text
    assert _refusal_count(store) == before + 1


@pytest.mark.parametrize("gid", ["NGC1%0A", "NGC1%0D", "NGC1%20", "A" * 200 + "%0A", "A" * 201])
def test_ids_are_matched_whole(store: Store, gid: str) -> None:
    r = httpx.get(f"{store.base}/reads/{gid}", headers=store.headers("clinician"))
    assert r.status_code == 400 and r.json()["htsget"]["error"] == "InvalidInput"
    rows = audit.show(store.catalog, event="refuse")
    assert all("\n" not in (e["genome"] or "") for e in rows)
    assert rows[-1]["genome"] is None


def test_start_after_end_is_invalid_range(store: Store) -> None:
    r = store.get("/reads/NGC1", referenceName="chrS", start=500, end=100)
    assert r.status_code == 400 and r.json()["htsget"]["error"] == "InvalidRange"


# -------------------------------------------------------------------------------------- 5. leaks


def test_no_store_everywhere(store: Store) -> None:
    ticket = store.get("/reads/NGC1", format="CRAM")
    responses = [
        ticket,
        httpx.get(_block_urls(ticket.json())[0]),
        store.get("/reads/NGC1", None),
        store.get("/reads/NGC404"),
        store.get("/reads/NGC1", referenceName="chrS", start="x"),
        httpx.get(f"{store.base}/nowhere"),
        httpx.get(f"{store.base}/reads/service-info"),
        httpx.get(f"{store.base}/blocks/forged.token"),
    ]
    for r in responses:
        assert r.headers.get("cache-control") == "no-store", (r.url, r.headers)


def test_no_token_material_in_messages(store: Store) -> None:
    import datetime as dt

    token = access.issue_token(store.catalog, "clinician", expires_in=dt.timedelta(seconds=1))
    time.sleep(1.1)
    revoked = access.issue_token(store.catalog, "clinician")
    access.revoke_token(store.catalog, revoked)
    for t in (token, revoked, "wgv_" + "x" * 43):
        r = httpx.get(f"{store.base}/reads/NGC1", headers={"Authorization": f"Bearer {t}"})
        message = r.json()["htsget"]["message"]
        assert r.status_code == 401
        assert t[: access.PREFIX_CHARS] not in message and "expired" not in message
        assert not re.search(r"\d{4}-\d\d-\d\d", message)


def test_redirects_use_the_configured_base_url(store: Store) -> None:
    r = httpx.get(
        f"{store.base}/reads/NGC1/?format=CRAM",
        headers={"Host": "evil.example", **store.headers("clinician")},
        follow_redirects=False,
    )
    assert r.status_code == 307
    assert r.headers["location"] == f"{store.base}/reads/NGC1?format=CRAM"


@pytest.mark.parametrize(("method", "path"), [("DELETE", "/reads/NGC1"), ("PUT", "/blocks/x"),
                                              ("PATCH", "/reads/service-info"),
                                              ("GET", "/restore/NGC1")])  # fmt: skip
def test_methods_a_route_does_not_serve_are_405(store: Store, method: str, path: str) -> None:
    r = httpx.request(method, f"{store.base}{path}", headers=store.headers("clinician"))
    assert r.status_code == 405 and r.json()["htsget"]["error"] == "MethodNotAllowed"
    assert r.headers["allow"]


def test_anonymous_refusals_are_counted_not_flooded(store: Store) -> None:
    before = len(audit.show(store.catalog))
    for i in range(60):
        h = {"Authorization": f"Bearer wgv_{i}"} if i % 2 else {}
        assert httpx.get(f"{store.base}/reads/NGC1", headers=h).status_code == 401
    assert len(audit.show(store.catalog)) == before  # nothing written per request
    store.app.state.context.refusals.flush(everything=True)
    rows = audit.show(store.catalog)[before:]
    assert len(rows) == 1
    entry = rows[0]
    assert entry["event"] == "refuse" and entry["actor"] == "anonymous"
    assert entry["detail"]["source"] == "127.0.0.1" and entry["detail"]["count"] >= 60
    assert entry["detail"]["errors"]["InvalidAuthentication"] >= 60
    assert audit.verify(store.catalog).ok


def test_existence_is_not_revealed_without_a_grant(store: Store) -> None:
    """Decision: a genome the principal holds no grant for answers exactly like one that does
    not exist (404); a principal granted part of a genome learns 403 outside its regions."""
    unknown = store.get("/reads/NGC404", "stranger", format="CRAM")
    known = store.get("/reads/NGC1", "stranger", format="CRAM")
    assert unknown.status_code == known.status_code == 404
    messages = [r.json()["htsget"]["message"] for r in (unknown, known)]
    assert messages[0].replace("NGC404", "ID") == messages[1].replace("NGC1", "ID")
    outside = store.get("/reads/NGC1", "researcher", referenceName="chrS", start=0, end=10)
    assert outside.status_code == 403 and REGION in outside.json()["htsget"]["message"]
    refused = _refusals(store, "principal:stranger")
    assert refused[-1]["genome"] == "NGC1"  # the audit log knows which genome was probed


def test_audit_chain_holds_after_all_of_it(store: Store) -> None:
    assert audit.verify(store.catalog).ok
