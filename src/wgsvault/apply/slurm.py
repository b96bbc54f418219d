"""Slurm, through submitit: submit per-genome tasks as job arrays, read their states, cancel.

Submission goes through submitit (`SlurmExecutor.map_array`), which pickles the function and
its tasks into `folder` (a shared filesystem: the nodes read them) and writes one sbatch script
per array: `--array=0-N%n`, the resources of `Resources`, the site's partition,
account, QoS and extra options, `--requeue` (Slurm restarts a task after a node failure) and an
optional `--dependency`. Each task's log is `folder/<array>_<task>_0_log.out` (and `.err`).

States come from `sacct` (the accounting database, so that finished jobs are known hours later),
with `squeue` for jobs accounting has not recorded yet. `classify` turns a Slurm state into what
the run does next: `done`, `running`, `memory` or `time` (ran out: retry with more), `node`
(node failure: retry as is), `failed` (retry as is), `cancelled` (by a person: only `--resume`
starts it again). Without cgroups, Slurm kills a job over its memory by polling
(`JobAcctGatherParams=OverMemoryKill`) and reports it FAILED; the log's "exceeded memory limit"
says it ran out of memory, as OUT_OF_MEMORY does under cgroups.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wgsvault.apply.resources import Resources
from wgsvault.errors import InputError, VaultError

#: Slurm job states that are over, and those still to come
FINAL = {
    "COMPLETED",
    "FAILED",
    "TIMEOUT",
    "OUT_OF_MEMORY",
    "CANCELLED",
    "NODE_FAIL",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
    "REVOKED",
}
#: over for now, but Slurm may requeue the job itself (--requeue): its state is read again
REQUEUABLE = {"NODE_FAIL", "PREEMPTED", "BOOT_FAIL"}


@dataclass(frozen=True)
class SlurmOptions:
    """Where and how a run's jobs are submitted (CLI options and the site config)."""

    folder: Path  # submitit's pickles and the job logs: on a filesystem every node sees
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    max_running: int = 256  # array tasks running at once (sbatch --array=...%N)
    extra: dict[str, str] = field(default_factory=dict)  # further sbatch options


@dataclass(frozen=True)
class JobState:
    job_id: str
    state: str  # Slurm's, e.g. COMPLETED, OUT_OF_MEMORY, PENDING
    reason: str = ""
    exit_code: str = ""
    max_rss: str = ""
    node: str = ""


def available() -> bool:
    """Whether Slurm's commands are here to talk to a cluster."""
    return all(shutil.which(c) for c in ("sbatch", "sacct", "squeue", "scancel"))


def _executor(
    opts: SlurmOptions,
    res: Resources,
    name: str,
    dependency: str | None,
    array: int | None,
    parallel: int | None = None,
) -> Any:
    import submitit

    ex = submitit.SlurmExecutor(folder=str(opts.folder))
    params: dict[str, Any] = {
        "job_name": name,
        "cpus_per_task": res.cpus,
        "mem": f"{res.mem_mb}M",
        "time": res.time_min,
        "use_srun": False,  # the task is the batch step: its memory is what Slurm accounts
        "additional_parameters": {"requeue": True, **opts.extra},
    }
    if array is not None:
        params["array_parallelism"] = max(1, min(parallel or opts.max_running, array))
    for key in ("partition", "account", "qos"):
        if getattr(opts, key):
            params[key] = getattr(opts, key)
    if dependency:
        params["dependency"] = dependency
    ex.update_parameters(**params)
    return ex


def submit_array(
    fn: Callable[[Any], Any],
    tasks: Sequence[Any],
    res: Resources,
    opts: SlurmOptions,
    *,
    name: str,
    dependency: str | None = None,
    parallel: int | None = None,
) -> list[tuple[str, str]]:
    """Submit `fn(task)` for every task as one job array, at most `parallel` (default
    `opts.max_running`) tasks running at once; (job id, log) of each task."""
    if not tasks:
        return []
    ex = _executor(opts, res, name, dependency, len(tasks), parallel)
    try:
        jobs = ex.map_array(fn, list(tasks))
    except Exception as exc:  # submitit raises its own errors for sbatch failures
        raise VaultError(f"sbatch refused the job array {name}: {exc}") from None
    return [(str(j.job_id), str(j.paths.stdout)) for j in jobs]


def submit_one(
    fn: Callable[..., Any],
    *args: Any,
    res: Resources,
    opts: SlurmOptions,
    name: str,
    dependency: str | None = None,
) -> tuple[str, str]:
    """Submit one job `fn(*args)`; (job id, log)."""
    ex = _executor(opts, res, name, dependency, None)
    try:
        job = ex.submit(fn, *args)
    except Exception as exc:
        raise VaultError(f"sbatch refused the job {name}: {exc}") from None
    return str(job.job_id), str(job.paths.stdout)


