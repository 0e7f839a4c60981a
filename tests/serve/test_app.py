"""The HTTP API over loopback: a transmitter in this process, the receiver in the server's thread."""

import asyncio
import base64
import io
import json
import os
import struct
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from ragsc.client import ServiceError, Transmitter, image
from ragsc.serve import frame
from ragsc.serve.frame import MEDIA_TYPE

# a sentence as a user would type it, and a photo nobody here trained on (scikit-image's cat, an odd size)
SENTENCE = "can u pick up milk on the way home?? thx"
CAT = Image.fromarray(skdata.chelsea()).resize((90, 60))


def b64(im: Image.Image, fmt="PNG") -> str:
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def test_transmitter_outputs_equal_the_in_process_pipeline(served, transmitter_pipe):
    items = [SENTENCE, {"image": CAT, "questions": ["what animal is this?"]}]
    with Transmitter(served.url, pipeline=transmitter_pipe) as tx:
        answer = tx.send(items, snr_db=5, channel="rayleigh")
    ref_tx = served.pipe.transmit(items, snr_db=5, channel="rayleigh")
    ref = served.pipe.receive(ref_tx)
    got = answer["outputs"]
    assert got[0]["text"] == ref[0].text and got[0]["kind"] == "text"
    assert got[1]["caption"] == ref[1].caption and got[1]["answers"] == ref[1].answers
    assert np.array_equal(np.asarray(image(got[1]["image"])), np.asarray(ref[1].image))
    assert answer["channel_uses"] == ref_tx.channel_uses_per_item
    assert [h["id"] for h in got[1]["context"]] == [h.id for h in ref[1].context]
    assert all(h["kb"] in ("local", "global", "local+global") for h in got[1]["context"])
    assert answer["timings"]["batch_items"] == 2 and answer["timings"]["decode"] > 0


def test_run_plays_transmitter_and_channel_and_offers_the_baseline(served):
    body = {"items": [SENTENCE], "snr_db": 10, "channel": "awgn", "baseline": True}
    r = httpx.post(served.url + "/v1/run", json=body, timeout=300)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["outputs"][0]["text"] == served.pipe.run([SENTENCE], snr_db=10)[0].text
    base = out["baseline"][0]
    assert base["channel_uses"] == out["channel_uses"][0] and "LDPC" in base["path"]
    assert isinstance(base["text"], str)


def test_the_spec_endpoint_builds_a_matching_transmitter(served):
    spec = httpx.get(served.url + "/v1/spec").json()
    assert spec["spec"]["name"] == served.pipe.spec.name and spec["frame_version"] == frame.VERSION
    assert spec["fingerprint"] == served.pipe.encoder.fingerprint


def test_kb_reads(served):
    kbs = {k["name"]: k for k in httpx.get(served.url + "/v1/kb").json()}
    assert (set(kbs) == {"local", "global"} and kbs["local"]["scope"] == "local"
            and kbs["global"]["items"] > 100)
    hits = httpx.get(served.url + "/v1/kb/local/search", params={"q": "where do parcels go?", "k": 1}).json()
    assert hits["hits"][0]["text"] == "the courier leaves parcels at the back door"
    stats = httpx.get(served.url + "/v1/kb/global/stats").json()
    assert stats["items"] == kbs["global"]["items"] and "path" not in stats


@pytest.mark.parametrize("name, status", [("nope", 404), ("a.b", 400), ("Local", 400), ("x" * 80, 400),
                                          ("%2e%2e", 400)])
def test_kbs_are_named_never_located(served, name, status):
    r = httpx.get(f"{served.url}/v1/kb/{name}/stats")
    assert r.status_code == status, r.text
    assert r.json()["error"] == ("UnknownKB" if status == 404 else "InputError")
    assert ("serves" if status == 404 else "not a KB name") in r.json()["detail"]


def test_a_string_is_a_sentence_never_a_server_path(served):
    path = os.path.abspath(__file__)
    r = httpx.post(served.url + "/v1/run", json={"items": [path], "snr_db": 20}, timeout=120)
    assert r.status_code == 200
    out = r.json()["outputs"][0]
    assert out["kind"] == "text" and out["image"] is None  # sent as a sentence: the file was never opened


def test_kb_writes_need_the_token_and_commit(served):
    url = served.url + "/v1/kb/local"
    before = len(served.local)
    item = {"items": [{"text": "the spare key hangs behind the blue shutter"},
                      {"image": b64(CAT, "JPEG"), "caption": "a tabby cat, up close"}]}
    assert httpx.post(url + "/ingest", json=item).status_code == 401
    r = httpx.post(url + "/ingest", json=item, headers=auth("wrong-token-0123456789"))
    assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
    assert len(served.local) == before
    r = httpx.post(url + "/ingest", json=item, headers=auth(served.token), timeout=60)
    assert r.status_code == 200, r.text
    ids = r.json()["ids"]
    assert r.json()["added"] == 2 and len(served.local) == before + 2
    hit = httpx.get(url + "/search", params={"q": "where is the spare key?", "k": 1}).json()["hits"][0]
    assert hit["id"] == ids[0] and hit["kb"] == "local"
    photo = httpx.get(url + "/search", params={"q": "a cat", "k": 1, "modality": "image"}).json()["hits"][0]
    assert photo["id"] == ids[1] and photo["source"].startswith("file:")  # no server path leaks
    stored = Path(os.environ["RAGSC_HOME"]) / "photos" / "api" / photo["source"].removeprefix("file:")
    assert stored.is_file()  # kept in the server's data folder, for side information
    assert httpx.delete(url + "/items", params={"ids": ids}).status_code == 401
    r = httpx.delete(url + "/items", params={"ids": ids}, headers=auth(served.token))
    assert r.json() == {"deleted": 2, "items": before}


