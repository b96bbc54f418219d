"""The JSON documents of the Beacon v2 interface, as the framework and the genomicVariations model
define them (tests validate each against the published schemas).

Informational responses (info, configuration, map, entry types, filtering terms) carry the
informational `meta`; query responses carry the full `meta` with the received request summary and
the `returnedGranularity`. A `g_variants` answer is a boolean, count or result-set response:

* boolean: `responseSummary.exists`;
* count: also `numTotalResults` (matching alleles: variants, not people, so exact) and, in
  `info.alleles`, each allele's figures in total under the floor (policy: beacon_policy.py):
  `alleleCount`, `alleleNumber`, `alleleFrequency`, `alleleCountHomozygous`,
  `alleleCountHemizygous`, with `countPrecision` "exact" or "imprecise" and `countAdjustedTo`
  naming the floor when one was raised (the names of Beacon v2.2's summary);
* record: result sets of genomicVariation records, each with `frequencyInPopulations`: the total
  under the floor and the granted strata exactly (the same figures as `alleleCount` etc. beside
  the model's `population` and `alleleFrequency`).

Locations are VRS 1.3 `SequenceLocation`s in interbase coordinates (start = VCF POS - 1) on
`wgsvault:<assembly>/<contig>`: the contig as the reference names it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from wgsvault import __version__
from wgsvault.serve.beacon_policy import Level, floored
from wgsvault.serve.beacon_query import Allele, VariantQuery, variant_type
from wgsvault.serve.beacon_settings import BeaconSettings

API_VERSION = "v2.0.0"
SCHEMAS = "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main"
VARIANT_SCHEMA = {"entityType": "genomicVariation", "schema": "beacon-g_variant-v2.0.0"}
CREATED = dt.datetime(2026, 11, 30, tzinfo=dt.UTC).isoformat()


def _info_meta(b: BeaconSettings) -> dict[str, Any]:
    return {"beaconId": b.beacon_id, "apiVersion": API_VERSION, "returnedSchemas": []}


def entry_type() -> dict[str, Any]:
    return {
        "id": "genomicVariation",
        "name": "Genomic variants",
        "ontologyTermForThisType": {"id": "ENSGLOSSARY:0000092", "label": "Variant"},
        "partOfSpecification": f"Beacon {API_VERSION}",
        "description": "Alleles of the national frequency database, with their frequencies",
        "defaultSchema": {
            "id": "ga4gh-beacon-variant-v2.0.0",
            "name": "Default schema for a genomic variation",
            "referenceToSchemaDefinition": f"{SCHEMAS}/models/json/beacon-v2-default-model/"
            "genomicVariations/defaultSchema.json",
            "schemaVersion": API_VERSION,
        },
        "nonFilteredQueriesAllowed": False,
    }


def info(b: BeaconSettings, assembly: str | None, release: int | None) -> dict[str, Any]:
    return {
        "meta": _info_meta(b),
        "response": {
            "id": b.beacon_id,
            "name": b.name,
            "apiVersion": API_VERSION,
            "environment": b.environment,
            "organization": {
                "id": b.organization,
                "name": b.organization,
                "welcomeUrl": b.organization_url,
            },
            "description": "Allele counts and frequencies of the genomes the national centre"
            " keeps, in total and per patient group and requisitioning region",
            "version": f"v{__version__}",
            "createDateTime": CREATED,
            "info": {"assemblyId": assembly, "release": release},
        },
    }


def service_info(b: BeaconSettings) -> dict[str, Any]:
    return {
        "id": b.beacon_id,
        "name": b.name,
        "type": {"group": "org.ga4gh", "artifact": "beacon", "version": API_VERSION},
        "description": "GA4GH Beacon v2 over the national variant frequency database",
        "organization": {"name": b.organization, "url": b.organization_url},
        "version": __version__,
        "environment": b.environment,
        "createdAt": CREATED,
    }


def configuration(b: BeaconSettings) -> dict[str, Any]:
    levels = (["PUBLIC"] if b.anonymous else []) + ["REGISTERED", "CONTROLLED"]
    return {
        "meta": _info_meta(b),
        "response": {
            "$schema": f"{SCHEMAS}/framework/json/configuration/beaconConfigurationSchema.json",
            "maturityAttributes": {
                "productionStatus": b.environment.upper()
                if b.environment in ("dev", "test", "prod")
                else "DEV"
            },
            "securityAttributes": {"defaultGranularity": "boolean", "securityLevels": levels},
            "entryTypes": {"genomicVariation": entry_type()},
        },
    }


def beacon_map(b: BeaconSettings, root: str) -> dict[str, Any]:
    return {
        "meta": _info_meta(b),
        "response": {
            "$schema": f"{SCHEMAS}/framework/json/configuration/beaconMapSchema.json",
            "endpointSets": {
                "genomicVariation": {
                    "entryType": "genomicVariation",
                    "rootUrl": f"{root}/g_variants",
                },
            },
        },
    }


def entry_types(b: BeaconSettings) -> dict[str, Any]:
    return {"meta": _info_meta(b), "response": {"entryTypes": {"genomicVariation": entry_type()}}}


def filtering_terms(b: BeaconSettings) -> dict[str, Any]:
    return {"meta": _info_meta(b), "response": {"filteringTerms": [], "resources": []}}


def meta(b: BeaconSettings, q: VariantQuery | None, requested: str, given: str) -> dict[str, Any]:
    """The `meta` of a query response (`q` None: the request could not be read)."""
    summary: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "requestedSchemas": [VARIANT_SCHEMA],
        "pagination": {"skip": 0 if q is None else q.skip, "limit": 10 if q is None else q.limit},
        "requestedGranularity": requested,
    }
    if q is not None:
        summary["requestParameters"] = {"g_variant": q.echo()}
        summary["includeResultsetResponses"] = q.include
    return {
        "beaconId": b.beacon_id,
        "apiVersion": API_VERSION,
        "returnedSchemas": [VARIANT_SCHEMA],
        "returnedGranularity": given,
        "receivedRequestSummary": summary,
    }


def error(
    b: BeaconSettings,
    status: int,
    message: str,
    q: VariantQuery | None = None,
    requested: str = "boolean",
) -> dict[str, Any]:
    return {
        "meta": meta(b, q, requested, "boolean"),
        "error": {"errorCode": status, "errorMessage": message},
    }


def _figures(ac: int, an: int, hom: int, hemi: int, floor: int | None) -> dict[str, Any]:
    """One population's figures; `floor` None: exact (a granted stratum)."""
    raised = False
    if floor is not None:
        (ac, r1), (hom, r2), (hemi, r3) = (floored(n, floor) for n in (ac, hom, hemi))
        raised = r1 or r2 or r3
    out: dict[str, Any] = {
        "alleleFrequency": min(1.0, ac / an) if an > 0 else 0.0,
        "alleleCount": ac,
        "alleleNumber": an,
        "alleleCountHomozygous": hom,
        "alleleCountHemizygous": hemi,
        "countPrecision": "imprecise" if raised else "exact",
    }
    if raised:
        out["countAdjustedTo"] = [floor]
    return out


