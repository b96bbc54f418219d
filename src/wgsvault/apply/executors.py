"""Executors: where per-genome work runs. One small interface, chosen at the edge.

`Executor.run(fn, tasks)` yields `fn(task)` results as they complete. `fn` and the tasks must be
picklable (top-level function, plain dataclasses): every task opens its own catalog connection.

* `LocalExecutor(jobs)`: a process pool on this machine (spawned processes: no catalog connection
  or lock is inherited across fork); `jobs=1` runs inline in this process.
* `SlurmExecutor`: a Slurm job array through submitit (per-job cpus, memory, time limit, array
  parallelism); `cluster="local"`/`"debug"` runs the same code path without Slurm (tests).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from wgsvault.errors import InputError


class Executor(Protocol):
    name: str

    def run(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]: ...


@dataclass
class LocalExecutor:
    jobs: int = 1
    name: str = "local"

    def run(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        tasks = list(tasks)
        if self.jobs <= 1 or len(tasks) <= 1:
            for t in tasks:
                yield fn(t)
            return
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx) as pool:
            pending = {pool.submit(fn, t) for t in tasks}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield f.result()


@dataclass
class SlurmExecutor:
    folder: Path
    cluster: str | None = None  # None: auto (slurm if available); "local"/"debug" for tests
    cpus_per_task: int = 4
    mem_gb: int = 16
    timeout_min: int = 24 * 60
    partition: str | None = None
    array_parallelism: int = 64
    poll_seconds: float = 1.0
    name: str = "slurm"

    def run(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        import submitit

        ex = submitit.AutoExecutor(folder=str(self.folder), cluster=self.cluster)
        params: dict[str, Any] = {
            "cpus_per_task": self.cpus_per_task,
            "mem_gb": self.mem_gb,
            "timeout_min": self.timeout_min,
        }
        if ex.cluster == "slurm":
            params["slurm_array_parallelism"] = self.array_parallelism
            if self.partition:
                params["slurm_partition"] = self.partition
        ex.update_parameters(**params)
        jobs = ex.map_array(fn, list(tasks))
        pending = list(jobs)
        while pending:
            still = []
            for job in pending:
                if job.done():
                    yield job.result()
                else:
                    still.append(job)
            pending = still
            if pending:
                time.sleep(self.poll_seconds)


def make_executor(kind: str, *, jobs: int, home: Path, cluster: str | None = None) -> Executor:
    if kind == "local":
        return LocalExecutor(jobs=max(1, jobs))
    if kind == "slurm":
        return SlurmExecutor(folder=home / "slurm", cluster=cluster)
    raise InputError(f"--executor {kind}: choose local or slurm")
