"""Signed URLs: block and download URLs that carry their own authorisation, never the API token.

A signed token is `base64url(canonical JSON payload) "." base64url(HMAC-SHA256)` under the
server's secret key (`serve.key` in the vault home, created once with mode 0600). The payload
names what may be fetched and until when (`x`, Unix seconds); any change to it breaks the MAC.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from wgsvault.serve.errors import HtsgetError


def secret_key(home: Path) -> bytes:
    """The server's signing key, created once (0600) in the vault home."""
    path = home / "serve.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    return path.read_bytes()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and verifies URL tokens with one key."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def sign(self, payload: dict[str, Any]) -> str:
        body = _b64(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
        mac = _b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest())
        return f"{body}.{mac}"

    def verify(self, token: str) -> dict[str, Any]:
        """The payload of a valid, unexpired token; HtsgetError InvalidAuthentication if not."""
        body, _, mac = token.partition(".")
        want = _b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest())
        if not mac or not hmac.compare_digest(mac, want):
            raise HtsgetError("InvalidAuthentication", "block URL signature is not valid")
        payload: dict[str, Any] = json.loads(_unb64(body))
        if payload["x"] < time.time():
            raise HtsgetError(
                "InvalidAuthentication", "block URL has expired; ask for a new ticket"
            )
        return payload
