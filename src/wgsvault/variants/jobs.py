"""Where the engine's per-genome and per-contig jobs run: here, or on the Slurm cluster.

`executor("local", jobs)` is apply's LocalExecutor (a spawned process pool; `jobs=1` inline).
`executor("slurm", ...)` submits the jobs as one Slurm job array through submitit, as apply does
(`apply.slurm.submit_array`: the site's partition, account, QoS and extra options from
`[slurm]` in the site config, the pickles and logs in its shared folder), and waits for the
results, which submitit brings back from that folder. The jobs write only files under the store
(which must be on a filesystem the nodes share), never the catalog: registration and the state
file stay with the command that waits, so SQLite catalogs are fine here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wgsvault.apply import slurm
from wgsvault.apply.executors import Executor, LocalExecutor
from wgsvault.apply.resources import Resources
from wgsvault.config import site_config, vault_home
from wgsvault.errors import InputError, VaultError

#: one genome's normalisation and counting, or one contig's aggregation
RESOURCES = Resources(cpus=2, mem_mb=8192, time_min=120)


@dataclass
class SlurmWaitExecutor:
    """Submit every task as one job array and yield the results as jobs finish."""

    options: slurm.SlurmOptions
    resources: Resources = RESOURCES
    name: str = "slurm"

    def run(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        import submitit

        tasks = list(tasks)
        submitted = slurm.submit_array(
            fn, tasks, self.resources, self.options, name=f"wgsvault-variants-{fn.__name__}"
        )
        for job_id, _log in submitted:
            job: Any = submitit.SlurmJob(folder=str(self.options.folder), job_id=job_id)
            try:
                yield job.result()
            except VaultError:
                raise
            except Exception as exc:  # submitit's failed-job error carries the job's traceback
                raise VaultError(
                    f"Slurm job {job_id} failed: {str(exc).splitlines()[-1]}"
                ) from None


def executor(name: str, jobs: int = 1, folder: Path | None = None) -> Executor:
    """The executor named on the command line (`local` or `slurm`)."""
    if name == "local":
        return LocalExecutor(jobs)
    if name == "slurm":
        if not slurm.available():
            raise InputError("--executor slurm: Slurm's commands (sbatch, sacct) are not here")
        site = site_config().slurm
        opts = slurm.SlurmOptions(
            folder=folder or site.folder or vault_home() / "slurm",
            partition=site.partition,
            account=site.account,
            qos=site.qos,
            max_running=site.max_running,
            extra=dict(site.extra),
        )
        return SlurmWaitExecutor(opts)
    raise InputError(f"--executor {name!r}: use local or slurm")
