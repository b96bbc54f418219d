"""The dashboard's static files: the vega-embed bundle, its own script and style sheet.

Every file is served under a name carrying the first 16 hex digits of its sha256
(`vega-<hash>.js`), so a name never changes content: browsers may cache it for a year
(`IMMUTABLE`), and a new release is fetched at once because its pages name new files. The vega
bundle (vega, vega-lite and vega-embed, from vl-convert: report/charts.py) takes about a second
to build; it is built on first use and kept for the life of the process, for every app in it.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from wgsvault.report import charts

IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
HERE = Path(__file__).parent / "static"
JS = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.body).hexdigest()[:16]


class Assets:
    """The static files below URL `prefix`, by content-hashed name."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._lock = threading.Lock()
        self._by_name: dict[str, Asset] = {}
        self._urls: dict[str, str] = {}

    def _load(self) -> None:
        files = {
            "vega": ("vega", "js", Asset(charts.javascript().encode(), JS)),
            "js": ("dashboard", "js", Asset((HERE / "dashboard.js").read_bytes(), JS)),
            "css": ("dashboard", "css", Asset((HERE / "dashboard.css").read_bytes(), CSS)),
        }
        for key, (stem, ext, asset) in files.items():
            name = f"{stem}-{asset.digest}.{ext}"
            self._by_name[name] = asset
            self._urls[key] = self.prefix + name

    def urls(self) -> dict[str, str]:
        """The URL of each file: `vega`, `js` (the dashboard's script) and `css`."""
        with self._lock:
            if not self._urls:
                self._load()
            return dict(self._urls)

    def get(self, name: str) -> Asset | None:
        self.urls()
        return self._by_name.get(name)


_SHARED: dict[str, Assets] = {}
_SHARED_LOCK = threading.Lock()


def assets(prefix: str) -> Assets:
    """The process's assets below `prefix` (built once, shared by every app)."""
    with _SHARED_LOCK:
        return _SHARED.setdefault(prefix, Assets(prefix))
