"""Fault injection for the crash-safety tests of apply (inactive unless the environment asks).

`point(name)` marks a place where a crash must be survivable: before and after conversions,
proofs, catalog commits and quarantine moves. With `WGSVAULT_FAULT_AT=N` the process kills itself
(SIGKILL: no cleanup, no finally blocks) at the N-th point it passes; with
`WGSVAULT_FAULT=enospc@NAME` the point named NAME raises `OSError(ENOSPC)` as a full disk would.
`WGSVAULT_FAULT_LOG=FILE` appends each point's name, so a test can count the points of a run.
"""

from __future__ import annotations

import errno
import os
import signal

_count = 0


def point(name: str) -> None:
    """A crash-survivable point in apply; a no-op in production."""
    global _count
    log = os.environ.get("WGSVAULT_FAULT_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(name + "\n")
    at = os.environ.get("WGSVAULT_FAULT_AT")
    if at:
        _count += 1
        if _count == int(at):
            os.kill(os.getpid(), signal.SIGKILL)
    fault = os.environ.get("WGSVAULT_FAULT", "")
    if fault == f"enospc@{name}":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
