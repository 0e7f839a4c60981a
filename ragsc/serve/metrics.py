"""``/metrics``: the service in Prometheus's text format (``prometheus_client``, one registry per app).

``ragsc_requests_total{path,method,status}``, ``ragsc_request_seconds{path}`` (histogram),
``ragsc_batch_items`` and ``ragsc_batch_seconds`` (histograms), ``ragsc_queue_items`` (gauge),
``ragsc_expired_total`` (jobs past their deadline before their batch) and ``ragsc_gone_total`` (jobs whose
client went away before their batch: never decoded), ``ragsc_ready``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

PATHS = ("/v1/run", "/v1/receive", "/v1/kb", "/v1/spec", "/healthz", "/readyz", "/metrics", "/")


class Metrics:
    """The service's counters (see the module docstring)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, service) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("ragsc_requests", "HTTP requests", ["path", "method", "status"], registry=r)
        self.latency = Histogram("ragsc_request_seconds", "request latency", ["path"], registry=r,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120))
        self.batch_items = Histogram("ragsc_batch_items", "items per decoding batch", registry=r,
                                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.batch_seconds = Histogram("ragsc_batch_seconds", "seconds per decoding batch", registry=r,
                                       buckets=(.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
        Gauge("ragsc_queue_items", "items waiting", registry=r).set_function(
            lambda: service.batcher.queued_items)
        Gauge("ragsc_expired_total", "jobs past their deadline before their batch (answered 504)",
              registry=r).set_function(lambda: service.batcher.stats.expired)
        Gauge("ragsc_gone_total", "jobs whose client went away before their batch (never decoded)",
              registry=r).set_function(lambda: service.batcher.stats.gone)
        Gauge("ragsc_ready", "models loaded", registry=r).set_function(lambda: float(service.ready))

    def request(self, path: str, method: str, status: int, seconds: float) -> None:
        # label by route family, not by raw path: a client cannot grow the label set
        family = next((p for p in PATHS if path == p or (p != "/" and path.startswith(p + "/"))), "other")
        self.requests.labels(family, method, str(status)).inc()
        self.latency.labels(family).observe(seconds)

    def on_batch(self, key, n_items: int, seconds: float) -> None:
        self.batch_items.observe(n_items)
        self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