def max_array_size() -> int:
    """The cluster's MaxArraySize (an array's task ids are below it); Slurm's default 1001."""
    try:
        text = _run(["scontrol", "show", "config"])
    except VaultError:
        return 1001
    m = re.search(r"^MaxArraySize\s*=\s*(\d+)", text, re.M)
    return int(m.group(1)) if m else 1001


def shares(sizes: Sequence[int], total: int) -> list[int]:
    """Split `total` running tasks over arrays of these sizes that run side by side: in
    proportion to size (largest remainders), at least one each, never more than an array has."""
    n = sum(sizes)
    if n == 0:
        return [0 for _ in sizes]
    exact = [total * k / n for k in sizes]
    out = [max(1, min(k, int(e))) for k, e in zip(sizes, exact, strict=True)]
    for i in sorted(range(len(sizes)), key=lambda i: int(exact[i]) - exact[i]):
        if sum(out) >= total:
            break
        if out[i] < sizes[i]:
            out[i] += 1
    return out


def _run(args: list[str]) -> str:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VaultError(f"{args[0]}: {exc}") from None
    if proc.returncode != 0:
        raise VaultError(f"{' '.join(args[:2])}: {proc.stderr.strip()[:300]}")
    return proc.stdout


def states(job_ids: Sequence[str]) -> dict[str, JobState]:
    """The state of each job (array task ids such as `123_4`), from sacct, else squeue."""
    if not job_ids:
        return {}
    wanted = set(job_ids)
    arrays = sorted({j.split("_")[0] for j in job_ids})
    out: dict[str, JobState] = {}
    rss: dict[str, str] = {}
    text = _run(
        ["sacct", "-n", "-P", "-j", ",".join(arrays),
         "-o", "JobID,State,ExitCode,Reason,MaxRSS,NodeList"]
    )  # fmt: skip
    for line in text.splitlines():
        f = line.split("|")
        if len(f) < 6:
            continue
        job, _, step = f[0].partition(".")
        if step:  # the batch step: how much memory the task used
            if f[4]:
                rss[job] = f[4]
            continue
        if job in wanted:
            state = f[1].split()[0] if f[1] else "UNKNOWN"  # "CANCELLED by 0" -> CANCELLED
            out[job] = JobState(job, state, f[3] if f[3] != "None" else "", f[2], "", f[5])
    missing = wanted - set(out)
    if missing:  # accounting may not have seen a job that was just submitted
        q = _run(["squeue", "-h", "-r", "-j", ",".join(arrays), "-o", "%i|%T|%r|%N"])
        for line in q.splitlines():
            f = line.split("|")
            if len(f) >= 4 and f[0] in missing:
                out[f[0]] = JobState(f[0], f[1], f[2] if f[2] != "None" else "", "", "", f[3])
    for job, st in list(out.items()):
        if job in rss:
            out[job] = JobState(st.job_id, st.state, st.reason, st.exit_code, rss[job], st.node)
    return out


def classify(state: JobState, log: str | None) -> str:
    """What the run does about a job in this state (see the module docstring)."""
    s = state.state
    if s not in FINAL:  # PENDING, RUNNING, REQUEUED, COMPLETING, SUSPENDED, ...
        return "running"
    if s == "COMPLETED":
        return "done"
    if s == "OUT_OF_MEMORY" or (s in ("FAILED", "CANCELLED") and _log_says_memory(log)):
        return "memory"
    if s in ("TIMEOUT", "DEADLINE"):
        return "time"
    if s in ("NODE_FAIL", "BOOT_FAIL", "PREEMPTED"):
        return "node"
    if s == "CANCELLED":
        return "cancelled"
    return "failed"


def _log_says_memory(log: str | None) -> bool:
    for path in (log, log.replace("_log.out", "_log.err") if log else None):
        if path and Path(path).exists():
            with open(path, errors="replace") as fh:
                fh.seek(max(0, Path(path).stat().st_size - 20_000))
                tail = fh.read()
            if "exceeded memory limit" in tail or "Exceeded job memory limit" in tail:
                return True
    return False


def cancel(job_ids: Sequence[str]) -> None:
    """Cancel jobs (array tasks or whole arrays); jobs already over are ignored."""
    if job_ids:
        try:
            _run(["scancel", *sorted(set(job_ids))])
        except VaultError as exc:
            raise InputError(f"scancel: {exc}") from None
