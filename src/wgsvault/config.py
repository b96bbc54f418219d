"""Where the vault keeps its state, and the site configuration.

`WGSVAULT_HOME` (default `~/.wgsvault`) holds the embedded SQLite catalog and the vault's other
state. The catalog URL comes from `--catalog URL`, else `WGSVAULT_CATALOG`, else the SQLite file in
the home. An optional `config.toml` in the home sets site figures (storage price, projection size);
every TOML file the vault reads goes through `load_toml_model`, so a bad file always gives one line
naming the file, the field and the problem.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wgsvault.errors import PolicyError

M = TypeVar("M", bound=BaseModel)

#: storage is sold in decimal units: one TB is 10**12 bytes (prices are per TB-year)
TB = 10**12
DEFAULT_PRICE_DKK_PER_TB_YEAR = 1500.0
DEFAULT_PROJECTION_GENOMES = 60_000


class StrictModel(BaseModel):
    """Base for configuration models: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SlurmSite(StrictModel):
    """How this site's Slurm cluster takes the vault's jobs (`[slurm]` in `config.toml`)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    max_running: int = Field(256, gt=0)  # array tasks of a run running at once
    max_attempts: int = Field(3, gt=0)  # tries per genome before a run gives it up
    folder: Path | None = None  # job logs and pickles; default <vault home>/slurm (shared!)
    extra: dict[str, str] = Field(default_factory=dict)  # further sbatch options


class VariantsSite(StrictModel):
    """The variant frequency database (`[variants]` in `config.toml`)."""

    store: Path | None = None  # default <vault home>/variants
    min_new_genomes: int = Field(20, gt=0)  # per release, so releases cannot be diffed to one


class SiteConfig(StrictModel):
    """Site figures used by reports, the cluster and the variant database (`config.toml` in
    the vault home)."""

    price_dkk_per_tb_year: float = Field(DEFAULT_PRICE_DKK_PER_TB_YEAR, gt=0)
    projection_genomes: int = Field(DEFAULT_PROJECTION_GENOMES, gt=0)
    slurm: SlurmSite = Field(default_factory=SlurmSite)
    variants: VariantsSite = Field(default_factory=VariantsSite)


def vault_home() -> Path:
    """The vault's state directory (created on demand by the code that writes there)."""
    return Path(os.environ.get("WGSVAULT_HOME") or Path.home() / ".wgsvault").expanduser()


def catalog_url(explicit: str | None = None, home: Path | None = None) -> str:
    """Resolve the catalog URL: explicit > WGSVAULT_CATALOG > SQLite file in the home."""
    url = explicit or os.environ.get("WGSVAULT_CATALOG")
    if url:
        return url
    home = home or vault_home()
    return f"sqlite:///{home / 'catalog.sqlite'}"


def load_toml_model(path: Path, model: type[M]) -> M:
    """Read a TOML file into a pydantic model; any problem is one PolicyError line."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: invalid TOML: {exc}") from None
    return validate_model(data, model, str(path))


def validate_model(data: object, model: type[M], source: str) -> M:
    """Validate parsed data; the first error is reported with its field location."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise PolicyError(f"{source}: {loc}: {err['msg']}{more}") from None


def site_config(home: Path | None = None) -> SiteConfig:
    """The site configuration from `<home>/config.toml`, or defaults when absent."""
    path = (home or vault_home()) / "config.toml"
    if not path.exists():
        return SiteConfig()
    return load_toml_model(path, SiteConfig)
