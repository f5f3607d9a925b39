"""The registry app under uvicorn in a thread, for tests that need a real one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from millrace_cli.processes import free_port, http_ok, wait_until
from millrace_registry.app import bootstrap, create_app
from millrace_registry.config import Settings


@contextmanager
def running_registry(settings: Settings) -> Iterator[str]:
    """The registry app under uvicorn in a thread of its own; its URL once /readyz is 200."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(bootstrap(settings)),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not thread.is_alive():
            raise RuntimeError("the registry exited during start-up")
        return http_ok(f"{url}/readyz")

    try:
        wait_until(ready, timeout=60, what="the registry to be ready")
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
