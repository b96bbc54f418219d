"""Access control: principals, hashed tokens, grants to cohorts, regions, decisions, CLI."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select, text, update
from typer.testing import CliRunner

from wgsvault import access, audit
from wgsvault.access import Decision, Region, Unauthenticated, parse_region
from wgsvault.catalog import Catalog
from wgsvault.catalog.manifest import import_manifest
from wgsvault.catalog.models import ApiToken, File
from wgsvault.cli import common as cli
from wgsvault.cli.main import app
from wgsvault.errors import AccessDenied, InputError
from wgsvault.inventory.layout import DEFAULT_LAYOUT
from wgsvault.inventory.scan import scan

from conftest import make_files

BY = "dr.grant@rigshospitalet.dk"


@pytest.fixture
def store(catalog: Catalog, tmp_path: Path) -> Catalog:
    """G1, G2 at region-east (G2 also national), G3 at region-west; G1, G3 in group "epilepsy"."""
    root = tmp_path / "estate"
    make_files(
        root,
        {
            "region-east/G1/G1.cram": 300,
            "region-east/G1/G1.cram.crai": 3,
            "region-east/G2/G2.cram": 300,
            "national/G2/G2.cram": 300,
            "region-west/G3/G3.cram": 300,
        },
    )
    scan(catalog, [str(root)], DEFAULT_LAYOUT)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("genome_id,patient_group\nG1,epilepsy\nG2,cardio\nG3,epilepsy\n")
    import_manifest(catalog, manifest)
    access.add_principal(catalog, "ann", "clinical geneticist")
    return catalog


def all_grants(cat: Catalog) -> list[str]:
    return [f"{g.kind}:{g.value}" for g in access.list_grants(cat)]


# --------------------------------------------------------------------------- principals, tokens


def test_principal_unique_and_valid(sqlite_catalog: Catalog) -> None:
    access.add_principal(sqlite_catalog, "ann@rh.dk")
    with pytest.raises(InputError, match="exists already"):
        access.add_principal(sqlite_catalog, "ann@rh.dk")
    with pytest.raises(InputError, match="principal name"):
        access.add_principal(sqlite_catalog, "ann smith")
    assert [p.name for p in access.list_principals(sqlite_catalog)] == ["ann@rh.dk"]


def test_token_issue_authenticate_revoke(catalog: Catalog) -> None:
    access.add_principal(catalog, "ann")
    token = access.issue_token(catalog, "ann")
    assert token.startswith(access.TOKEN_PREFIX) and len(token) > 40
    assert access.authenticate(catalog, token).name == "ann"
    assert access.bearer_token(f"Bearer {token}") == token
    assert access.bearer_token("Basic abc") is None

    other = access.issue_token(catalog, "ann")
    assert other != token
    revoked = access.revoke_token(catalog, token[: access.PREFIX_CHARS])
    assert revoked.revoked_at is not None
    with pytest.raises(Unauthenticated, match="revoked") as exc:
        access.authenticate(catalog, token)
    assert exc.value.reason == "revoked" and isinstance(exc.value, AccessDenied)
    assert exc.value.exit_code == 5
    assert access.authenticate(catalog, other).name == "ann"  # only that token
    with pytest.raises(InputError, match="revoked already"):
        access.revoke_token(catalog, token)  # the whole token works too

    for bad, reason in [(None, "missing"), ("", "missing"), ("wgv_nope", "unknown")]:
        with pytest.raises(Unauthenticated) as exc:
            access.authenticate(catalog, bad)
        assert exc.value.reason == reason
    with pytest.raises(Unauthenticated) as exc:
        access.authenticate(catalog, other[:-1] + ("A" if other[-1] != "A" else "B"))
    assert exc.value.reason == "unknown"


def test_token_expires(catalog: Catalog) -> None:
    access.add_principal(catalog, "ann")
    token = access.issue_token(catalog, "ann", expires_in=dt.timedelta(days=1))
    assert access.authenticate(catalog, token).name == "ann"
    with catalog.session() as s:
        s.execute(
            update(ApiToken).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    with pytest.raises(Unauthenticated, match="expired") as exc:
        access.authenticate(catalog, token)
    assert exc.value.reason == "expired"
    with pytest.raises(InputError, match="positive"):
        access.issue_token(catalog, "ann", expires_in=dt.timedelta(0))


def test_disabled_principal(store: Catalog) -> None:
    token = access.issue_token(store, "ann")
    access.add_grant(store, "ann", genomes=["G1"], granted_by=BY)
    access.disable_principal(store, "ann")
    with pytest.raises(Unauthenticated) as exc:
        access.authenticate(store, token)
    assert exc.value.reason == "disabled"
    assert not access.authorize(store, "ann", "G1").allowed
    assert access.cohort(store, "ann") == []
    with pytest.raises(InputError, match="disabled"):
        access.issue_token(store, "ann")


def test_reporting_principal_sees_no_genome_data(store: Catalog) -> None:
    """A steering-group member's principal reads aggregate reports, never genomes, even with a
    grant given by mistake; a bad role is refused."""
    access.add_principal(store, "board", role="reporting")
    access.add_grant(store, "board", genomes=["G1"], granted_by=BY)
    d = access.authorize(store, "board", "G1")
    assert not d.allowed and "reporting role" in d.reason
    with pytest.raises(InputError, match="role 'boss': choose one of data, reporting, admin"):
        access.add_principal(store, "x", role="boss")


def test_only_the_sha256_is_stored(catalog: Catalog) -> None:
    access.add_principal(catalog, "ann")
    token = access.issue_token(catalog, "ann")
    secret = token[access.PREFIX_CHARS :]
    with catalog.session() as s:
        row = s.scalars(select(ApiToken)).one()
        assert row.token_sha256 == access.token_sha256(token)
        assert row.prefix == token[: access.PREFIX_CHARS]
        # no column of any table holds the token or its secret part
        tables = ["api_token", "principal", "access_grant", "audit"]
        for table in tables:
            for r in s.execute(text(f"SELECT * FROM {table}")):  # noqa: S608
                dump = " ".join(str(v) for v in r)
                assert secret not in dump and token not in dump, table


# --------------------------------------------------------------------------- regions


def test_parse_region() -> None:
    assert parse_region("chr1:100-200") == Region("chr1", 99, 200)
    assert parse_region("chr1") == Region("chr1", 0, None)
    assert parse_region("chr1:1,000") == Region("chr1", 999, None)
    assert parse_region("{HLA-A*01:01}:1-10") == Region("HLA-A*01:01", 0, 10)
    for r in ("chr1:100-200", "chr1", "chr1:5", "{HLA-A*01:01}:1-10"):
        assert str(parse_region(r)) == r
    for bad in ("", "chr1:0-5", "chr1:20-10", "chr1:a-b", "chr 1", "*", "chr1:5-"):
        with pytest.raises(InputError):
            parse_region(bad)


def test_region_covers() -> None:
    r = parse_region("chr1:101-200")  # 0-based [100, 200)
    assert r.covers("chr1", 100, 200)
    assert r.covers("chr1", 150, 160)
    assert not r.covers("chr1", 99, 150)  # starts before
    assert not r.covers("chr1", 150, 201)  # ends after
    assert not r.covers("chr1", 150, None)  # to the end of the sequence
    assert not r.covers("chr1", None, 150)  # from the start
    assert not r.covers("chr2", 150, 160)
    assert not r.covers("1", 150, 160)  # names are not aliased
    assert not r.covers(None, None, None)  # whole file
    whole = parse_region("chr1")
    assert whole.covers("chr1", None, None) and whole.covers("chr1", 5, None)
    assert not whole.covers(None, None, None)


# --------------------------------------------------------------------------- grants, decisions


def test_grant_by_genome_list(store: Catalog) -> None:
    rows = access.add_grant(store, "ann", genomes=["G1", "G2"], project="P-17", granted_by=BY)
    assert [(g.kind, g.value, g.project) for g in rows] == [
        ("genome", "G1", "P-17"),
        ("genome", "G2", "P-17"),
    ]
    again = access.add_grant(store, "ann", genomes=["G1"], project="P-17", granted_by=BY)
    assert [g.id for g in again] == [rows[0].id]  # not duplicated
    d = access.authorize(store, "ann", "G1")
    assert d == Decision(True, d.reason, rows[0].id) and d.http_status == 200
    assert access.authorize(store, "ann", "G2", "chr1", 0, 10).allowed
    refused = access.authorize(store, "ann", "G3")
    # not granted at all: as if it did not exist (404), but the audit knows it does
    assert not refused.allowed and refused.grant_id is None and refused.http_status == 404
    assert refused.known
    assert access.cohort(store, "ann") == ["G1", "G2"]
    with pytest.raises(InputError, match="unknown genome"):
        access.add_grant(store, "ann", genomes=["G1", "G9"], granted_by=BY)
    assert all_grants(store) == ["genome:G1", "genome:G2"]  # all or nothing


def test_grant_by_patient_group(store: Catalog) -> None:
    (g,) = access.add_grant(store, "ann", patient_group="epilepsy", granted_by=BY)
    assert access.authorize(store, "ann", "G1").grant_id == g.id
    assert access.authorize(store, "ann", "G3").allowed
    assert not access.authorize(store, "ann", "G2").allowed
    assert access.cohort(store, "ann") == ["G1", "G3"]
    with pytest.raises(InputError, match="unknown patient group"):
        access.add_grant(store, "ann", patient_group="oncology", granted_by=BY)


def test_grant_by_controller(store: Catalog) -> None:
    (g,) = access.add_grant(store, "ann", controller="national", granted_by=BY)
    assert access.authorize(store, "ann", "G2").grant_id == g.id
    assert not access.authorize(store, "ann", "G1").allowed
    assert access.cohort(store, "ann") == ["G2"]
    with store.session() as s:  # the national copy vanished: no longer under that controller
        s.execute(update(File).where(File.path.like("%national%")).values(status="vanished"))
    assert not access.authorize(store, "ann", "G2").allowed
    assert access.cohort(store, "ann") == []
    with pytest.raises(InputError, match="unknown controller"):
        access.add_grant(store, "ann", controller="region-north", granted_by=BY)


def test_grant_needs_exactly_one_cohort(store: Catalog) -> None:
    with pytest.raises(InputError, match="exactly one"):
        access.add_grant(store, "ann", granted_by=BY)
    with pytest.raises(InputError, match="exactly one"):
        access.add_grant(store, "ann", genomes=["G1"], controller="national", granted_by=BY)
    with pytest.raises(InputError, match="unknown"):
        access.add_grant(store, "bob", genomes=["G1"], granted_by=BY)


def test_region_restriction(store: Catalog) -> None:
    (g,) = access.add_grant(store, "ann", genomes=["G1"], region="chr17:1001-2000", granted_by=BY)
    assert g.region == "chr17:1001-2000"
    inside = access.authorize(store, "ann", "G1", "chr17", 1000, 2000)
    assert inside.allowed and inside.grant_id == g.id
    assert access.authorize(store, "ann", "G1", "chr17", 1500, 1600).allowed
    outside = access.authorize(store, "ann", "G1", "chr17", 1500, 2500)
    assert not outside.allowed and "chr17:1001-2000" in outside.reason
    assert not access.authorize(store, "ann", "G1", "chr17").allowed  # whole sequence
    assert not access.authorize(store, "ann", "G1", "chr1", 1500, 1600).allowed
    whole = access.authorize(store, "ann", "G1")
    assert not whole.allowed and whole.http_status == 403
    assert "limited to region(s) chr17:1001-2000" in whole.reason
    assert access.cohort(store, "ann") == ["G1"]

    # a second, unrestricted grant (through the patient group) lifts the restriction
    (wide,) = access.add_grant(store, "ann", patient_group="epilepsy", granted_by=BY)
    assert access.authorize(store, "ann", "G1") == Decision(True, whole_reason(wide), wide.id)
    with pytest.raises(InputError, match="need a reference"):
        access.authorize(store, "ann", "G1", None, 5, 10)
    with pytest.raises(InputError, match="before start"):
        access.authorize(store, "ann", "G1", "chr1", 10, 5)


def whole_reason(g: access.AccessGrant) -> str:
    return f"granted by grant {g.id} ({g.kind})"


def test_revoked_grant_no_longer_allows(store: Catalog) -> None:
    (g,) = access.add_grant(store, "ann", genomes=["G1"], granted_by=BY)
    (p,) = access.add_grant(store, "ann", patient_group="epilepsy", granted_by=BY)
    access.revoke_grant(store, g.id, by=BY)
    assert access.authorize(store, "ann", "G1").grant_id == p.id
    revoked = access.revoke_grant(store, principal="ann", patient_group="epilepsy", by=BY)
    assert [r.id for r in revoked] == [p.id]
    assert not access.authorize(store, "ann", "G1").allowed
    assert access.cohort(store, "ann") == []
    assert access.list_grants(store, "ann") == []
    assert len(access.list_grants(store, "ann", include_revoked=True)) == 2
    with pytest.raises(InputError, match="revoked already"):
        access.revoke_grant(store, g.id)
    with pytest.raises(InputError, match="no active"):
        access.revoke_grant(store, principal="ann", genome="G1")


def test_unknown_genome_is_not_found(store: Catalog) -> None:
    access.add_grant(store, "ann", genomes=["G1"], granted_by=BY)
    d = access.authorize(store, "ann", "G404")
    assert d == Decision(False, access.NOT_FOUND, known=False) and d.http_status == 404
    known = access.authorize(store, "ann", "G2")  # exists, but no grant: the same answer
    assert known == Decision(False, access.NOT_FOUND) and known.http_status == 404


def test_changes_are_audited_without_patient_data(store: Catalog) -> None:
    (g,) = access.add_grant(store, "ann", genomes=["G1"], region="chr2:5-9", granted_by=BY)
    access.add_grant(store, "ann", patient_group="epilepsy", project="P-1", granted_by=BY)
    access.revoke_grant(store, g.id, by="dpo@rh.dk")
    entries = audit.show(store, event="access")
    changes = [(e["detail"]["change"], e["genome"], e["actor"]) for e in entries]
    assert changes == [
        ("principal-add", None, audit.default_actor()),
        ("grant", "G1", BY),
        ("grant", None, BY),  # a patient group grant names no genome
        ("revoke", "G1", "dpo@rh.dk"),
    ]
    assert entries[1]["detail"]["region"] == "chr2:5-9"
    assert entries[2]["detail"]["value"] == "epilepsy"
    assert audit.verify(store).ok

    d = access.authorize(store, "ann", "G3")
    access.record_decision(store, "ann", "G3", d)
    access.record_decision(store, "ann", "nope", access.authorize(store, "ann", "nope"))
    last = audit.show(store, limit=2)
    assert [(e["event"], e["genome"]) for e in last] == [("access", "G3"), ("refuse", None)]
    assert last[1]["detail"]["requested"] == "nope"


# --------------------------------------------------------------------------- CLI


def test_cli(store: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.out, "_width", 200)  # tables unabridged (COLUMNS is read at import)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        res = runner.invoke(app, ["--catalog", store.url, *args])
        if code == 0 and res.exception is not None and not isinstance(res.exception, SystemExit):
            raise res.exception
        assert res.exit_code == code, res.output
        return res.output

    assert "principal bob added" in run("principal", "add", "bob", "--description", "researcher")
    issued = run("token", "issue", "bob", "--expires-days", "30").splitlines()
    token = issued[-1]
    assert token.startswith("wgv_") and " " not in token
    assert "shown only now" in "\n".join(issued[:-1])
    assert access.authenticate(store, token).name == "bob"

    out = run("grant", "add", "bob", "--genome", "G1", "--genome", "G2", "--by", BY)
    ids = [int(line.split()[1].rstrip(":")) for line in out.splitlines()]
    assert len(ids) == 2
    out = run("grant", "add", "bob", "--controller", "region-west", "--region", "chr1:1-100",
              "--project", "P-9", "--by", BY)  # fmt: skip
    assert "region chr1:1-100 project P-9" in out
    listed = run("grant", "list", "bob")
    assert "region-west" in listed and "G2" in listed
    assert "allowed" in run("grant", "check", "bob", "G3", "--region", "chr1:10-20")
    assert "refused (403)" in run("grant", "check", "bob", "G3", code=5)

    run("grant", "revoke", str(ids[0]), "--by", BY)
    assert not access.authorize(store, "bob", "G1").allowed
    assert "G1" not in run("grant", "list", "bob") and "G1" in run("grant", "list", "--all")

    assert "bob" in run("principal", "list")
    prefix = token[: access.PREFIX_CHARS]
    assert prefix in run("token", "list", "bob")
    assert f"token {prefix} revoked" in run("token", "revoke", prefix)
    with pytest.raises(Unauthenticated):
        access.authenticate(store, token)
    assert "disabled" in run("principal", "disable", "bob")

    res = runner.invoke(app, ["--catalog", store.url, "grant", "add", "ann", "--by", BY])
    assert isinstance(res.exception, InputError)
    details = [e["detail"] for e in audit.show(store, event="access")]
    assert all(set(d) & {"patient_group", "token_sha256"} == set() for d in details)
    assert token not in orjson.dumps(details).decode()
