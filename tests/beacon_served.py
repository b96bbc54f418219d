"""A Beacon over a small synthetic cohort, and the Beacon v2 schemas to check its answers with.

`schema_registry` maps every schema file of `../shared/data/beacon-v2` to its published URL
(`raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/...`, VRS 1.3 under its w3id) in a
`referencing` registry that refuses to fetch anything; `check` validates a document against the
schema at a URL, `check_query` a `g_variants` answer against the response schema its status and
granularity call for (records also against the genomicVariations model). `build_cohort` writes
the variants tests' synthetic cohort (tests/variants_cohort.py), extracts each genome's callable
regions, registers it all in a catalog, builds the frequency database with the engine's own `build`
and makes its first release.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft7Validator, Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7, DRAFT202012

from wgsvault import audit
from wgsvault.catalog import Catalog, open_catalog
from wgsvault.catalog.manifest import import_manifest
from wgsvault.codec.callable_regions import callable_path, extract
from wgsvault.codec.refs import Registry as RefRegistry
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan
from wgsvault.variants import engine
from wgsvault.variants.release import release

from variants_cohort import (
    BUILD,
    Person,
    Site,
    make_people,
    make_reference,
    make_sites,
    truth,
    write_fasta,
    write_genome,
    write_manifest,
)

RAW = "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main"
VRS = "https://w3id.org/ga4gh/schema/vrs/1.3/vrs.json"
FW = f"{RAW}/framework/json"
GV = f"{RAW}/models/json/beacon-v2-default-model/genomicVariations"
Key = tuple[str, int, str, str]


def schema_registry(root: Path) -> Registry[Any]:
    """Every schema file under `root` by its published URL (VRS under its w3id)."""
    resources = []
    for path in sorted(root.rglob("*.json")):
        contents = json.loads(path.read_text())
        rel = path.relative_to(root).as_posix()
        if rel.startswith("vrs-1.3/"):
            resources.append((VRS, DRAFT7.create_resource(contents)))
        else:
            resources.append((f"{RAW}/{rel}", DRAFT202012.create_resource(contents)))
    return Registry(retrieve=_no_fetch).with_resources(resources)  # type: ignore[call-arg]


def _no_fetch(uri: str) -> Resource[Any]:
    raise AssertionError(f"a schema refers to {uri}, which is not in the local copy")


def check(registry: Registry[Any], doc: Any, url: str) -> None:
    """`doc` validates against the schema at `url` (resolved in the local registry)."""
    cls = Draft7Validator if url.startswith(VRS) else Draft202012Validator
    errors = sorted(cls({"$ref": url}, registry=registry).iter_errors(doc), key=str)
    assert not errors, f"{url}: {errors[0].message} at {list(errors[0].absolute_path)}"


def check_query(registry: Registry[Any], r: httpx.Response) -> dict[str, Any]:
    """A g_variants response validated as the kind its status and granularity say."""
    doc: dict[str, Any] = r.json()
    if r.status_code != 200:
        check(registry, doc, f"{FW}/responses/beaconErrorResponse.json")
        assert doc["error"]["errorCode"] == r.status_code
        return doc
    given = doc["meta"]["returnedGranularity"]
    kind = {"boolean": "Boolean", "count": "Count", "record": "Resultsets"}[given]
    check(registry, doc, f"{FW}/responses/beacon{kind}Response.json")
    summary = doc["meta"]["receivedRequestSummary"]
    check(
        registry,
        summary["requestParameters"]["g_variant"],
        f"{GV}/requestParameters.json#/g_variant",
    )
    for rs in doc.get("response", {}).get("resultSets", []):
        for rec in rs["results"]:
            check(registry, rec, f"{GV}/defaultSchema.json")
    return doc


@dataclass
class Beacon:
    base: str
    catalog: Catalog
    tokens: dict[str, str]
    people: list[Person]
    sites: list[Site]
    store: Path
    home: Path
    registry: Registry[Any]

    def query(self, who: str | None, method: str = "GET", **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        url = f"{self.base}/api/beacon/g_variants"
        if method == "POST":
            body = {"meta": {"apiVersion": "v2.0"}, "query": params}
            r = httpx.post(url, json=body, headers=headers, timeout=30)
        else:
            r = httpx.get(url, params=params, headers=headers, timeout=30)
        return r


def build_cohort(d: Path) -> tuple[Catalog, list[Person], list[Site], Path, Path]:
    rng = random.Random(15)
    ref = d / "ref" / "ref.fa"
    ref.parent.mkdir(parents=True)
    seqs = make_reference(rng)
    sites = make_sites(seqs, rng)  # writes the homopolymers of its indels into seqs
    write_fasta(seqs, ref)
    people = make_people(14, sites, rng)
    for p in people:
        folder = d / "estate" / "national" / p.name
        _vcf, gvcf = write_genome(p, sites, seqs, folder)
        extract(gvcf, callable_path(gvcf))
    home = d / "home"
    cat = open_catalog(f"sqlite:///{home / 'catalog.sqlite'}")
    RefRegistry(cat, home / "refs").add(ref, BUILD)
    write_manifest(people, d / "manifest.csv")
    import_manifest(cat, d / "manifest.csv")
    scan(cat, [str(d / "estate")], DEFAULT_LAYOUT)
    store = home / "variants"
    engine.build(cat, store, engine.reference(cat, None))
    release(cat, store, min_new_genomes=len(people))  # the Beacon answers from releases
    return cat, people, sites, store, home


def truth_of(b: Beacon) -> dict[tuple[str, int, str, str], dict[str, list[int]]]:
    return truth(b.people, b.sites)


def allele(b: Beacon, lo: int, hi: int, chrom: str = "chr1") -> tuple[str, int, str, str]:
    """A normalised SNV of `chrom` whose total AC is in [lo, hi]."""
    for key, strata in sorted(truth_of(b).items()):
        if key[0] == chrom and len(key[2]) == len(key[3]) == 1 and lo <= strata["total"][0] <= hi:
            return key
    raise AssertionError(f"the cohort has no {chrom} SNV with AC in [{lo}, {hi}]")


def seq(key: tuple[str, int, str, str], **extra: Any) -> dict[str, Any]:
    chrom, pos, ref, alt = key
    return {
        "referenceName": chrom,
        "start": pos - 1,
        "referenceBases": ref,
        "alternateBases": alt,
        **extra,
    }


def beacon_entries(b: Beacon) -> list[dict[str, Any]]:
    """The `beacon` entries of the audit log, oldest first."""
    return audit.show(b.catalog, event="beacon")
