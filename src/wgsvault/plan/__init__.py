"""plan: data minimisation plans, from catalog facts and a policy, without touching any file.

Stage: plan. `policy` reads and validates minimisation policies (TOML; the owners' scenarios A, B
and C ship as `presets`); `planner` groups the catalog's present files into units, evaluates
every rule's requirements against the state after the plan, and writes the plan
(`wgsvault-plan/1`) that data controllers approve and apply carries out.

May use: inventory (file types), the catalog and the utilities. Independent of codec; apply,
report and the CLI use it.
"""

from wgsvault.plan.planner import PLAN_FORMAT, make_plan, write_plan
from wgsvault.plan.policy import PRESETS, Policy, load_policy

__all__ = ["PLAN_FORMAT", "PRESETS", "Policy", "load_policy", "make_plan", "write_plan"]
