"""Catalog tables (SQLAlchemy 2 declarative models).

The catalog is the vault's memory of what is stored where: data controllers, genomes (with their
clinical context when a manifest gave it), scanned roots, scans, one row per file (or per BCL run
folder, counted as one unit) and the issues each scan reported. Bulk paths (scan, plan) use the
`__table__` of these models through SQLAlchemy Core; the ORM classes serve everything else.

Every schema change is an alembic migration in `catalog/migrations/versions`; a test checks that
migrations and models agree.
"""

from __future__ import annotations

import datetime as dt
from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A time zone-aware timestamp on every backend: SQLite stores no zone and hands back naive
    values, which are UTC (the vault writes only UTC), so they come back aware here once,
    instead of each reader repairing them."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def table_of(model: type[Base]) -> Table:
    """The Core table of a model, for bulk statements."""
    return cast(Table, model.__table__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Controller(Base):
    """A data controller: a region, or the national database."""

    __tablename__ = "controller"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # "region" | "national"


class Genome(Base):
    """A genome (one person's sequenced sample), known by its national genome id (`name`)."""

    __tablename__ = "genome"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    patient_group: Mapped[str | None] = mapped_column(String(200), index=True)
    indication: Mapped[str | None] = mapped_column(String(500))
    requisition_region: Mapped[str | None] = mapped_column(String(200))
    sequencing_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    # the case (report stage): dates of the clinical process, empty while a step is pending
    requisition_date: Mapped[dt.date | None] = mapped_column(Date)
    sample_date: Mapped[dt.date | None] = mapped_column(Date)
    delivery_date: Mapped[dt.date | None] = mapped_column(Date)
    report_date: Mapped[dt.date | None] = mapped_column(Date)
    urgency: Mapped[str | None] = mapped_column(String(20))  # acute | urgent | standard
    family_id: Mapped[str | None] = mapped_column(String(200), index=True)  # a trio: one case
    sex: Mapped[str | None] = mapped_column(String(10))  # female | male | unknown
    answered: Mapped[bool | None] = mapped_column(Boolean)  # the report answered the question
    manifest: Mapped[str | None] = mapped_column(Text)  # file the clinical context came from
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ReferenceBuild(Base):
    """A reference genome build (GRCh38, GRCh37, ...) registered with `wgsvault ref add`."""

    __tablename__ = "reference_build"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)
    fasta: Mapped[str | None] = mapped_column(Text)  # the registry's copy, relative to its root
    source: Mapped[str | None] = mapped_column(Text)  # the FASTA it was registered from
    sha256: Mapped[str | None] = mapped_column(String(64))  # of the registry's FASTA copy


class ReferenceSequence(Base):
    """One sequence of a build, with the digests CRAM (`M5`) and refget know it by."""

    __tablename__ = "reference_sequence"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("reference_build.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    length: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str] = mapped_column(String(32), index=True)
    refget: Mapped[str] = mapped_column(String(40))  # "SQ." + sha512t24u

    __table_args__ = (Index(None, "build_id", "name", unique=True),)


class Scan(Base):
    """One run of `wgsvault scan` over one or more roots."""

    __tablename__ = "scan"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default="running")
    roots: Mapped[str] = mapped_column(Text)  # JSON list of root paths
    layout: Mapped[str] = mapped_column(String(200))
    files_seen: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_seen: Mapped[int] = mapped_column(BigInteger, default=0)
    added: Mapped[int] = mapped_column(BigInteger, default=0)
    changed: Mapped[int] = mapped_column(BigInteger, default=0)
    vanished: Mapped[int] = mapped_column(BigInteger, default=0)
    issues: Mapped[int] = mapped_column(BigInteger, default=0)


class FootprintSnapshot(Base):
    """What was stored when a scan finished, per controller and file type (storage history)."""

    __tablename__ = "footprint_snapshot"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scan.id"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    controller: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))
    files: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)
    genomes: Mapped[int] = mapped_column(BigInteger)


class Root(Base):
    """A scanned storage root; files belong to the root they were found under."""

    __tablename__ = "root"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    last_scan_id: Mapped[int | None] = mapped_column(ForeignKey("scan.id"))


class File(Base):
    """A stored file, or an Illumina run folder as one unit (`n_files` > 1).

    `unit` is the path of the group the file belongs to: its own path for a data file, the data
    file's path for an index, the shared pair key for the two FASTQ files of a pair. The sha256
    digest is valid only while `size` and `mtime_ns` equal the values it was computed for.
    """

    __tablename__ = "file"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    root_id: Mapped[int] = mapped_column(ForeignKey("root.id"), index=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    unit: Mapped[str] = mapped_column(Text, index=True)
    type: Mapped[str] = mapped_column(String(20))
    read_no: Mapped[int | None] = mapped_column(SmallInteger)
    controller_id: Mapped[int | None] = mapped_column(ForeignKey("controller.id"))
    genome_id: Mapped[int | None] = mapped_column(ForeignKey("genome.id"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    inode: Mapped[int] = mapped_column(BigInteger)
    n_files: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20), default="present")  # present | vanished
    sha256: Mapped[str | None] = mapped_column(String(64))
    sha256_size: Mapped[int | None] = mapped_column(BigInteger)
    sha256_mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
    first_scan_id: Mapped[int] = mapped_column(ForeignKey("scan.id"))
    last_change_scan_id: Mapped[int] = mapped_column(ForeignKey("scan.id"))

    __table_args__ = (Index(None, "controller_id", "type"),)


class ScanIssue(Base):
    """Something a scan could not account for: unreadable path, broken link, unknown file..."""

    __tablename__ = "scan_issue"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scan.id"), index=True)
    path: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")


class Proof(Base):
    """The proof (codec.verify, codec.covers) under which a file was written or one let go."""

    __tablename__ = "proof"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int | None] = mapped_column(ForeignKey("file.id"), index=True)
    path: Mapped[str] = mapped_column(Text)  # the file the proof is about (new CRAM, sidecar)
    kind: Mapped[str] = mapped_column(String(40))  # fastq->cram | alignment->cram | covers | ...
    sha256: Mapped[str | None] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)  # the proof JSON
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)


