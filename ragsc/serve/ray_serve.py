"""``ragsc serve --engine ray --replicas N``: the same app on Ray Serve (``pip install 'ragsc[ray]'``).

Each replica is a Ray actor that builds its own pipeline and :class:`~ragsc.serve.service.ReceiverService`
(models and KBs loaded once per replica) and hands every HTTP request, as ASGI, to the same FastAPI app
``ragsc serve`` runs under uvicorn (:class:`Replica`): one code path for the API, the page, the limits and the
token. Ray Serve's proxy spreads requests over the replicas; each replica batches what reaches it. The torch
threads of a replica are the node's cores divided among its replicas, so that N replicas do not oversubscribe
the cores they share.
"""

from __future__ import annotations

import asyncio
import os

from ragsc.serve.config import ServeConfig


class Replica:
    """One replica: the app of ``spec`` with ``config`` (plain dicts: they cross to the actor as JSON-like
    values), started on its first request; ``pipe``: an already-built pipeline of ``spec`` (tests)."""

    def __init__(self, spec: dict, config: dict, threads: int | None = None, pipe=None) -> None:
        import torch

        from ragsc.pipelines import Pipeline
        from ragsc.serve.app import create_app
        from ragsc.serve.service import ReceiverService

        if threads:
            torch.set_num_threads(threads)
        pipe = pipe if pipe is not None else Pipeline.from_config(spec)
        self.service = ReceiverService(pipe, ServeConfig(**config))
        self.service._warm()  # the LM and the KBs' sentences: loaded before the replica takes traffic
        self.app = create_app(self.service)
        self._started = False
        self._lock = asyncio.Lock()

    async def _start(self) -> None:
        async with self._lock:
            if not self._started:  # the app's lifespan, which Ray Serve does not send to an inner app
                await self.service.start(warm=False)
                self._started = True

    async def __call__(self, request):
        """Forward ``request`` (a Starlette request from Ray Serve's proxy) to the app as ASGI."""
        from starlette.responses import Response

        if not self._started:
            await self._start()
        start, body = {}, []

        async def send(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        scope = dict(request.scope)
        scope["root_path"] = ""  # the app's routes are absolute
        await self.app(scope, request.receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", [])}
        headers.pop("content-length", None)
        return Response(b"".join(body), status_code=start.get("status", 500), headers=headers)


def deployment(spec, config: ServeConfig):
    """The Ray Serve application of ``spec``'s receiver: ``config.replicas`` replicas of :class:`Replica`."""
    from ragsc._deps import require_package

    require_package("ray", "ray")
    from ray import serve

    from ragsc.pipelines.factory import load_spec

    spec_data = load_spec(spec).model_dump(mode="json")
    threads = max(1, (os.cpu_count() or 1) // config.replicas)
    dep = serve.deployment(Replica, name="ragsc-receiver", num_replicas=config.replicas,
                           ray_actor_options={"num_cpus": 0},  # cores are shared by thread count instead
                           max_ongoing_requests=max(16, config.max_queue))
    return dep.bind(spec_data, config.model_dump(mode="json"), threads)


def start(spec, config: ServeConfig, *, blocking: bool = False, env: dict | None = None):
    """Deploy on the running Ray instance (or a local one), with Ray Serve's HTTP proxy on
    ``config.host:config.port``; ``env``: variables the replicas get (``RAGSC_HOME``, ...). Returns the app's
    handle; ``blocking`` serves until interrupted."""
    import ray
    from ray import serve

    from ragsc.serve.server import check_host

    check_host(config.host)
    if not ray.is_initialized():
        prefixes = ("RAGSC_", "HF_", "OMP_", "TRANSFORMERS_")
        keep = {k: v for k, v in os.environ.items() if k.startswith(prefixes)}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {**keep, **(env or {})}})
    serve.start(http_options={"host": config.host, "port": config.port})
    return serve.run(deployment(spec, config), name="ragsc", route_prefix="/", blocking=blocking)


def serve_on_ray(spec, config: ServeConfig) -> None:
    """``ragsc serve --engine ray``: deploy and serve until interrupted."""
    start(spec, config, blocking=True)
