"""The steering group's targets: quotas per patient group, turnaround per urgency, population.

A TOML file (`report/targets.toml` ships the owners' figures; `--targets FILE` reads another)
validated by pydantic: unknown keys, negative figures, a unit other than `genomes` or `cases`
and a backlog without the year it is owed from are errors naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from wgsvault.config import StrictModel, load_toml_model

DEFAULT = Path(__file__).with_name("targets.toml")
URGENCIES = ("acute", "urgent", "standard")


class Quota(StrictModel):
    per_year: int = Field(ge=0)
    #: owed on top of `per_year`, in `first_year`
    backlog: int = Field(default=0, ge=0)
    unit: Literal["genomes", "cases"] = "genomes"
    first_year: int | None = Field(default=None, ge=2000, le=2200)

    @model_validator(mode="after")
    def _backlog_has_a_year(self) -> Quota:
        if self.backlog and self.first_year is None:
            raise ValueError("a backlog needs first_year: the year it is owed from")
        return self

    def owed(self, year: int) -> int:
        """What the year's quota asks for: per year, plus the backlog in its first year."""
        return self.per_year + (self.backlog if year == self.first_year else 0)


class Turnaround(StrictModel):
    """Days from requisition to report, per urgency class."""

    acute: int = Field(default=14, gt=0)
    urgent: int = Field(default=42, gt=0)
    standard: int = Field(default=84, gt=0)

    def days(self, urgency: str) -> int:
        return int(getattr(self, urgency))


class Targets(StrictModel):
    quotas: dict[str, Quota] = Field(default_factory=dict)
    turnaround: Turnaround = Field(default_factory=Turnaround)
    population: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _positive_population(self) -> Targets:
        for region, n in self.population.items():
            if n <= 0:
                raise ValueError(f"population of {region!r} must be positive")
        return self


def load_targets(path: Path | None = None) -> Targets:
    """The targets in `path`, or the shipped ones; a bad file is one PolicyError line."""
    return load_toml_model(Path(path) if path else DEFAULT, Targets)
