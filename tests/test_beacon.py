"""GA4GH Beacon v2 over a running server and a frequency database built by the variants engine.

Every response a test receives is validated offline against the published Beacon v2 schemas
(and GA4GH service-info, VRS 1.3) in `../shared/data/beacon-v2` (beacon_served.py: a
`referencing` registry maps their URLs to the local files; nothing is fetched). The figures are
checked against the brute-force truth of the synthetic cohort.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from beacon_served import (
    FW,
    VRS,
    Beacon,
    allele,
    beacon_entries,
    build_cohort,
    check,
    check_query,
    schema_registry,
    seq,
    truth_of,
)
from referencing import Registry
from sqlalchemy import update

from wgsvault import access, audit
from wgsvault.catalog import Catalog
from wgsvault.catalog.models import BeaconUsage, table_of
from wgsvault.serve import Settings, create_app
from wgsvault.serve.beacon_policy import window_start
from wgsvault.serve.beacon_settings import BeaconSettings
from wgsvault.variants import engine

from conftest import shared
from served import free_port, running
from variants_cohort import truth

BUDGET = 50


@pytest.fixture(scope="module")
def schemas() -> Registry[Any]:
    return schema_registry(shared("beacon-v2"))


@pytest.fixture(scope="module")
def beacon(tmp_path_factory: pytest.TempPathFactory, schemas: Registry[Any]) -> Iterator[Beacon]:
    d = tmp_path_factory.mktemp("beacon")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WGSVAULT_HOME", str(d / "home"))  # the engine finds the reference there
        cat, people, sites, store, home = build_cohort(d)
    tokens = {}
    for name, role in (
        ("clinician", "data"),
        ("researcher", "data"),
        ("reporter", "reporting"),
        ("spender", "data"),
        ("disabled", "data"),
    ):
        access.add_principal(cat, name, role=role)
        tokens[name] = access.issue_token(cat, name)
    access.add_grant(cat, "clinician", patient_group="rare disease", granted_by="steward")
    access.disable_principal(cat, "disabled")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(cat.url, home, base, beacon=BeaconSettings(budget=BUDGET))
    with running(create_app(settings), port):
        yield Beacon(base, cat, tokens, people, sites, store, home, schemas)
    cat.close()


# --------------------------------------------------------------------------- framework


def test_framework_endpoints_validate(beacon: Beacon) -> None:
    reg = beacon.registry
    for path, schema in (
        ("", "beaconInfoResponse"),
        ("/info", "beaconInfoResponse"),
        ("/configuration", "beaconConfigurationResponse"),
        ("/map", "beaconMapResponse"),
        ("/entry_types", "beaconEntryTypesResponse"),
        ("/filtering_terms", "beaconFilteringTermsResponse"),
    ):
        r = httpx.get(f"{beacon.base}/api/beacon{path}", timeout=30)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["cache-control"] == "no-store"
        check(reg, r.json(), f"{FW}/responses/{schema}.json")
    r = httpx.get(f"{beacon.base}/api/beacon/", follow_redirects=True, timeout=30)
    check(reg, r.json(), f"{FW}/responses/beaconInfoResponse.json")
    assert r.json()["response"]["info"] == {"assemblyId": "GRCh38", "release": 1}
    info = httpx.get(f"{beacon.base}/api/beacon/service-info", timeout=30).json()
    check(reg, info, f"{FW}/responses/ga4gh-service-info-1-0-0-schema.json")
    assert info["type"] == {"group": "org.ga4gh", "artifact": "beacon", "version": "v2.0.0"}
    conf = httpx.get(f"{beacon.base}/api/beacon/configuration", timeout=30).json()
    assert conf["response"]["securityAttributes"]["securityLevels"] == ["REGISTERED", "CONTROLLED"]


# --------------------------------------------------------------------------- access


def test_no_anonymous_queries_by_default(beacon: Beacon) -> None:
    key = allele(beacon, 5, 10_000)
    before = len(beacon_entries(beacon))
    for headers in (
        {},
        {"Authorization": "Bearer wgv_not-a-token"},
        {"Authorization": f"Bearer {beacon.tokens['disabled']}"},
    ):
        r = httpx.get(
            f"{beacon.base}/api/beacon/g_variants", params=seq(key), headers=headers, timeout=30
        )
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        doc = check_query(beacon.registry, r)
        assert "token" in doc["error"]["errorMessage"]
    # unauthenticated refusals are counted per source (refusals.py), not one entry each
    assert len(beacon_entries(beacon)) == before


def test_counts_are_floored_for_registered_principals(beacon: Beacon) -> None:
    t = truth_of(beacon)
    rare, common = allele(beacon, 1, 4), allele(beacon, 5, 10_000)
    for key, raised in ((rare, True), (common, False)):
        r = beacon.query("researcher", **seq(key, requestedGranularity="count"))
        doc = check_query(beacon.registry, r)
        assert doc["meta"]["returnedGranularity"] == "count"
        assert doc["responseSummary"] == {
            "exists": True,
            "numTotalResults": 1,
            "countPrecision": "exact",
        }
        (a,) = doc["info"]["alleles"]
        ac, an, hom, hemi = t[key]["total"]
        assert (a["referenceName"], a["start"], a["referenceBases"], a["alternateBases"]) == (
            key[0],
            key[1] - 1,
            key[2],
            key[3],
        )
        assert a["alleleNumber"] == an
        if raised:
            assert a["alleleCount"] == 5 and a["countPrecision"] == "imprecise"
            assert a["countAdjustedTo"] == [5]
            assert a["alleleFrequency"] == pytest.approx(min(1.0, 5 / an))
        else:
            assert a["alleleCount"] == ac
            assert a["alleleFrequency"] == pytest.approx(ac / an)
            assert a["countPrecision"] == ("imprecise" if 0 < hom < 5 else "exact")
        assert a["alleleCountHomozygous"] == (5 if 0 < hom < 5 else hom)
        assert a["alleleCountHemizygous"] == hemi == 0


def test_granularity_follows_the_level(beacon: Beacon) -> None:
    t = truth_of(beacon)
    key = next(
        k
        for k, v in sorted(t.items())
        if k[0] == "chr1" and 1 <= v["total"][0] <= 4 and "group:rare disease" in v
    )
    for who, given in (("researcher", "count"), ("reporter", "count"), ("clinician", "record")):
        doc = check_query(
            beacon.registry, beacon.query(who, **seq(key, requestedGranularity="record"))
        )
        assert doc["meta"]["returnedGranularity"] == given, who
        assert doc["meta"]["receivedRequestSummary"]["requestedGranularity"] == "record"
    # asking for less than the level allows gives what was asked
    doc = check_query(beacon.registry, beacon.query("clinician", **seq(key)))
    assert doc["meta"]["returnedGranularity"] == "boolean"
    assert doc["responseSummary"] == {"exists": True}
    doc = check_query(
        beacon.registry, beacon.query("clinician", **seq(key, requestedGranularity="record"))
    )
    (rs,) = doc["response"]["resultSets"]
    (rec,) = rs["results"]
    loc = rec["variation"]["location"]
    assert loc["interval"]["start"]["value"] == key[1] - 1
    assert loc["interval"]["end"]["value"] == key[1] - 1 + len(key[2])
    check(beacon.registry, loc, f"{VRS}#/definitions/SequenceLocation")
    freqs = {f["population"]: f for f in rec["frequencyInPopulations"][0]["frequencies"]}
    # the total under the floor, the granted stratum exactly, no other stratum
    assert set(freqs) == {"total", "group:rare disease"}
    assert freqs["total"]["alleleCount"] == 5
    ac, an, hom, hemi = t[key]["group:rare disease"]
    g = freqs["group:rare disease"]
    assert (g["alleleCount"], g["alleleNumber"], g["alleleCountHomozygous"]) == (ac, an, hom)
    assert g["countPrecision"] == "exact" and g["alleleFrequency"] == pytest.approx(ac / an)


def test_chr1_and_1_and_zero_based_coordinates(beacon: Beacon) -> None:
    key = allele(beacon, 5, 10_000)
    chrom, pos, ref, alt = key
    as_chr = check_query(
        beacon.registry, beacon.query("researcher", **seq(key, requestedGranularity="count"))
    )
    bare = {**seq(key, requestedGranularity="count"), "referenceName": chrom.removeprefix("chr")}
    as_bare = check_query(beacon.registry, beacon.query("researcher", **bare))
    assert as_bare["info"] == as_chr["info"]  # answered with the reference's own name
    assert as_bare["info"]["alleles"][0]["referenceName"] == chrom
    # the VCF position given as if it were Beacon's start: nothing there (0-based!)
    off = check_query(beacon.registry, beacon.query("researcher", **seq(key, start=pos)))
    assert off["responseSummary"] == {"exists": False}
    # a range [start, end) in 0-based coordinates: POS in [start + 1, end]
    for start, end, found in (
        (pos - 1, pos, True),
        (pos, pos + 1, False),
        (pos - 2, pos - 1, False),
    ):
        doc = check_query(
            beacon.registry,
            beacon.query(
                "researcher",
                referenceName=chrom,
                start=start,
                end=end,
                alternateBases=alt,
                referenceBases=ref,
                requestedGranularity="count",
            ),
        )
        assert doc["responseSummary"]["exists"] is found, (start, end)


def test_post_body_as_the_model_writes_it(beacon: Beacon) -> None:
    key = allele(beacon, 5, 10_000)
    chrom, pos, ref, alt = key
    get = check_query(
        beacon.registry, beacon.query("researcher", **seq(key, requestedGranularity="count"))
    )
    rp = {"referenceName": chrom, "start": [pos - 1], "referenceBases": ref, "alternateBases": alt}
    for params in ({"g_variant": rp}, rp):
        r = beacon.query(
            "researcher", "POST", requestParameters=params, requestedGranularity="count"
        )
        assert check_query(beacon.registry, r)["info"] == get["info"]
    # a region, variant type filter and pagination
    r = beacon.query(
        "researcher",
        "POST",
        requestedGranularity="count",
        requestParameters={
            "referenceName": chrom,
            "start": [0],
            "end": [30_000],
            "variantType": "SNP",
        },
        pagination={"skip": 2, "limit": 3},
    )
    doc = check_query(beacon.registry, r)
    snvs = [k for k in truth_of(beacon) if k[0] == chrom and len(k[2]) == len(k[3]) == 1]
    assert doc["responseSummary"]["numTotalResults"] == len(snvs)
    assert len(doc["info"]["alleles"]) == 3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"referenceName": "chr1", "alternateBases": "A"}, "start is required"),
        ({"referenceName": "chr1", "start": "5,9", "alternateBases": "A"}, "bracket"),
        ({"referenceName": "chr1", "start": 5, "alternateBases": "A!"}, "alternateBases"),
        ({"referenceName": "chr1", "start": 5, "end": 5}, "must be after start"),
        ({"referenceName": "chr1", "start": 5}, "needs alternateBases"),
        ({"referenceName": "chr1", "start": 5, "alternateBases": "A", "color": "red"}, "unknown"),
        (
            {"referenceName": "chr1", "start": 5, "alternateBases": "A", "assemblyId": "GRCh37"},
            "this Beacon serves GRCh38",
        ),
        ({"referenceName": "chr1", "start": 0, "end": 2_000_000}, "at most"),
    ],
)
def test_bad_queries_are_400_and_audited(
    beacon: Beacon, params: dict[str, Any], message: str
) -> None:
    before = len(beacon_entries(beacon))
    r = beacon.query("researcher", **params)
    assert r.status_code == 400
    assert message in check_query(beacon.registry, r)["error"]["errorMessage"]
    (entry,) = beacon_entries(beacon)[before:]
    assert entry["actor"] == "principal:researcher"
    assert entry["detail"]["outcome"] == "refused" and entry["detail"]["status"] == 400


def test_budget_is_spent_then_429(beacon: Beacon) -> None:
    key = allele(beacon, 5, 10_000)
    pid = next(p.id for p in access.list_principals(beacon.catalog) if p.name == "spender")
    assert beacon.query("spender", **seq(key)).status_code == 200  # makes the window's row
    usage = table_of(BeaconUsage)
    with beacon.catalog.session() as s:
        s.execute(
            update(usage)
            .where(usage.c.who == f"principal:{pid}", usage.c.window_start == window_start(86_400))
            .values(used=BUDGET - 1)
        )
    before = len(beacon_entries(beacon))
    assert check_query(beacon.registry, beacon.query("spender", **seq(key))).get("error") is None
    r = beacon.query("spender", **seq(key))
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 86_400
    assert "budget" in check_query(beacon.registry, r)["error"]["errorMessage"]
    allowed, refused = beacon_entries(beacon)[before:]
    assert (allowed["detail"]["outcome"], refused["detail"]["outcome"]) == ("allowed", "refused")
    assert refused["detail"]["status"] == 429
    # other principals keep their own budget
    assert beacon.query("researcher", **seq(key)).status_code == 200


def test_every_query_audited_once(beacon: Beacon) -> None:
    key = allele(beacon, 5, 10_000)
    before = len(beacon_entries(beacon))
    for g in ("boolean", "count", "record"):
        assert beacon.query("clinician", **seq(key, requestedGranularity=g)).status_code == 200
    entries = beacon_entries(beacon)[before:]
    assert [(e["actor"], e["detail"]["requested"], e["detail"]["returned"]) for e in entries] == [
        ("principal:clinician", g, g) for g in ("boolean", "count", "record")
    ]
    assert entries[0]["detail"]["query"]["start"] == [key[1] - 1]
    assert audit.verify(beacon.catalog).ok  # type: ignore[attr-defined]


def test_anonymous_when_allowed_gets_booleans_only(beacon: Beacon, tmp_path: Path) -> None:
    key = allele(beacon, 5, 10_000)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        beacon.catalog.url,
        beacon.home,
        base,
        beacon=BeaconSettings(anonymous=True, anonymous_budget=2),
    )
    empty = Settings(
        beacon.catalog.url,
        beacon.home,
        base,
        beacon=BeaconSettings(anonymous=True, variants=tmp_path / "none"),
    )
    before = len(beacon_entries(beacon))
    with running(create_app(settings), port):
        url = f"{base}/api/beacon/g_variants"
        conf = httpx.get(f"{base}/api/beacon/configuration", timeout=30).json()
        check(beacon.registry, conf, f"{FW}/responses/beaconConfigurationResponse.json")
        assert conf["response"]["securityAttributes"]["securityLevels"][0] == "PUBLIC"
        params = seq(key, requestedGranularity="record")
        for _ in range(2):
            doc = check_query(beacon.registry, httpx.get(url, params=params, timeout=30))
            assert doc["meta"]["returnedGranularity"] == "boolean"
            assert doc["responseSummary"] == {"exists": True}
        assert httpx.get(url, params=params, timeout=30).status_code == 429
    entries = beacon_entries(beacon)[before:]  # the refusal is counted (refusals.py)
    assert [e["actor"] for e in entries] == ["anonymous"] * 2
    assert entries[0]["detail"]["source"] == "127.0.0.1"
    port = free_port()
    with running(create_app(empty), port):
        base = f"http://127.0.0.1:{port}"
        info = httpx.get(f"{base}/api/beacon/info", timeout=30).json()
        check(beacon.registry, info, f"{FW}/responses/beaconInfoResponse.json")
        r = httpx.get(f"{base}/api/beacon/g_variants", params=params, timeout=30)
        assert r.status_code == 503
        check_query(beacon.registry, r)


def test_budget_is_exact_under_concurrency(catalog: Catalog) -> None:
    """Twelve concurrent charges against a budget of five: exactly five pass, on each backend,
    each with its audit entry in the same transaction; the next window starts afresh."""
    from concurrent.futures import ThreadPoolExecutor

    from wgsvault.serve.beacon_policy import charge, used

    now = 1_800_000_000.0

    def one(i: int) -> bool:
        with catalog.session() as s:
            ok = charge(s, "principal:7", 5, 86_400, now)
            audit.append(s, actor="principal:p", event="beacon", detail={"i": i, "ok": ok})
        return ok

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(12)))
    assert results.count(True) == 5
    assert used(catalog, "principal:7", 86_400, now) == 5
    assert used(catalog, "principal:8", 86_400, now) == 0
    with catalog.session() as s:
        assert charge(s, "principal:7", 5, 86_400, now + 86_400)
    assert [e["detail"]["ok"] for e in audit.show(catalog, event="beacon")].count(True) == 5
    assert audit.verify(catalog).ok


def test_every_answer_under_the_prefix_is_a_beacon_document(beacon: Beacon) -> None:
    """Unknown endpoints, wrong methods and unreadable bodies: Beacon errors, never htsget's."""
    url = f"{beacon.base}/api/beacon"
    auth = {"Authorization": f"Bearer {beacon.tokens['researcher']}"}
    for method, path, status in (
        ("GET", "/individuals", 404),
        ("PUT", "/g_variants", 405),
        ("DELETE", "", 405),
        ("POST", "/map", 405),
    ):
        r = httpx.request(method, url + path, timeout=30)
        assert r.status_code == status, (method, path)
        check(beacon.registry, r.json(), f"{FW}/responses/beaconErrorResponse.json")
    assert httpx.put(f"{url}/g_variants", timeout=30).headers["allow"] == "GET, POST"
    for content, message in (
        (b"{nope", "not valid JSON"),
        (b"[1]", "JSON object"),
        (b'{"query": {"filters": [{"id": "NCIT:C3222"}]}}', "filters"),
    ):
        r = httpx.post(f"{url}/g_variants", content=content, headers=auth, timeout=30)
        assert r.status_code == 400
        assert message in check_query(beacon.registry, r)["error"]["errorMessage"]
    r = httpx.post(f"{url}/g_variants", content=b" " * 70_000, headers=auth, timeout=30)
    assert r.status_code == 413
    check_query(beacon.registry, r)


