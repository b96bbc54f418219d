"""A server under test on loopback, for the benches that talk HTTP to `wgsvault serve`."""

from __future__ import annotations

import socket
import time

import httpx


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, seconds: float = 20.0) -> None:
    """Return once `url` answers at all; exit the bench if it does not within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"{url}: server did not start")