def _where(a: Allele) -> dict[str, Any]:
    return {
        "referenceName": a.chrom,
        "start": a.pos - 1,
        "end": a.pos - 1 + len(a.ref),
        "referenceBases": a.ref,
        "alternateBases": a.alt,
        "variantType": variant_type(a.ref, a.alt),
    }


def count_alleles(alleles: list[Allele], floor: int) -> list[dict[str, Any]]:
    """The count level's per-allele figures (total only, under the floor)."""
    return [{**_where(a), **_figures(a.ac, a.an, a.nhomalt, a.nhemi, floor)} for a in alleles]


def record(
    a: Allele,
    level: Level,
    floor: int,
    assembly: str | None,
    source: str,
    release: int | None,
) -> dict[str, Any]:
    """One genomicVariation record with the total (floored) and the granted strata (exact)."""
    freqs = [{"population": "total", **_figures(a.ac, a.an, a.nhomalt, a.nhemi, floor)}]
    for name in sorted(level.strata):
        st = a.strata.get(name)
        if st is not None:
            freqs.append({"population": name, **_figures(st.ac, st.an, st.nhomalt, st.nhemi, None)})
    start = a.pos - 1
    return {
        "variantInternalId": f"{a.chrom}:{a.pos}:{a.ref}:{a.alt}",
        "variation": {
            "variantType": variant_type(a.ref, a.alt),
            "referenceBases": a.ref,
            "alternateBases": a.alt,
            "location": {
                "type": "SequenceLocation",
                "sequence_id": f"wgsvault:{assembly or 'unknown'}/{a.chrom}",
                "interval": {
                    "type": "SequenceInterval",
                    "start": {"type": "Number", "value": start},
                    "end": {"type": "Number", "value": start + len(a.ref)},
                },
            },
        },
        "frequencyInPopulations": [
            {
                "source": "wgsvault national variant frequency database",
                "sourceReference": source,
                "version": "current" if release is None else f"release {release}",
                "frequencies": freqs,
            }
        ],
    }
