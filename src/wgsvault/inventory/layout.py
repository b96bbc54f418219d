"""Layout rules: how a storage tree maps to data controller, genome and file type.

A layout is a TOML file validated by pydantic. Path rules are tried in order against the path of a
file relative to the scanned root (POSIX separators); the first that matches names the controller
and the genome. A rule is either a `glob` with the placeholders `{controller}` and `{genome}`
(`*` = one path component, `**` = any depth) or a `regex` with the named groups `controller` and
`genome`; a rule may instead fix the controller for a whole tree (`controller = "region-north"`).
Controllers listed in `national` are the national database; every other controller is a region.
Type rules (`[[types]]`, a glob on the file name) override the built-in classification of
`filetypes.py`, e.g. for a site-specific suffix.

The default layout is `<root>/<controller>/<genome_id>/...`, with the top-level folder named
`national` being the national database.
"""

from __future__ import annotations

import fnmatch
import re
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from wgsvault.config import StrictModel, load_toml_model
from wgsvault.errors import PolicyError
from wgsvault.inventory.filetypes import FileType, classify

NATIONAL = "national"


class PathRule(StrictModel):
    glob: str | None = None
    regex: str | None = None
    controller: str | None = Field(None, description="fixed controller for every path matched")

    @model_validator(mode="after")
    def _one_pattern(self) -> PathRule:
        if (self.glob is None) == (self.regex is None):
            raise ValueError("give exactly one of 'glob' or 'regex'")
        pattern = self.compiled
        if self.controller is None and "controller" not in pattern.groupindex:
            raise ValueError("pattern needs a {controller} placeholder or a fixed 'controller'")
        return self

    @cached_property
    def compiled(self) -> re.Pattern[str]:
        if self.regex is not None:
            try:
                return re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid regex {self.regex!r}: {exc}") from None
        return re.compile(_glob_to_regex(self.glob or ""))


class TypeRule(StrictModel):
    glob: str
    type: FileType


class Layout(StrictModel):
    name: str = "custom"
    national: list[str] = Field(default_factory=lambda: [NATIONAL])
    paths: list[PathRule] = Field(min_length=1)
    types: list[TypeRule] = Field(default_factory=list)
    run_folder_markers: list[str] = Field(
        default_factory=lambda: ["RunInfo.xml", "RTAComplete.txt", "RunParameters.xml"]
    )

    @field_validator("national")
    @classmethod
    def _nonempty_names(cls, names: list[str]) -> list[str]:
        if any(not n.strip() for n in names):
            raise ValueError("controller names must not be empty")
        return names

    def locate(self, relpath: str) -> tuple[str | None, str | None]:
        """(controller, genome) of a path relative to the root; (None, None) if no rule matches."""
        for rule in self.paths:
            m = rule.compiled.match(relpath)
            if m is None:
                continue
            groups = m.groupdict()
            controller = rule.controller or groups.get("controller")
            return controller, groups.get("genome")
        return None, None

    def file_type(self, name: str) -> FileType:
        for rule in self.types:
            if fnmatch.fnmatchcase(name, rule.glob):
                return rule.type
        return classify(name)

    def controller_kind(self, controller: str) -> str:
        return "national" if controller in self.national else "region"


def _glob_to_regex(glob: str) -> str:
    out = []
    i = 0
    while i < len(glob):
        if glob.startswith("{controller}", i):
            out.append(r"(?P<controller>[^/]+)")
            i += len("{controller}")
        elif glob.startswith("{genome}", i):
            out.append(r"(?P<genome>[^/]+)")
            i += len("{genome}")
        elif glob.startswith("/**/", i):
            out.append(r"/(?:.+/)?")
            i += 4
        elif glob.startswith("/**", i):
            out.append(r"/.+")
            i += 3
        elif glob.startswith("**", i):
            out.append(r".*")
            i += 2
        elif glob[i] == "*":
            out.append(r"[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append(r"[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out) + r"\Z"


DEFAULT_LAYOUT = Layout(
    name="default",
    paths=[
        PathRule(glob="{controller}/{genome}/**"),
        PathRule(glob="{controller}/*"),
    ],
)


def load_layout(path: Path | None) -> Layout:
    """The layout from a TOML file, or the default layout."""
    if path is None:
        return DEFAULT_LAYOUT
    layout = load_toml_model(path, Layout)
    if not layout.paths:
        raise PolicyError(f"{path}: paths: at least one rule is needed")
    return layout
