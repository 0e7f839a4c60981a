"""The server side of the Flower engines: :class:`FlowerServer` runs the
:class:`~ragsc.federated.coordinator.Coordinator` as its ``fit``, over a :class:`FlowerTransport`.

:class:`FlowerServer` is a legacy :class:`flwr.server.Server` (the one Flower server that runs unchanged
over gRPC and in the simulation engine): it waits for the spec's clients, checks that each runs the same
spec and claims its own partition, then runs every round inside one Flower "round". Its
:class:`FlowerTransport` sends each exchange's messages to the clients' proxies in parallel threads; an
error reply, a timeout or a lost connection is that client's failure (a dropout), except for the held-out
set's holder, whose failure ends the run. (Not to be confused with
:class:`~ragsc.federated.server.SplitServer`, the server half of the split model, which it drives.)
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import flwr
from flwr.common import Code, GetPropertiesIns

from ragsc.errors import ConfigError
from ragsc.federated.config import FederatedSpec
from ragsc.federated.coordinator import Coordinator, FederationError
from ragsc.federated.flower.codec import decode_reply, encode_message
from ragsc.federated.model import load_base
from ragsc.federated.protocol import EVALUATOR, Dropped, Message, Reply
from ragsc.federated.results import FederatedResult
from ragsc.federated.setup import build_model

log = logging.getLogger(__name__)


class FlowerTransport:
    """Sends protocol messages as ``FitIns`` through Flower client proxies (an exchange in parallel)."""

    def __init__(self, proxies: dict[int, object], keys: list[str], timeout: float) -> None:
        self.proxies, self.keys, self.timeout = proxies, keys, timeout
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(proxies)))

    def _one(self, cid: int, msg: Message) -> Reply:
        proxy = self.proxies[min(self.proxies) if cid == EVALUATOR else cid]
        res = proxy.fit(encode_message(msg), timeout=self.timeout, group_id=getattr(msg, "round", 0))
        if res.status.code != Code.OK:
            return Dropped(f"status {res.status.code}: {res.status.message}")
        return decode_reply(res, self.keys)

    def exchange(self, messages: dict[int, Message]) -> dict[int, Reply]:
        futures = {cid: self.pool.submit(self._one, cid, msg) for cid, msg in messages.items()}
        out: dict[int, Reply] = {}
        for cid, fut in sorted(futures.items()):
            try:
                out[cid] = fut.result()
            except Exception as exc:  # error reply, lost connection, timeout: this client failed
                if cid == EVALUATOR:
                    raise FederationError(f"the held-out set's holder failed: {exc}") from None
                log.warning("client %s failed: %s", cid, exc)
                out[cid] = Dropped(f"failed: {type(exc).__name__}: {exc}")
        return out


class FlowerServer(flwr.server.Server):
    """A Flower server whose ``fit`` is the :class:`~ragsc.federated.coordinator.Coordinator`'s run."""

    def __init__(self, spec: FederatedSpec, progress: bool = False) -> None:
        super().__init__(client_manager=flwr.server.SimpleClientManager(), strategy=None)
        self.spec, self.progress = spec, progress
        self.result: FederatedResult | None = None
        self.error: BaseException | None = None

    def fit(self, num_rounds: int, timeout: float | None):
        t0 = time.perf_counter()
        try:
            self.result = self._run()
        except BaseException as exc:  # re-raised by the caller, outside Flower's threads
            self.error = exc
        return flwr.server.History(), time.perf_counter() - t0

    def _run(self) -> FederatedResult:
        spec, cm = self.spec, self.client_manager()
        if not cm.wait_for(spec.clients.n, timeout=int(spec.timeout_s)):
            raise FederationError(f"only {cm.num_available()} of {spec.clients.n} clients connected within "
                                  f"{spec.timeout_s:g} s")
        proxies: dict[int, object] = {}
        for proxy in cm.all().values():
            props = proxy.get_properties(GetPropertiesIns({}), timeout=spec.timeout_s, group_id=0).properties
            if props.get("digest") != spec.digest():
                raise ConfigError(f"client {props.get('partition')} runs another spec (digest "
                                  f"{props.get('digest')}, the server's is {spec.digest()}): start every "
                                  "client with the server's spec")
            p = int(props["partition"])
            if p in proxies:
                raise FederationError(f"two clients claim partition {p}")
            proxies[p] = proxy
        if sorted(proxies) != list(range(spec.clients.n)):
            raise FederationError(f"the clients' partitions are {sorted(proxies)}, expected "
                                  f"0..{spec.clients.n - 1}")
        base = load_base(spec.base)
        keys = list(build_model(spec, base).get_weights())
        transport = FlowerTransport(proxies, keys, spec.timeout_s)
        try:
            result = Coordinator(spec, transport, sorted(proxies), base).run(progress=self.progress)
        finally:
            transport.pool.shutdown(wait=False)
        result.engine = spec.engine
        return result