class Approval(Base):
    """A data controller's approval of its actions in one plan (by the plan's actions digest)."""

    __tablename__ = "approval"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_sha256: Mapped[str] = mapped_column(String(64))
    controller: Mapped[str] = mapped_column(String(200))
    actions_sha256: Mapped[str] = mapped_column(String(64))  # of this controller's actions
    action_ids: Mapped[str] = mapped_column(Text)  # JSON list
    approved_by: Mapped[str] = mapped_column(String(200))
    reference: Mapped[str] = mapped_column(String(200))  # case / decision id
    approved_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)

    __table_args__ = (Index(None, "plan_sha256", "controller", unique=True),)


class ApplyRun(Base):
    """One invocation of `wgsvault apply`."""

    __tablename__ = "apply_run"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_sha256: Mapped[str] = mapped_column(String(64), index=True)
    plan_path: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    executor: Mapped[str] = mapped_column(String(40))
    #: running | done | failed (local); submitted | done | incomplete | cancelled (cluster)
    status: Mapped[str] = mapped_column(String(20), default="running")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    options: Mapped[str | None] = mapped_column(Text)  # JSON: a cluster run's resources, limits
    promised_bytes: Mapped[int | None] = mapped_column(BigInteger)  # the plan's expected savings
    freed_bytes: Mapped[int | None] = mapped_column(BigInteger)  # set when a local run ends


class ClusterJob(Base):
    """One attempt at one genome of a cluster run: a Slurm job (array task) and its state."""

    __tablename__ = "cluster_job"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("apply_run.id"))
    genome: Mapped[str] = mapped_column(String(200))
    attempt: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str] = mapped_column(String(40), index=True)  # "ARRAY_TASK" as Slurm names it
    cpus: Mapped[int] = mapped_column(Integer)
    mem_mb: Mapped[int] = mapped_column(Integer)
    time_min: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(40))  # Slurm's, e.g. PENDING, OUT_OF_MEMORY
    reason: Mapped[str | None] = mapped_column(Text)
    log: Mapped[str | None] = mapped_column(Text)  # the job's log file
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)

    __table_args__ = (Index(None, "run_id", "genome"),)


class JournalEntry(Base):
    """Write-ahead journal: every step of an action, before it runs and after."""

    __tablename__ = "journal"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("apply_run.id"))
    plan_sha256: Mapped[str] = mapped_column(String(64))
    action_id: Mapped[str] = mapped_column(String(40))
    genome: Mapped[str | None] = mapped_column(String(200))
    step: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(20))  # started | done | failed | skipped
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)

    __table_args__ = (Index(None, "plan_sha256", "action_id"),)


class Quarantine(Base):
    """An original moved aside (same filesystem, renamed) before it may be purged."""

    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int | None] = mapped_column(ForeignKey("file.id"), index=True)
    genome: Mapped[str | None] = mapped_column(String(200), index=True)
    controller: Mapped[str | None] = mapped_column(String(200))
    original_path: Mapped[str] = mapped_column(Text)
    quarantine_path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    plan_sha256: Mapped[str] = mapped_column(String(64))
    action_id: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(20))  # quarantined | purged | restored
    quarantined_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class GenomeLock(Base):
    """At most one apply works on a genome, across processes and machines."""

    __tablename__ = "genome_lock"
    genome: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(300))  # host:pid:run
    acquired_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)


class AuditEntry(Base):
    """Append-only, hash-chained audit log: `hash = sha256(prev_hash + canonical entry)`."""

    __tablename__ = "audit"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(40), index=True)
    genome: Mapped[str | None] = mapped_column(String(200), index=True)
    controller: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text)  # canonical JSON: digests, sizes, outcome
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """One row: the newest audit entry; appending updates it first, which serialises writers."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class Principal(Base):
    """Someone (clinician, approved researcher, service) who may be granted access to data."""

    __tablename__ = "principal"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: data (grants decide), reporting (aggregates, small cells suppressed), admin (exact counts)
    role: Mapped[str] = mapped_column(String(20), default="data", server_default="data")


class ApiToken(Base):
    """A bearer token of a principal; only its sha256 is stored."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principal.id"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to recognise it in logs
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AccessGrant(Base):
    """Access of a principal to a cohort (genomes, a patient group, a controller, a project),
    optionally limited to a genomic region."""

    __tablename__ = "access_grant"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principal.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # genome | patient_group | controller | project
    value: Mapped[str] = mapped_column(String(200))
    project: Mapped[str | None] = mapped_column(String(200))  # research project / case reference
    region: Mapped[str | None] = mapped_column(String(200))  # chr:start-end (1-based, inclusive)
    granted_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_now)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # None: until revoked
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class BeaconUsage(Base):
    """Beacon v2 queries counted per asker and budget window (serve/beacon_policy.py): `who` is
    `principal:<id>` or, for anonymous queries where they are allowed, `source:<address>`."""

    __tablename__ = "beacon_usage"
    who: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # epoch seconds
    used: Mapped[int] = mapped_column(Integer)
