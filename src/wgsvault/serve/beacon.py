"""GA4GH Beacon v2 over the national variant frequency database: `/api/beacon/...`.

Routes
    `GET /api/beacon` and `/api/beacon/info` (`/api/beacon/` redirects to the first, as every
    trailing slash of the service does), `/api/beacon/service-info` (GA4GH service-info),
    `/configuration`, `/map`, `/entry_types`, `/filtering_terms` (none: filters are not
    supported) need no token: they describe the Beacon, not the data. `GET|POST
    /api/beacon/g_variants` answers queries of the genomicVariations model (beacon_query.py:
    parameters, 0-based coordinates, `chr1` = `1`) from `variants.store.FrequencyStore`.

What it answers from
    The newest release of the frequency database (`wgsvault variants release`), never the live
    store: releases come at least `min_new_genomes` genomes apart, so no two answers differ by
    one person, which two answers around one `variants add` or `remove` of the live store would.
    A withdrawn genome therefore leaves the Beacon's answers with the next release. Until there
    is a release, queries are answered 503. `BeaconSettings.live` serves the live store instead
    (for a Beacon nobody outside can query).

Who gets what (the levels: beacon_policy.py)
    The data are health data of identifiable people: a Beacon answering unlimited queries
    reveals whether a person is in the cohort (Shringarpure & Bustamante 2015), exact small
    counts more so. Hence:

    * anonymous: refused (401) unless `BeaconSettings.anonymous`; then boolean answers only,
      with a budget per source address;
    * a registered principal (any valid bearer token): at most counts, counts of people or
      alleles from 1 to 4 shown as 5 (`floor`), and a budget of queries per window (429 with
      `Retry-After` when spent);
    * a principal with a granted cohort (an active patient-group or controller grant without a
      region, role `data`): records, with the total under the floor and exact figures for the
      granted strata (`group:<patient group>`), whose genomes it may read anyway.

    A request for more than the level allows is answered at the level, and `returnedGranularity`
    says so. The budget is charged for every answered query whatever its granularity.

Audit
    Every `g_variants` query is audited exactly once: event `beacon` (actor the principal, or
    `anonymous` with its source address), with the request parameters, the requested and
    returned granularity and the outcome (allowed, or the refusal's status and reason), in the
    same transaction as the budget's charge. Refusals without a principal (no or a bad token;
    an anonymous query refused, where they are allowed) are counted per source and window like
    every other such refusal of the service (refusals.py), so that they cannot grow the log
    without bound. The answer itself (counts) is not in the log.

Errors are Beacon error responses (`{"meta": ..., "error": {"errorCode", "errorMessage"}}`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from wgsvault import access, audit
from wgsvault.access import Credential
from wgsvault.serve import beacon_docs as docs
from wgsvault.serve import beacon_policy as policy
from wgsvault.serve.beacon_query import (
    BadQuery,
    Frequencies,
    VariantQuery,
    find,
    from_body,
    from_query,
)
from wgsvault.serve.context import UNAUTHENTICATED, Context
from wgsvault.serve.errors import NO_STORE, HtsgetError
from wgsvault.serve.params import read_json
from wgsvault.variants.release import releases
from wgsvault.variants.store import FrequencyStore

PREFIX = "/api/beacon"
_ASSEMBLIES = {
    "grch38": "grch38",
    "hg38": "grch38",
    "grch37": "grch37",
    "hg19": "grch37",
    "b37": "grch37",
}


class Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or {}


def _same_assembly(asked: str, served: str | None) -> bool:
    if served is None:
        return True
    a, s = asked.lower(), served.lower()
    return _ASSEMBLIES.get(a.split(".")[0], a) == _ASSEMBLIES.get(s.split(".")[0], s)


class StoreCache:
    """The database answers come from: the newest release of the store (or, `live`, the store
    itself), one `FrequencyStore` per thread (a store object is not shared between threads),
    reopened when its state file changes (a new release, or a new generation)."""

    def __init__(self, path: Path, live: bool) -> None:
        self.path, self.live = path, live
        self._local = threading.local()

    def _current(self) -> tuple[Path, int]:
        """The directory answers come from, and its state file's mtime."""
        if self.live:
            where, missing = self.path, "the variant frequency database is not built yet"
        else:
            numbers = releases(self.path)
            where = self.path / "releases" / (f"{numbers[-1]:04d}" if numbers else "none")
            missing = "the variant frequency database has no release yet"
        try:
            return where, (where / "state.json").stat().st_mtime_ns
        except OSError:
            raise Refused(503, missing) from None

    def get(self) -> Frequencies:
        where, mtime = self._current()
        held: tuple[Path, int, Frequencies] | None = getattr(self._local, "store", None)
        if held is not None and held[:2] == (where, mtime):
            return held[2]
        store: Frequencies = FrequencyStore(where)
        self._local.store = (where, mtime, store)
        if held is not None:
            held[2].close()
        return store


