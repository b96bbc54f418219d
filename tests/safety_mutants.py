#!/usr/bin/env python3
"""Safety mutants: every data-safety and access guard is switched off, one at a time, and the
tests that must catch it are run against that copy; a mutant that survives is a failure.

A guard is one condition in the source (the comparison before a copy is deleted, the refusal to
overwrite, the check of a block's authority...). Each mutant below names the file, the exact text
of the guard (which must occur exactly once, so the list cannot silently drift from the code), the
text that switches it off, and the tests that must then fail. The package is copied to a
temporary folder, mutated there, and the tests run with `PYTHONPATH` pointing at the copy (the
tests' own subprocesses, `python -m wgsvault ...`, inherit it). First the same tests must pass on
the unmutated code.

    python tests/safety_mutants.py [--jobs N] [--only WORD]

Prints a table; exits 1 if any mutant survived, the baseline failed, or a guard text is not
found exactly once. It runs in `.ci/run`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "wgsvault"


@dataclass(frozen=True)
class Mutant:
    guard: str
    path: str  # below src/wgsvault
    old: str
    new: str
    tests: tuple[str, ...]


G = "tests/test_guards.py::"
A = "tests/test_apply.py::"
S = "tests/test_security.py::"
BC = "tests/test_beacon.py::"
MUTANTS = [
    Mutant(
        "a regional copy goes only if its sha256 equals the national copy's (scenario C)",
        "apply/prove.py",
        "if h1 != h2:",
        "if False:",
        (G + "test_policy_c_lets_identical_copies_go_and_keeps_different_ones[sqlite]",),
    ),
    Mutant(
        "a BAM -> CRAM conversion whose proof failed does not land",
        "codec/convert.py",
        'if not proof["ok"]:',
        "if False:",
        (G + "test_failed_bam_proof_lands_nothing",),
    ),
    Mutant(
        "quarantine never overwrites an existing file",
        "apply/quarantine.py",
        "if dst.exists() or dst.is_symlink():",
        "if False:",
        (G + "test_quarantine_never_overwrites",),
    ),
    Mutant(
        "originals are renamed into quarantine, never deleted",
        "apply/quarantine.py",
        "    os.rename(src, dst)",
        "    dst.write_bytes(b''); os.unlink(src)",
        (A + "test_undo_and_purge[sqlite]",),
    ),
    Mutant(
        "a block of a file that changed since the ticket is refused",
        "serve/blocks.py",
        '            or st.st_size != size\n            or int(p.get("m", st.st_mtime_ns)) != '
        "st.st_mtime_ns\n",
        "",
        (G + "test_block_of_a_file_changed_since_the_ticket_is_refused",),
    ),
    Mutant(
        "restore never overwrites an output (unaligned CRAM, BAM)",
        "codec/restore.py",
        "if f.exists():",
        "if False:",
        (G + "test_restore_never_overwrites",),
    ),
    Mutant(
        "restore never overwrites an output (aligned CRAM + sidecar)",
        "codec/covers_restore.py",
        "if o.exists() or o.is_symlink():",
        "if False:",
        (G + "test_restore_never_overwrites",),
    ),
    Mutant(
        "proof of a FASTQ conversion: the restored bytes' sha256 equals the original's",
        "codec/verify.py",
        'ok = digest == entry["decompressed_sha256"]',
        "ok = True",
        ("tests/test_verify.py::test_unaligned_cram_of_other_reads_fails",),
    ),
    Mutant(
        "a FASTQ conversion whose byte proof failed does not land",
        "codec/verify.py",
        "        if not ok:\n",
        "        if False:\n",
        ("tests/test_dialects.py::test_a_conversion_whose_proof_fails_lands_nothing",),
    ),
    Mutant(
        "paired FASTQ: mates must name the same fragment",
        "codec/fastq_encode.py",
        "if rec1[0][:b1] != rec2[0][:b2]:",
        "if False:",
        ("tests/test_dialects.py::test_pairs_out_of_step_and_counts",),
    ),
    Mutant(
        "FASTQ: sequence and quality lengths must agree",
        "codec/fastq_reader.py",
        "if len(s) != len(q):",
        "if False:",
        ("tests/test_dialects.py::test_bad_input_is_refused_by_line",),
    ),
    Mutant(
        "aligned restore: a sidecar serves only the CRAM it was made for",
        "codec/covers_restore.py",
        "if cram_sha != sc.cram_sha256:",
        "if False:",
        ("tests/test_covers.py::test_wrong_sidecar_for_cram",),
    ),
    Mutant(
        "aligned restore: the original's sha256 is checked before the files land",
        "codec/covers_restore.py",
        "if keep_order and digest != meta.sha256_decompressed:",
        "if False:",
        ("tests/test_covers.py::test_restore_whose_bytes_differ_from_the_original_lands_nothing",),
    ),
    Mutant(
        "proof of a BAM conversion: equal record checksums",
        "codec/verify.py",
        "elif ca != cb:",
        "elif False:",
        ("tests/test_verify.py::test_altered_record_is_named",),
    ),
    Mutant(
        "a FASTQ goes only if the aligned CRAM covers every read",
        "apply/prove.py",
        "if not rep.covered:",
        "if False:",
        (G + "test_cram_that_does_not_cover_the_fastq_keeps_it",),
    ),
    Mutant(
        "nothing goes before its preconditions are proven",
        "apply/runner.py",
        "            evidence = self.prover.prove(a)",
        "            evidence = []",
        (G + "test_cram_that_does_not_cover_the_fastq_keeps_it",),
    ),
    Mutant(
        "evidence a failed conversion would have made is no evidence",
        "apply/prove.py",
        "if e in self.to_convert and e not in self.converted:",
        "if False:",
        (A + "test_disk_full_during_conversion[sqlite]",),
    ),
    Mutant(
        "a file changed since the plan is not touched (size, mtime)",
        "apply/runner.py",
        'if (size, mtime) != (f["size"], f["mtime_ns"]):',
        "if False:",
        (A + "test_file_changed_after_planning_is_skipped[sqlite]",),
    ),
    Mutant(
        "purge deletes only quarantine whose period has expired",
        "apply/quarantine.py",
        "if row.expires_at > now:",
        "if False:",
        (A + "test_undo_and_purge[sqlite]",),
    ),
    Mutant(
        "undo never overwrites an original that reappeared",
        "apply/quarantine.py",
        "        if dst.exists():",
        "        if False:",
        (G + "test_undo_never_overwrites_an_original_that_reappeared",),
    ),
    Mutant(
        "a lock is taken over only when stale (dead holder, or no heartbeat)",
        "apply/locks.py",
        "if fresh and not holder_dead(row.holder):",
        "if False:",
        (G + "test_stale_lock_is_taken_over_by_age_only",),
    ),
    Mutant(
        "audit: each entry's content matches its hash",
        "audit/check.py",
        "if digest != row.hash:",
        "if False:",
        ("tests/test_audit.py::test_edited_detail_is_detected[sqlite]",),
    ),
    Mutant(
        "audit: each entry names its predecessor's hash",
        "audit/check.py",
        "if row.prev_hash != expect_prev:",
        "if False:",
        ("tests/test_audit.py::test_deleted_middle_entry_is_detected[sqlite]",),
    ),
    Mutant(
        "access: a region grant covers only requests inside it",
        "access/decide.py",
        "if r.covers(reference_name, start, end):",
        "if True:",
        ("tests/test_access.py::test_region_restriction[sqlite]",),
    ),
    Mutant(
        "access: a reporting principal never reads genome data",
        "access/decide.py",
        'if p.role == "reporting":',
        "if False:",
        ("tests/test_access.py::test_reporting_principal_sees_no_genome_data[sqlite]",),
    ),
    Mutant(
        "dashboard: only reporting and admin principals see it",
        "serve/session.py",
        "return self.role in ROLES",
        "return True",
        ("tests/test_dashboard.py::test_a_data_principal_is_refused_and_that_is_audited",),
    ),
    Mutant(
        "dashboard: counts of 1 to 4 are suppressed for all but administrators",
        "serve/session.py",
        "return ROLES.get(self.role, False)",
        "return True",
        ("tests/test_dashboard.py::test_reporting_sees_small_counts_suppressed_admin_exact",),
    ),
    Mutant(
        "dashboard: a session ends when its token is revoked",
        "serve/session.py",
        "if p.disabled_at is not None or tok.revoked_at is not None or expired:",
        "if False:",
        ("tests/test_dashboard.py::test_a_session_ends_with_its_token",),
    ),
    Mutant(
        "access: a revoked token does not authenticate",
        "access/tokens.py",
        "if tok.revoked_at is not None:",
        "if False:",
        ("tests/test_access.py::test_token_issue_authenticate_revoke[sqlite]",),
    ),
    Mutant(
        "access: signed URLs are checked against their authority at every use",
        "serve/blocks.py",
        "stale = access.still_allowed(",
        "stale = None and access.still_allowed(",
        (S + "test_block_urls_die_with_their_authority[grant]",),
    ),
    Mutant(
        "access: a block URL's signature is verified",
        "serve/signing.py",
        "if not mac or not hmac.compare_digest(mac, want):",
        "if False:",
        ("tests/test_htsget.py::test_block_urls_are_bound_and_expire",),
    ),
    Mutant(
        "access: a region-limited principal gets a slice, not the stored file's bytes",
        "serve/tickets.py",
        "if d.limited:",
        "if False:",
        (S + "test_region_grant_serves_only_the_region_reads",),
    ),
    Mutant(
        "a gVCF goes only after its callable regions are stored and registered",
        "apply/prove.py",
        "bed = store_callable(self.cat, self.journal, a, data[0], pc, ev)",
        "bed = data[0]",
        ("tests/test_callable.py::test_apply_extracts_before_the_gvcf_goes[sqlite]",),
    ),
    Mutant(
        "callable regions: a gVCF that bcftools cannot read in full yields none",
        "codec/callable_regions.py",
        "if rc != 0 or failure is not None:",
        "if False:",
        ("tests/test_callable.py::test_bad_gvcf_writes_nothing",),
    ),
    Mutant(
        "plan: a copy with other digests is not identical",
        "plan/planner.py",
        "if unit.digests != cand.digests:",
        "if False:",
        ("tests/test_plan.py::test_identical_uses_catalogued_digests[sqlite]",),
    ),
    Mutant(
        "plan: a delete stays pending only while every requirement holds",
        "plan/planner.py",
        'if all(c["status"] != "unmet" for c in u.checks):',
        "if True:",
        ("tests/test_plan.py::test_blocked_actions_are_listed_with_reason[sqlite]",),
    ),
    Mutant(
        "Beacon: no anonymous queries unless allowed",
        "serve/beacon.py",
        "if header is None and b.anonymous:",
        "if header is None:",
        (BC + "test_no_anonymous_queries_by_default",),
    ),
    Mutant(
        "Beacon: counts of 1 to 4 are shown as the floor",
        "serve/beacon_policy.py",
        "if 0 < n < floor:",
        "if False:",
        (BC + "test_counts_are_floored_for_registered_principals",),
    ),
    Mutant(
        "Beacon: no more than the asker's level (records only for a granted cohort)",
        "serve/beacon_policy.py",
        "return requested if RANK[requested] <= RANK[level.granularity] else level.granularity",
        "return requested",
        (BC + "test_granularity_follows_the_level",),
    ),
    Mutant(
        "Beacon: exact figures only for the strata a principal is granted",
        "serve/beacon_docs.py",
        "for name in sorted(level.strata):",
        "for name in sorted(a.strata):",
        (BC + "test_granularity_follows_the_level",),
    ),
    Mutant(
        "Beacon: a spent query budget is refused",
        "serve/beacon_policy.py",
        "_usage.c.used < budget)",
        "_usage.c.used >= 0)",
        (BC + "test_budget_is_spent_then_429",),
    ),
    Mutant(
        "Beacon: answers come from the newest release, never the live store",
        "serve/beacon.py",
        "        if self.live:",
        "        if True:",
        (BC + "test_answers_come_from_the_release_not_the_live_store",),
    ),
]


def run_tests(tests: tuple[str, ...], pythonpath: Path | None) -> tuple[int, str]:
    # the tests' own settings only (no WGSVAULT_HOME or catalog of the caller's), but where the
    # shared data is, for a clone that does not sit beside it
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WGSVAULT_") or k == "WGSVAULT_SHARED"}  # fmt: skip
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    return proc.returncode, proc.stdout[-2000:] + proc.stderr[-2000:]


def try_mutant(m: Mutant) -> tuple[str, float, str]:
    """(outcome, seconds, detail): outcome is killed, SURVIVED or BROKEN (guard text not unique,
    or the mutant did not even import)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="wgsvault-mutant-") as tmp:
        copy = Path(tmp) / "wgsvault"
        shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
        target = copy / m.path
        text = target.read_text()
        if text.count(m.old) != 1:
            return "BROKEN", 0.0, f"guard text found {text.count(m.old)} times in {m.path}"
        target.write_text(text.replace(m.old, m.new))
        rc, out = run_tests(m.tests, Path(tmp))
    seconds = time.perf_counter() - t0
    if rc == 1 and " failed" in out:
        return "killed", seconds, ""
    if rc == 0:
        return "SURVIVED", seconds, out.strip().splitlines()[-1] if out.strip() else ""
    return "BROKEN", seconds, f"pytest exit {rc}: {out.strip()[-300:]}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--only", help="only mutants whose guard or file contains this")
    a = ap.parse_args()
    mutants = [m for m in MUTANTS if not a.only or a.only in m.guard or a.only in m.path]
    t0 = time.perf_counter()
    tests = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
    rc, out = run_tests(tests, None)
    if rc != 0:
        print(f"baseline: the guard tests fail on the unmutated code:\n{out}")
        return 1
    print(f"baseline: {len(tests)} guard tests pass on the unmutated code")
    with ThreadPoolExecutor(max(1, a.jobs)) as pool:
        results = list(pool.map(try_mutant, mutants))
    width = max(len(m.guard) for m in mutants)
    for m, (outcome, seconds, detail) in zip(mutants, results, strict=True):
        print(f"{outcome:8} {seconds:5.1f} s  {m.guard:{width}}  {m.path}  {detail}")
    survived = [m for m, r in zip(mutants, results, strict=True) if r[0] != "killed"]
    print(
        f"{len(mutants) - len(survived)} of {len(mutants)} mutants killed, "
        f"{len(survived)} survived or broken, in {time.perf_counter() - t0:.0f} s"
    )
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
