"""Running the app: :func:`serve` (``ragsc serve``: uvicorn in the foreground) and :class:`Background` (a
server on a loopback port in a thread, for notebooks, tests and benchmarks).

A server bound to anything but a loopback address is warned about: the API has no TLS, and without
``--token-file`` anyone who can reach it can use its compute.
"""

from __future__ import annotations

import threading
import time
import warnings

from ragsc.errors import ConfigError
from ragsc.serve.config import ServeConfig
from ragsc.serve.security import is_loopback


def check_host(host: str) -> None:
    """Warn when ``host`` is not loopback (the service then answers the network)."""
    if not is_loopback(host):
        warnings.warn(f"ragsc serve is listening on {host}, not on loopback: anyone who can reach it can use "
                      "it (no TLS; reads are open unless --protect-reads). Put it behind a TLS proxy.",
                      stacklevel=2)


def build_app(spec, config: ServeConfig, pipe=None):
    """The app for ``spec`` (or an already-built pipeline ``pipe``) with ``config``."""
    from ragsc.pipelines import Pipeline
    from ragsc.serve.app import create_app
    from ragsc.serve.service import ReceiverService

    return create_app(ReceiverService(pipe if pipe is not None else Pipeline.from_config(spec), config))


def serve(spec, config: ServeConfig, pipe=None) -> None:
    """Serve ``spec``'s receiver in the foreground until interrupted (``engine: uvicorn``)."""
    import uvicorn

    check_host(config.host)
    uvicorn.run(build_app(spec, config, pipe), host=config.host, port=config.port, log_level="info")


class Background:
    """A server for ``app`` on ``host`` (loopback) in a daemon thread: ``with Background(app) as srv:
    httpx.get(srv.url + "/healthz")``. ``port=0`` takes a free port (``srv.port``)."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, start_timeout_s: float = 300.0) -> None:
        import uvicorn

        if not is_loopback(host):
            raise ConfigError(f"a background server listens on loopback only, not {host!r}")
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="ragsc-server")
        self.host, self.start_timeout_s = host, start_timeout_s
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Background:
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server thread stopped before it started (see its log)")
            if time.monotonic() - t0 > self.start_timeout_s:
                self.stop()
                raise TimeoutError(f"the server did not start within {self.start_timeout_s} s")
            time.sleep(0.05)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)

    def __enter__(self) -> Background:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