def _valid_frame(transmitter_pipe, snr=10, text=SENTENCE):
    em = transmitter_pipe.emit([text], snr_db=snr)
    return frame.encode(em, transmitter_pipe.spec.name, transmitter_pipe.encoder.fingerprint)


def test_bad_input_is_a_clear_4xx_and_changes_nothing(served, transmitter_pipe):
    before = len(served.local)
    good = _valid_frame(transmitter_pipe)
    n = struct.unpack_from("<I", good, 8)[0]
    header = json.loads(good[12:12 + n])
    start = 12 + n + (-(12 + n) % 8)

    def refit(h):  # the frame with header h and the same arrays
        t = json.dumps(h).encode()
        out = struct.pack("<4sHHI", b"RSCF", 1, 0, len(t)) + t
        return out + bytes(-len(out) % 8) + good[start:]

    nan = bytearray(good)
    nan[start:start + 4] = struct.pack("<f", float("nan"))
    cases = [
        (b"this is not a ragsc frame", 400, "magic"),
        (good[:-8], 400, "needs"),
        (bytes(nan), 400, "NaN"),
        (refit({**header, "spec": "text"}), 400, "this receiver serves"),
        (refit({**header, "encoder": "0" * 64}), 400, "fingerprint"),
        (refit({**header, "snr_db": 1000}), 400, "snr_db"),
        (refit({**header, "channel": {**header["channel"], "csi": "none"}}), 400, "csi"),
        (refit({**header, "channel": {**header["channel"], "channel": "rayleigh"}}), 400, "CSI"),
        (refit({**header, "sentences": {**header["sentences"], "tokens": [500]}}), 400, "claims 500 tokens"),
    ]
    cases += [
        (refit({**header, "channel": {**header["channel"], "seed": 2**64}}), 400, "seed"),
        (refit({**header, "arrays": [{"dtype": "<c8", "shape": [2**40, 0]}]}), 400, "arrays"),
        (struct.pack("<4sHHI", b"RSCF", 1, 0, 100_000) + b"[" * 100_000, 400, "not UTF-8 JSON"),
    ]
    for body, status, words in cases:
        r = httpx.post(served.url + "/v1/receive", content=body, headers={"Content-Type": MEDIA_TYPE})
        assert r.status_code == status, (words, r.text)
        assert words in r.json()["detail"] and r.json()["error"] == "InputError"
    posts = [
        ({"items": ["x"], "seed": 2**64}, 422, "seed"),
        ({"items": [{"image": b64(CAT)[: len(b64(CAT)) // 2 // 4 * 4]}]}, 400, "damaged"),
        ({"items": []}, 422, "items"), ({"items": ["x"], "channel": "wormhole"}, 422, "channel"),
        ({"items": ["x"], "snr_db": 99}, 400, "snr_db"), ({"items": ["x"] * 9}, 400, "at most 8"),
        ({"items": [{"image": "%%%"}]}, 400, "base64"),
        ({"items": [{"image": base64.b64encode(b"just some text, no picture").decode()}]}, 400, "Pillow"),
        ({"items": [{"image": b64(Image.new("RGB", (1200, 1000)))}]}, 400, "pixels"),
        ({"items": ["x"], "surprise": 1}, 422, "surprise"),
        ({"items": ["x"] * 5, "baseline": True}, 400, "at most 4"),
        ({"items": [{"image": b64(Image.new("RGB", (400, 300)))}], "baseline": True}, 400, "at most 100,000"),
    ]
    for body, status, words in posts:
        r = httpx.post(served.url + "/v1/run", json=body, timeout=60)
        assert r.status_code == status, (body, r.text)
        assert words in r.json()["detail"]
    r = httpx.post(served.url + "/v1/receive", content=good, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and r.json()["error"] == "UnsupportedMediaType"
    r = httpx.post(served.url + "/v1/run", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "ValidationError"
    r = httpx.post(served.url + "/v1/receive", content=bytes(5 << 20), headers={"Content-Type": MEDIA_TYPE})
    assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"
    r = httpx.post(served.url + "/v1/kb/local/ingest", json={"items": [{"text": "x", "image": "y"}]},
                   headers=auth(served.token))
    assert r.status_code == 400 and "either text or image" in r.json()["detail"]
    assert len(served.local) == before
    assert httpx.get(served.url + "/healthz").json() == {"status": "ok"}


async def _raw_post(url: str, path: str, body: bytes, gate: asyncio.Semaphore) -> tuple[int, dict, dict]:
    """One POST on its own connection, HTTP/1.1 by hand: a thousand of them cost the test process little (an
    HTTP client library in the same process as the server took the decoding's CPU)."""
    host, port = url.removeprefix("http://").split(":")
    async with gate:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {MEDIA_TYPE}\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        await writer.drain()
        raw = await reader.read()
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    if headers.get("transfer-encoding") == "chunked":  # not used by uvicorn for JSON, but be safe
        raise AssertionError("unexpected chunked reply")
    return int(lines[0].split()[1]), headers, json.loads(payload)


def test_a_thousand_requests_at_once_are_answered_or_refused(served, transmitter_pipe):
    good = _valid_frame(transmitter_pipe, text="ok")  # one token: cheap to decode

    async def flood():
        gate = asyncio.Semaphore(250)
        # most are malformed (cheap refusals); 20 valid ones overflow the queue of 8
        bodies = [good if i % 50 == 0 else good[: 12 + i % 50] for i in range(1000)]
        return await asyncio.gather(*(_raw_post(served.url, "/v1/receive", b, gate) for b in bodies))

    replies = asyncio.run(flood())
    statuses = [status for status, _, _ in replies]
    assert len(replies) == 1000 and set(statuses) <= {200, 400, 429}, sorted(set(statuses))
    assert statuses.count(200) >= 1 and statuses.count(400) == 980
    assert all(body["error"] and body["detail"] for status, _, body in replies if status != 200)
    full = [(h, body) for status, h, body in replies if status == 429]
    assert all(int(h["retry-after"]) >= 1 and "queue is full" in body["detail"] for h, body in full)
    # every accepted request answered exactly its own item
    assert all(len(body["outputs"]) == 1 for status, _, body in replies if status == 200)
    assert httpx.get(served.url + "/readyz").json() == {"ready": True}


def test_deadline_and_a_client_that_leaves(served, transmitter_pipe):
    """While the worker decodes one request, a second with a tiny deadline gets 504, and a third whose
    client gives up is dropped before it costs any decoding."""
    busy = threading.Thread(target=lambda: httpx.post(served.url + "/v1/run", timeout=300, json={
        "items": ["tell me a long story about the sea, the wind and an old lighthouse keeper"]}))
    busy.start()
    time.sleep(0.3)
    try:
        expired, gone = _metric(served, "ragsc_expired_total"), _metric(served, "ragsc_gone_total")
        r = httpx.post(served.url + "/v1/run", json={"items": ["hello"], "deadline_s": 0.05}, timeout=60)
        assert r.status_code == 504 and r.json()["error"] == "DeadlineExceeded"
        with pytest.raises(httpx.TimeoutException):
            httpx.post(served.url + "/v1/run", json={"items": ["goodbye"]}, timeout=0.3)
        time.sleep(0.5)  # the server notices the closed connection within its 0.1 s poll
        # the client that left is out of the queue before the busy batch ends: never decoded
        assert _metric(served, "ragsc_gone_total") == gone + 1
    finally:
        busy.join()
    assert _metric(served, "ragsc_expired_total") >= expired + 1


def _metric(served, name):
    for line in httpx.get(served.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_health_metrics_and_openapi(served):
    assert httpx.get(served.url + "/readyz").status_code == 200
    text = httpx.get(served.url + "/metrics").text
    for name in ("ragsc_requests_total", "ragsc_request_seconds_bucket", "ragsc_batch_items_bucket",
                 "ragsc_queue_items", "ragsc_ready 1.0"):
        assert name in text
    api = httpx.get(served.url + "/openapi.json").json()
    assert MEDIA_TYPE in api["paths"]["/v1/receive"]["post"]["requestBody"]["content"]
    assert {"/v1/run", "/v1/kb", "/v1/kb/{name}/search", "/v1/kb/{name}/ingest",
            "/healthz"} <= set(api["paths"])


def test_a_client_error_is_a_service_error(served, transmitter_pipe):
    with Transmitter(served.url, pipeline=transmitter_pipe) as tx:
        with pytest.raises(ServiceError, match="400 InputError") as info:
            tx._json(tx.http.post("/v1/receive", content=b"xx", headers={"Content-Type": MEDIA_TYPE}))
        assert info.value.status == 400 and "shorter" in info.value.detail


def test_a_photo_from_a_phone_arrives_upright(served):
    """A JPEG whose EXIF says "rotate 90" is sent upright, as it is when read from a file."""
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 clockwise to view
    buf = io.BytesIO()
    CAT.resize((64, 40)).save(buf, format="JPEG", exif=exif.tobytes())
    photo = base64.b64encode(buf.getvalue()).decode()
    r = httpx.post(served.url + "/v1/run", json={"items": [{"image": photo}], "snr_db": 20}, timeout=300)
    assert r.status_code == 200, r.text
    assert image(r.json()["outputs"][0]["image"]).size == (40, 64)
