"""Ray Serve: a replica hands requests to the same app as uvicorn does (fast, without Ray), and the real
deployment on a local Ray cluster (slow)."""

import asyncio
import json
import socket
import time

import httpx
import pytest

TEXT_SPEC = {"name": "plain-text", "task": "text", "knowledge_bases": [], "decoder": {"rag": False}}


def _request(method: str, path: str, body: bytes = b"", content_type: str = "application/json"):
    from starlette.requests import Request

    sent = {"done": False}

    async def receive():
        if sent["done"]:  # the client stays: nothing more arrives
            await asyncio.sleep(3600)
        sent["done"] = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "/", "scheme": "http", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 1),
             "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", content_type.encode()),
                         (b"content-length", str(len(body)).encode())],
             "http_version": "1.1"}
    return Request(scope, receive)


def test_a_replica_forwards_requests_to_the_app(served):
    from ragsc.serve.ray_serve import Replica

    replica = Replica(served.pipe.spec.model_dump(), {"max_items": 4}, pipe=served.pipe)

    async def main():
        r = await replica(_request("POST", "/v1/run", json.dumps({"items": ["see you at noon"],
                                                                  "snr_db": 20}).encode()))
        bad = await replica(_request("POST", "/v1/receive", b"xx", "application/vnd.ragsc.frame"))
        health = await replica(_request("GET", "/readyz"))
        await replica.service.stop()
        return r, bad, health

    r, bad, health = asyncio.run(main())
    assert r.status_code == 200 and json.loads(r.body)["outputs"][0]["kind"] == "text"
    assert json.loads(r.body)["outputs"][0]["text"] == served.pipe.run(["see you at noon"], snr_db=20)[0].text
    assert bad.status_code == 400 and json.loads(bad.body)["error"] == "InputError"
    assert health.status_code == 200 and json.loads(health.body) == {"ready": True}


@pytest.mark.slow
def test_two_replicas_on_a_local_ray_cluster(tmp_path):
    pytest.importorskip("ray.serve")
    from ray import serve

    from ragsc.serve import ray_serve
    from ragsc.serve.config import ServeConfig
    from tests.conftest import start_local_ray

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start_local_ray(num_cpus=2, runtime_env={"env_vars": {"RAGSC_HOME": str(tmp_path)}})
    try:
        ray_serve.start(TEXT_SPEC, ServeConfig(port=port, replicas=2))
        url = f"http://127.0.0.1:{port}"
        t0 = time.monotonic()
        while time.monotonic() - t0 < 300:
            try:
                if httpx.get(url + "/readyz", timeout=120).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(1)
        answers = [httpx.post(url + "/v1/run", json={"items": [t], "snr_db": 20}, timeout=300)
                   for t in ("see you at noon", "the bus is late again")]
        assert [a.status_code for a in answers] == [200, 200]
        assert httpx.post(url + "/v1/receive", content=b"xx").status_code == 415  # not a frame
        bad = httpx.post(url + "/v1/receive", content=b"xx",
                         headers={"Content-Type": "application/vnd.ragsc.frame"})
        assert bad.status_code == 400 and bad.json()["error"] == "InputError"
    finally:
        serve.shutdown()
        import ray

        ray.shutdown()
