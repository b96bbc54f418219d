"""Footprint: what the estate stores, per file type and per data controller, and what it costs.

Figures come from the catalog only (present files, apparent sizes as `stat` reports them). The mean
per genome divides by the genomes that hold data of that kind; the cost per year uses a price in DKK
per TB-year (decimal TB, 10^12 bytes, as storage is sold), and the projection scales the mean per
genome to the planned number of genomes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import distinct, func, select

from wgsvault.catalog import Catalog
from wgsvault.catalog.models import Controller, File
from wgsvault.config import TB
from wgsvault.inventory.filetypes import FileType

UNASSIGNED = "(unassigned)"


@dataclass(frozen=True)
class Cell:
    controller: str
    kind: str
    type: str
    files: int
    bytes: int
    genomes: int


@dataclass
class Footprint:
    cells: list[Cell]
    genomes: int
    genomes_by_controller: dict[str, int]
    price_dkk_per_tb_year: float
    projection_genomes: int
    types: list[str] = field(default_factory=list)
    controllers: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(c.bytes for c in self.cells)

    @property
    def total_files(self) -> int:
        return sum(c.files for c in self.cells)

    def bytes_by(self, key: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.cells:
            k = getattr(c, key)
            out[k] = out.get(k, 0) + c.bytes
        return out

    def cost_per_year(self, nbytes: int) -> float:
        return nbytes / TB * self.price_dkk_per_tb_year

    @property
    def mean_per_genome(self) -> float:
        return self.total_bytes / self.genomes if self.genomes else 0.0

    def to_dict(self) -> dict[str, object]:
        by_type = self.bytes_by("type")
        by_ctrl = self.bytes_by("controller")
        n = self.genomes or 1
        return {
            "total": {
                "files": self.total_files,
                "bytes": self.total_bytes,
                "genomes": self.genomes,
                "mean_bytes_per_genome": round(self.mean_per_genome),
                "cost_dkk_per_year": round(self.cost_per_year(self.total_bytes), 2),
            },
            "by_type": {
                t: {
                    "bytes": b,
                    "mean_bytes_per_genome": round(b / n),
                    "cost_dkk_per_year": round(self.cost_per_year(b), 2),
                }
                for t, b in by_type.items()
            },
            "by_controller": {
                c: {
                    "kind": next(x.kind for x in self.cells if x.controller == c),
                    "bytes": b,
                    "genomes": self.genomes_by_controller.get(c, 0),
                    "mean_bytes_per_genome": round(
                        b / max(1, self.genomes_by_controller.get(c, 0))
                    ),
                    "cost_dkk_per_year": round(self.cost_per_year(b), 2),
                    "by_type": {x.type: x.bytes for x in self.cells if x.controller == c},
                }
                for c, b in by_ctrl.items()
            },
            "price_dkk_per_tb_year": self.price_dkk_per_tb_year,
            "projection": {
                "genomes": self.projection_genomes,
                "bytes": round(self.mean_per_genome * self.projection_genomes),
                "cost_dkk_per_year": round(
                    self.cost_per_year(round(self.mean_per_genome * self.projection_genomes)), 2
                ),
            },
        }


_TYPE_ORDER = {t.value: i for i, t in enumerate(FileType)}


def footprint(catalog: Catalog, *, price: float, projection: int) -> Footprint:
    """Aggregate the present files of the catalog by controller and type."""
    ctrl = func.coalesce(Controller.name, UNASSIGNED)
    kind = func.coalesce(Controller.kind, "")
    stmt = (
        select(
            ctrl,
            kind,
            File.type,
            func.sum(File.n_files),  # a run folder is one entry of many files
            func.sum(File.size),
            func.count(distinct(File.genome_id)),
        )
        .select_from(File)
        .outerjoin(Controller, Controller.id == File.controller_id)
        .where(File.status == "present")
        .group_by(ctrl, kind, File.type)
    )
    g_stmt = (
        select(ctrl, func.count(distinct(File.genome_id)))
        .select_from(File)
        .outerjoin(Controller, Controller.id == File.controller_id)
        .where(File.status == "present")
        .group_by(ctrl)
    )
    total_g = select(func.count(distinct(File.genome_id))).where(File.status == "present")
    with catalog.engine.connect() as conn:
        cells = [
            Cell(c, k, t, int(n or 0), int(b or 0), g) for c, k, t, n, b, g in conn.execute(stmt)
        ]
        by_ctrl = {c: n for c, n in conn.execute(g_stmt)}
        genomes = conn.execute(total_g).scalar_one()
    cells.sort(key=lambda c: (c.kind != "national", c.controller, _TYPE_ORDER.get(c.type, 99)))
    types = sorted({c.type for c in cells}, key=lambda t: _TYPE_ORDER.get(t, 99))
    controllers = list(dict.fromkeys(c.controller for c in cells))
    return Footprint(cells, genomes, by_ctrl, price, projection, types, controllers)
