"""The receiver as a service: ``ragsc serve`` (FastAPI + uvicorn), its binary frame, dynamic batching, the web
page, and Ray Serve for more than one replica.

* :mod:`~ragsc.serve.frame` -- the versioned binary frame of ``POST /v1/receive`` (received symbols, CSI);
* :mod:`~ragsc.serve.receiving` -- a frame held to the served pipeline;
* :mod:`~ragsc.serve.batching` -- the bounded queue and the dynamic batcher;
* :mod:`~ragsc.serve.service` -- :class:`ReceiverService`: one pipeline, one worker thread, the KB operations;
* :mod:`~ragsc.serve.app` -- the HTTP API (:func:`create_app`); :mod:`~ragsc.serve.security` the token and
  body limits; :mod:`~ragsc.serve.metrics` ``/metrics``; :mod:`~ragsc.serve.page` the page at ``/``;
* :mod:`~ragsc.serve.server` -- :func:`serve` and :class:`Background` (a loopback server in a thread).

The transmitter that talks to it is :class:`ragsc.client.Transmitter`. Needs the ``serve`` extra
(``pip install 'ragsc[serve]'``: FastAPI, uvicorn, httpx, prometheus-client).
"""

from ragsc.serve.config import ServeConfig

__all__ = ["ServeConfig"]
