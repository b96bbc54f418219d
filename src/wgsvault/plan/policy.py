"""Minimisation policies: which file types each data controller keeps, converts or deletes.

A policy is a TOML file (validated by pydantic) with an ordered list of rules. For each unit of the
catalog (a data file with its index, a FASTQ pair, a run folder) the first rule whose controllers
and types match decides. A rule `delete`s a unit only if every one of its requirements holds;
otherwise it falls back to `otherwise`:

* `block` (default): keep the unit and list the action as blocked, with the unmet requirement;
* `keep`: keep it silently (the rule is an opportunity, not an intent);
* `convert`: convert it to a lossless CRAM (FASTQ -> unaligned CRAM, BAM -> CRAM), then the
  original goes once the conversion is proven;
* `next`: let the next matching rule decide.

Requirements (all evaluated on the state *after* the plan, so evidence that the plan itself removes
never counts):

* `exists`: a unit of one of `types` of the same genome survives in `scope`;
* `covered`: an aligned CRAM of the same genome in `scope` holds every read of this FASTQ; planning
  finds the candidate, apply proves it with verify-covers before anything goes;
* `identical`: a unit of the same genome and type with the same sizes exists in `scope` (the
  national database, for scenario C); sha256 equality is checked at apply (or now, if both digests
  are in the catalog);
* `callable` (gVCF only): the genome's callable regions (GQ >= `min_gq`, depth >= `min_dp`) are
  stored in `scope` before the gVCF goes. Met when a callable file of the genome is in the
  catalog; otherwise never blocking: apply extracts them from this gVCF, lands and registers the
  BED, and only then lets the gVCF go (codec.callable_regions, apply/prove.py). Presets A, B, C
  require it of every gVCF they delete.

`scope` is `controller` (the unit's own controller), `national`, or `any`. A policy may `extend`
another: its own rules come first. The presets A, B and C implement the owners' scenarios.
"""

from __future__ import annotations

import fnmatch
import hashlib
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from wgsvault.config import StrictModel, load_toml_model
from wgsvault.errors import PolicyError
from wgsvault.inventory.filetypes import FileType

Scope = Literal["controller", "national", "any"]
PRESETS = ("A", "B", "C")


class Requirement(StrictModel):
    kind: Literal["exists", "covered", "identical", "callable"]
    types: list[FileType] = Field(default_factory=list)
    scope: Scope = "controller"
    #: thresholds of `callable`: a record is confident with GQ >= min_gq and depth >= min_dp
    min_gq: int = Field(default=20, ge=0)
    min_dp: int = Field(default=10, ge=0)

    @cached_property
    def type_values(self) -> frozenset[str]:
        return frozenset(t.value for t in self.types)

    @model_validator(mode="after")
    def _check(self) -> Requirement:
        if self.kind in ("exists", "covered") and not self.types:
            raise ValueError(f"'{self.kind}' needs 'types'")
        if self.kind == "covered" and self.types != [FileType.CRAM]:
            raise ValueError("'covered' is proven against aligned CRAM: types = ['cram']")
        if self.kind == "callable" and self.types not in ([], [FileType.CALLABLE]):
            raise ValueError("'callable' is met by callable regions only: leave out 'types'")
        return self


class Rule(StrictModel):
    controllers: list[str] = Field(default_factory=lambda: ["*"])
    types: list[FileType] = Field(min_length=1)
    action: Literal["delete", "keep", "convert"]
    require: list[Requirement] = Field(default_factory=list)
    otherwise: Literal["block", "keep", "convert", "next"] = "block"
    note: str = ""

    @model_validator(mode="after")
    def _check(self) -> Rule:
        converts = self.action == "convert" or self.otherwise == "convert"
        if converts and not set(self.types) <= {FileType.FASTQ, FileType.BAM}:
            raise ValueError("only fastq and bam can be converted (to lossless CRAM)")
        covered = any(r.kind == "covered" for r in self.require)
        if covered and self.types != [FileType.FASTQ]:
            raise ValueError("'covered' applies to fastq only")
        if any(r.kind == "callable" for r in self.require) and self.types != [FileType.GVCF]:
            raise ValueError("'callable' applies to gvcf only (its callable regions)")
        return self

    def matches(self, controller: str | None, kind: str, ftype: str) -> bool:
        if ftype not in self.types:
            return False
        for sel in self.controllers:
            if sel == "@regions" and kind == "region":
                return True
            if sel == "@national" and kind == "national":
                return True
            if controller is not None and fnmatch.fnmatchcase(controller, sel):
                return True
        return False


