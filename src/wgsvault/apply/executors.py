"""Executors: where per-genome work runs while `apply` waits for it.

`Executor.run(fn, tasks)` yields `fn(task)` results as they complete. `fn` and the tasks must be
picklable (top-level function, plain dataclasses): every task opens its own catalog connection.
`LocalExecutor(jobs)` is a process pool on this machine (spawned processes: no catalog connection
or lock is inherited across fork); `jobs=1` runs inline in this process. A run on a Slurm
cluster does not wait: it is submitted and supervised on the cluster (cluster.py, slurm.py).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol


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