def test_answers_come_from_the_release_not_the_live_store(beacon: Beacon, tmp_path: Path) -> None:
    """A withdrawal changes the live store at once but the Beacon's answers only with the next
    release: no two answers differ by one person's genotype."""
    gone = beacon.people[3]
    before = truth_of(beacon)
    after = truth([p for p in beacon.people if p is not gone], beacon.sites)
    key = next(
        k
        for k, v in sorted(before.items())
        if k[0] == "chr1"
        and k in after
        and after[k]["total"][0] >= 5
        and after[k]["total"] != v["total"]
    )
    query = seq(key, requestedGranularity="count")
    first = check_query(beacon.registry, beacon.query("researcher", **query))
    assert first["info"]["alleles"][0]["alleleNumber"] == before[key]["total"][1]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WGSVAULT_HOME", str(beacon.home))
        engine.remove(beacon.catalog, beacon.store, gone.name)
    assert check_query(beacon.registry, beacon.query("researcher", **query)) == first
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    live = Settings(beacon.catalog.url, beacon.home, base, beacon=BeaconSettings(live=True))
    with running(create_app(live), port):
        r = httpx.get(
            f"{base}/api/beacon/g_variants",
            params=query,
            timeout=30,
            headers={"Authorization": f"Bearer {beacon.tokens['researcher']}"},
        )
        (a,) = check_query(beacon.registry, r)["info"]["alleles"]
    assert [a["alleleCount"], a["alleleNumber"]] == after[key]["total"][:2]