class Policy(StrictModel):
    name: str
    description: str = ""
    extends: str | None = None
    #: planning estimate of a lossless CRAM's size as a fraction of its source (apply measures)
    convert_ratio: dict[FileType, float] = Field(
        default_factory=lambda: {FileType.FASTQ: 0.63, FileType.BAM: 0.40}
    )
    #: when several conversions are fallbacks, the earlier source type converts first (an aligned
    #: CRAM from a BAM can then cover the genome's FASTQ, so no unaligned CRAM is written beside it)
    convert_order: list[FileType] = Field(default_factory=lambda: [FileType.BAM, FileType.FASTQ])
    rule: list[Rule] = Field(default_factory=list)
    digest: str = ""  # sha256 of the policy text(s), filled in by load_policy

    def first_rule(self, controller: str | None, kind: str, ftype: str, start: int = 0) -> int:
        """Index of the first rule from `start` that matches, or -1 (memoised per key)."""
        key = (controller, kind, ftype, start)
        found = self._first.get(key)
        if found is None:
            found = next(
                (i for i in range(start, len(self.rule)) if self.rule[i].matches(*key[:3])), -1
            )
            self._first[key] = found
        return found

    @cached_property
    def _first(self) -> dict[tuple[str | None, str, str, int], int]:
        return {}


def _read(name_or_path: str, base: Path | None = None) -> tuple[Policy, str]:
    if name_or_path in PRESETS:
        text = resources.files("wgsvault.plan.presets").joinpath(f"{name_or_path}.toml").read_text()
        path = Path(f"<preset {name_or_path}>")
        tmp = _preset_model(text, path)
        return tmp, text
    path = Path(name_or_path)
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.exists():
        raise PolicyError(f"{name_or_path}: no such policy file (presets: {', '.join(PRESETS)})")
    return load_toml_model(path, Policy), path.read_text(encoding="utf-8")


def _preset_model(text: str, path: Path) -> Policy:
    import tomllib

    from wgsvault.config import validate_model

    return validate_model(tomllib.loads(text), Policy, str(path))


def load_policy(name_or_path: str) -> Policy:
    """A preset (`A`, `B`, `C`) or a policy TOML file, with `extends` resolved."""
    seen: list[str] = [name_or_path]
    policy, text = _read(name_or_path)
    base = None if name_or_path in PRESETS else Path(name_or_path).parent
    texts = [text]
    rules = list(policy.rule)
    parent = policy.extends
    while parent is not None:
        key = parent if parent in PRESETS or base is None else str((base / parent).resolve())
        if key in seen or (base is not None and key == str(Path(name_or_path).resolve())):
            raise PolicyError(f"{name_or_path}: 'extends' loops through {parent}")
        seen.append(key)
        parent_policy, parent_text = _read(parent, base)
        rules.extend(parent_policy.rule)
        texts.append(parent_text)
        if parent not in PRESETS and base is not None:
            base = (base / parent).parent
        parent = parent_policy.extends
    if not rules:
        raise PolicyError(f"{name_or_path}: the policy has no rules")
    digest = hashlib.sha256("\n--\n".join(texts).encode()).hexdigest()
    return policy.model_copy(update={"rule": rules, "digest": digest, "extends": None})
