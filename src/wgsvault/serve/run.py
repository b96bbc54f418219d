"""Running the service: several processes sharing one port, each a uvicorn server.

Every process binds its own listening socket with SO_REUSEPORT, so the kernel spreads
connections over them; TCP_NODELAY is set because keep-alive responses otherwise wait ~40 ms for
delayed ACKs. Child processes watch their parent and stop when it is gone, however it ended.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import threading
import time

from wgsvault.catalog import open_catalog
from wgsvault.serve.app import create_app
from wgsvault.serve.context import Settings
from wgsvault.serve.signing import secret_key


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket every server process binds on its own (SO_REUSEPORT)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _serve_one(settings: Settings, host: str, port: int, parent: int | None = None) -> None:
    """One server process; a child (`parent` given) stops when the main process is gone."""
    import uvicorn

    sock = _listen(host, port)
    config = uvicorn.Config(create_app(settings), log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    if parent is not None:

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            server.should_exit = True  # orphaned: the main process ended, however it ended

        threading.Thread(target=watch, daemon=True).start()
    server.run(sockets=[sock])


def serve(settings: Settings, host: str, port: int, processes: int = 1) -> None:
    """Run the service in `processes` processes sharing the port (one per core is typical)."""
    open_catalog(settings.catalog_url).close()  # migrate once, before the processes start
    secret_key(settings.home)
    ctx = multiprocessing.get_context("spawn")
    children = [
        ctx.Process(target=_serve_one, args=(settings, host, port, os.getpid()), daemon=True)
        for _ in range(max(0, processes - 1))
    ]
    for c in children:
        c.start()
    try:
        _serve_one(settings, host, port)
    finally:
        for c in children:
            c.terminate()
            c.join(5)
