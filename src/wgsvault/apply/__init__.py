"""apply: carry out an approved plan, genome by genome, without ever losing an original.

Stage: apply (convert, verify, delete). Each data controller approves its own actions of a plan
(`approval`); `run` refuses anything not approved in its exact content, then hands one task per
genome to an executor (`executors`: a local process pool or Slurm job arrays), which runs it under
the genome's lock (`locks`). `runner` converts (proven by the codec before a file lands),
registers what it wrote (`register`), proves every precondition on content (`prove`; a gVCF's
callable regions are extracted and registered first, `callable`) and only then renames originals
into quarantine (`quarantine`, which also purges after the quarantine period and undoes). Every
step is journaled write-ahead (`journal`), so a run killed at any point is completed by running
it again; `state` reads the journal back. `faults` (a utility beside the stages) marks the points
a test kills the process at.

May use: codec, plan, inventory, audit, catalog and the utilities. Independent of access; the
CLI and the demo use it.
"""

from wgsvault.apply.approval import approve, load_plan, require_approval
from wgsvault.apply.run import ApplySummary, apply_genome, apply_plan
from wgsvault.apply.state import status

__all__ = [
    "ApplySummary",
    "apply_genome",
    "apply_plan",
    "approve",
    "load_plan",
    "require_approval",
    "status",
]
