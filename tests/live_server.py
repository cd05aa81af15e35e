"""A real uvicorn server running DAC's ASGI app in a background thread, for tests that need
real streaming (SSE, client disconnects). Data must be committed (transaction=True tests)."""

from __future__ import annotations

import threading
import time

import uvicorn

from tests.servers import free_port


class LiveServer:
    def __init__(self) -> None:
        self.port = free_port()
        from dac.asgi import application

        # lifespan "on", as in production (uvicorn's "auto" finds DAC's): stop() drains like SIGTERM.
        config = uvicorn.Config(application, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
