"""ragsc.federated.flower.server: the Flower server refuses clients of another spec; a lost connection is a
dropped client."""

from __future__ import annotations

import pytest

pytest.importorskip("flwr")

from ragsc.errors import ConfigError  # noqa: E402
from ragsc.federated import flower  # noqa: E402
from ragsc.federated.protocol import (  # noqa: E402
    Calibrate,
    Dropped,
)


class _Proxy:
    def __init__(self, partition, digest, fail=False):
        self.partition, self.digest, self.fail = partition, digest, fail

    def get_properties(self, ins, timeout, group_id):
        from flwr.common import Code, GetPropertiesRes, Status

        return GetPropertiesRes(Status(Code.OK, ""), {"partition": self.partition, "digest": self.digest})

    def fit(self, ins, timeout, group_id):
        raise ConnectionError("socket closed")


class _Manager:
    def __init__(self, proxies):
        self.proxies = proxies

    def wait_for(self, n, timeout):
        return len(self.proxies) >= n

    def num_available(self):
        return len(self.proxies)

    def all(self):
        return {str(i): p for i, p in enumerate(self.proxies)}


def test_a_client_with_another_spec_is_refused(tiny_spec):
    spec = tiny_spec(clients={"n": 2})
    server = flower.FlowerServer(spec)
    server._client_manager = _Manager([_Proxy(0, spec.digest()), _Proxy(1, "0123456789abcdef")])
    with pytest.raises(ConfigError, match="client 1 runs another spec"):
        server._run()


def test_a_lost_connection_is_a_dropped_client():
    transport = flower.FlowerTransport({0: _Proxy(0, "x")}, ["w"], timeout=5)
    reply = transport.exchange({0: Calibrate()})[0]
    assert isinstance(reply, Dropped) and "ConnectionError: socket closed" in reply.reason
