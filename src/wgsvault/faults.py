"""Fault injection for the crash-safety tests of apply (inactive unless the environment asks).

`point(name, where)` marks a place where a crash must be survivable: before and after
conversions, proofs, catalog commits and quarantine moves. A point's full name is `name@where`
(`where` says which action or file, e.g. `convert:proven@G2.cram`), stable across estates built
alike, so a test can aim a kill at one exact point:

* `WGSVAULT_FAULT_AT=NAME@WHERE`: the process kills itself (SIGKILL: no cleanup, no finally
  blocks) when it reaches that point;
* `WGSVAULT_FAULT=enospc@NAME`: every point called NAME raises `OSError(ENOSPC)` as a full disk
  would; `WGSVAULT_FAULT=sleepSECONDS@NAME` waits there (a job that outlives its time limit),
  `sleepSECONDSonce@NAME` only in a Slurm job's first run, not after Slurm requeued it;
* `WGSVAULT_FAULT_LOG=FILE`: each point's full name is appended, so a test can list the points of
  a run in order.
"""

from __future__ import annotations

import errno
import os
import signal
import time


def point(name: str, where: str = "") -> None:
    """A crash-survivable point in apply; a no-op in production."""
    full = f"{name}@{where}"
    log = os.environ.get("WGSVAULT_FAULT_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(full + "\n")
    if os.environ.get("WGSVAULT_FAULT_AT") == full:
        os.kill(os.getpid(), signal.SIGKILL)
    fault, _, at = os.environ.get("WGSVAULT_FAULT", "").partition("@")
    if at == name and fault == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
    if at == name and fault.startswith("sleep"):
        seconds, once = fault[5:].removesuffix("once"), fault.endswith("once")
        if seconds.isdigit() and not (once and int(os.environ.get("SLURM_RESTART_COUNT") or 0)):
            time.sleep(int(seconds))