def router(ctx: Context) -> APIRouter:
    """The Beacon routes over `ctx`."""
    api = APIRouter()
    b = ctx.settings.beacon
    stores = StoreCache(b.variants or ctx.settings.home / "variants", b.live)
    root = f"{ctx.settings.base_url}{PREFIX}"

    def ok(doc: dict[str, Any]) -> JSONResponse:
        return JSONResponse(doc, headers=NO_STORE)

    def summary() -> tuple[str | None, int | None]:
        try:
            s = stores.get()
        except Refused:
            return None, None
        return s.assembly(), s.release()

    @api.get(PREFIX)
    @api.get(f"{PREFIX}/info")
    def info() -> JSONResponse:
        return ok(docs.info(b, *summary()))

    @api.get(f"{PREFIX}/service-info")
    def service_info() -> JSONResponse:
        return ok(docs.service_info(b))

    @api.get(f"{PREFIX}/configuration")
    def configuration() -> JSONResponse:
        return ok(docs.configuration(b))

    @api.get(f"{PREFIX}/map")
    def beacon_map() -> JSONResponse:
        return ok(docs.beacon_map(b, root))

    @api.get(f"{PREFIX}/entry_types")
    def entry_types() -> JSONResponse:
        return ok(docs.entry_types(b))

    @api.get(f"{PREFIX}/filtering_terms")
    def filtering_terms() -> JSONResponse:
        return ok(docs.filtering_terms(b))

    def error(e: Refused, q: VariantQuery | None) -> JSONResponse:
        requested = "boolean" if q is None else q.granularity
        return JSONResponse(
            docs.error(b, e.status, str(e), q, requested),
            status_code=e.status,
            headers={**NO_STORE, **e.headers},
        )

    def asker(request: Request) -> Credential | None:
        """The principal of a request; None for an allowed anonymous one; Refused 401 else."""
        header = request.headers.get("authorization")
        if header is None and b.anonymous:
            return None
        try:
            return access.authenticate_token(ctx.catalog, access.bearer_token(header))
        except access.Unauthenticated:
            raise Refused(401, UNAUTHENTICATED, {"WWW-Authenticate": "Bearer"}) from None

    def refuse_unknown(request: Request, e: Refused) -> JSONResponse:
        source = request.client.host if request.client else "unknown"
        ctx.refusals.add(source, "InvalidAuthentication", e.status, request.url.path)
        return error(e, None)

    def record(
        request: Request,
        cred: Credential | None,
        q: VariantQuery | None,
        level: policy.Level,
        given: str | None,
        e: Refused | None,
    ) -> bool:
        """Audit the query (and charge it when allowed) in one transaction; False: the budget is
        spent (audited as refused)."""
        source = request.client.host if request.client else "unknown"
        who = f"source:{source}" if cred is None else f"principal:{cred.principal.id}"
        detail: dict[str, Any] = {"path": request.url.path, "level": level.name}
        if cred is None:
            detail["source"] = source
        if q is not None:
            detail["query"] = q.echo()
            detail["requested"] = q.granularity
        with ctx.catalog.session() as s:
            charged = e is None and policy.charge(
                s, who, b.budget if cred else b.anonymous_budget, b.window
            )
            if e is None and not charged:
                e = Refused(429, "the query budget of this window is spent")
            if e is None:
                detail.update(outcome="allowed", returned=given, status=200)
            else:
                detail.update(outcome="refused", status=e.status, reason=str(e)[:300])
            if cred is not None or e is None:
                actor = "anonymous" if cred is None else f"principal:{cred.principal.name}"
                audit.append(s, actor=actor, event="beacon", detail=detail)
        if cred is None and e is not None:  # counted, as every refusal without a principal
            ctx.refusals.add(source, f"beacon-{e.status}", e.status, request.url.path)
        return charged

    def answer(request: Request, cred: Credential | None, q: VariantQuery) -> JSONResponse:
        level = policy.ANONYMOUS if cred is None else policy.level_of(ctx.catalog, cred.principal)
        given = policy.returned(q.granularity, level)
        try:
            store = stores.get()
            assembly = store.assembly()
            if q.assembly_id is not None and not _same_assembly(q.assembly_id, assembly):
                raise Refused(400, f"assemblyId {q.assembly_id}: this Beacon serves {assembly}")
        except Refused as bad:
            record(request, cred, q, level, None, bad)
            return error(bad, q)
        if not record(request, cred, q, level, given, None):
            wait = policy.retry_after(b.window)
            spent = Refused(
                429, "the query budget of this window is spent", {"Retry-After": str(wait)}
            )
            return error(spent, q)
        alleles = find(store, q)
        meta = docs.meta(b, q, q.granularity, given)
        exists = bool(alleles)
        if given == "boolean":
            return ok({"meta": meta, "responseSummary": {"exists": exists}})
        page = alleles[q.skip : q.skip + q.limit]
        summary = {"exists": exists, "numTotalResults": len(alleles), "countPrecision": "exact"}
        if given == "count":
            return ok(
                {
                    "meta": meta,
                    "responseSummary": summary,
                    "info": {"alleles": docs.count_alleles(page, b.floor)},
                }
            )
        release = store.release()
        records = [docs.record(a, level, b.floor, assembly, root, release) for a in page]
        wanted = {"ALL": True, "HIT": exists, "MISS": not exists, "NONE": False}[q.include]
        sets = (
            [
                {
                    "id": "current" if release is None else f"release-{release}",
                    "setType": "dataset",
                    "exists": exists,
                    "resultsCount": len(alleles),
                    "results": records,
                }
            ]
            if wanted
            else []
        )
        return ok({"meta": meta, "responseSummary": summary, "response": {"resultSets": sets}})

    def refuse_query(request: Request, cred: Credential | None, exc: Exception) -> JSONResponse:
        e = Refused(exc.status if isinstance(exc, HtsgetError) else 400, str(exc))
        level = policy.ANONYMOUS if cred is None else policy.level_of(ctx.catalog, cred.principal)
        record(request, cred, None, level, None, e)
        return error(e, None)

    @api.get(f"{PREFIX}/g_variants")
    def g_variants_get(request: Request) -> JSONResponse:
        try:
            cred = asker(request)
        except Refused as e:
            return refuse_unknown(request, e)
        params = request.query_params
        repeated = len(params.multi_items()) != len(params)
        try:
            q = from_query(dict(params), repeated, b.max_range, b.max_records)
        except BadQuery as exc:
            return refuse_query(request, cred, exc)
        return answer(request, cred, q)

    @api.post(f"{PREFIX}/g_variants")
    async def g_variants_post(request: Request) -> JSONResponse:
        try:
            cred = await run_in_threadpool(asker, request)
        except Refused as e:
            return refuse_unknown(request, e)
        try:
            data = await read_json(request, ctx.settings.limits)
            q = from_body(data, b.max_range, b.max_records)
        except (BadQuery, HtsgetError) as exc:
            return await run_in_threadpool(refuse_query, request, cred, exc)
        return await run_in_threadpool(answer, request, cred, q)

    known = {
        "": "GET",
        "info": "GET",
        "service-info": "GET",
        "configuration": "GET",
        "map": "GET",
        "entry_types": "GET",
        "filtering_terms": "GET",
        "g_variants": "GET, POST",
    }
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    @api.api_route(PREFIX, methods=methods[1:])
    @api.api_route(f"{PREFIX}/{{rest:path}}", methods=methods)
    def elsewhere(request: Request, rest: str = "") -> JSONResponse:
        """Anything else under the prefix: a Beacon error (404, or 405 with `Allow`)."""
        allow = known.get(rest)
        e = (
            Refused(405, "method not allowed", {"Allow": allow})
            if allow
            else Refused(404, "no such Beacon endpoint")
        )
        source = request.client.host if request.client else "unknown"
        ctx.refusals.add(
            source, "NotFound" if allow is None else "MethodNotAllowed", e.status, request.url.path
        )
        return error(e, None)

    return api
