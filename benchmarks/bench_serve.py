"""The receiver as a service under load (printed and written to docs/results/bench_serve.json, never
asserted).

    python benchmarks/bench_serve.py [--sentences 64] [--clients 16] [--seconds 45] [--no-ray]

Held-out sentences (WordNet's examples: nobody here wrote or trained on them) are encoded and sent through
the simulated channel (AWGN, 10 dB) by the benchmark, the transmitter; what the receiver's antenna got goes to
``ragsc serve text`` -- a separate process on a loopback port -- as binary frames (``POST /v1/receive``).

1. **In process** (before any server runs): the same frames decoded by the pipeline at batch 1, 8 and 32:
   sentences/s, the best batch throughput, and each frame's output (the reference for every served answer).
2. **Overhead at batch 1**: sequential requests; the client's latency minus the server's own decoding time.
3. **Saturation**: ``--clients`` concurrent clients in a closed loop for ``--seconds``: answers/s (and the
   ratio to the best in-process throughput), p50 / p95 / p99 latency, batch sizes, errors, and lost or wrong
   answers (every answer is checked against the in-process output of its own frame: a mixed-up batch would
   show).
4. **Half load**: open-loop Poisson arrivals at half the saturating rate: p50, p99 and their ratio.
5. **Restart**: clients keep sending while the server is stopped (SIGTERM) and started again: every request is
   answered or clearly failed (an HTTP error or a refused connection), none hangs.
6. **kill -9 during an ingestion**: the server killed mid-``POST /v1/kb/local/ingest``; the KB opens at its
   last commit, whole (checksums verified).
7. **Ray Serve**: the same load against ``--engine ray`` with 1 and 2 replicas (``--no-ray`` skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import httpx  # noqa: E402
from _common import Table, add_results_args, write_results  # noqa: E402

from ragsc.report import table  # noqa: E402

MEDIA = "application/vnd.ragsc.frame"
SNR_DB = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, *extra: str, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ragsc.cli", "serve", "text", "--port", str(port), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, start_new_session=True)


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 600) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=30).status_code == 200:
                return time.monotonic() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError("the server did not become ready")


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))] if s else float("nan")


# ----------------------------------------------------------------------------- 1. in process
def in_process(sentences: list[str]) -> tuple[Table, list[bytes], list[str], float, float]:
    from ragsc.pipelines import Pipeline
    from ragsc.pipelines.transmission import Transmission
    from ragsc.serve import frame

    pipe = Pipeline.from_config("text")
    frames, ems = [], []
    for s in sentences:
        em = pipe.emit([s], snr_db=SNR_DB)
        frames.append(frame.encode(em, pipe.spec.name, pipe.encoder.fingerprint))
        ems.append(frame.decode(frames[-1])[1])
    pipe.kb_sentences()  # built once, as the server does at start
    rows, best, reference, per_one = [], 0.0, [], float("nan")
    for bs in (1, 8, 32):
        outs = []
        t0 = time.perf_counter()
        for start in range(0, len(ems), bs):
            tx = Transmission.concat([pipe.arrive(em) for em in ems[start:start + bs]])
            outs += [o.text for o in pipe.receive(tx)]
        dt = time.perf_counter() - t0
        rate = len(ems) / dt
        rows.append([bs, len(ems), f"{dt:.1f}", f"{rate:.2f}"])
        best = max(best, rate)
        if bs == 1:
            per_one = dt / len(ems)
        if bs == 32:
            reference = outs
    t = Table("in_process", ["batch", "sentences", "seconds", "sentences/s"], rows,
              f"In process: the frames decoded by the pipeline (text spec, AWGN {SNR_DB:g} dB, RAG on)")
    return t, frames, reference, best, per_one


# ----------------------------------------------------------------------------- load generators
async def _post(client: httpx.AsyncClient, body: bytes) -> tuple[int, dict | None, float]:
    t0 = time.perf_counter()
    try:
        r = await client.post("/v1/receive", content=body, headers={"Content-Type": MEDIA})
        data = r.json()
        return r.status_code, data, time.perf_counter() - t0
    except (httpx.TransportError, ValueError) as exc:
        return -1, {"error": type(exc).__name__}, time.perf_counter() - t0


async def closed_loop(url: str, frames: list[bytes], clients: int, seconds: float,
                      max_requests: int = 100_000):
    """``clients`` each send a frame, wait for the answer, send the next, until ``seconds`` pass."""
    results = []
    deadline = time.monotonic() + seconds
    counter = iter(range(max_requests))
    async with httpx.AsyncClient(base_url=url, timeout=300,
                                 limits=httpx.Limits(max_connections=clients)) as c:
        async def worker():
            for i in counter:
                if time.monotonic() > deadline:
                    return
                status, data, dt = await _post(c, frames[i % len(frames)])
                results.append((i, status, data, dt))
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
    return results, wall


async def open_loop(url: str, frames: list[bytes], rate: float, seconds: float, seed: int = 0):
    """Poisson arrivals at ``rate`` requests/s for ``seconds`` (each request on its own task)."""
    rng = random.Random(seed)
    tasks, results = [], []
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=httpx.Limits(max_connections=500)) as c:
        async def one(i):
            status, data, dt = await _post(c, frames[i % len(frames)])
            results.append((i, status, data, dt))
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < seconds:
            tasks.append(asyncio.create_task(one(i)))
            i += 1
            await asyncio.sleep(rng.expovariate(rate))
        await asyncio.gather(*tasks)
    return results


def summarise(results, reference: list[str], wall: float | None = None) -> dict:
    ok = [(i, d, dt) for i, s, d, dt in results if s == 200]
    wrong = sum(1 for i, d, _ in ok
                if len(d["outputs"]) != 1 or d["outputs"][0]["text"] != reference[i % len(reference)])
    lat = [dt for _, _, dt in ok]
    sizes = [d["timings"]["batch_items"] for _, d, _ in ok]
    errors = {}
    for _, s, d, _ in results:
        if s != 200:
            key = f"{s} {d.get('error') if d else ''}"
            errors[key] = errors.get(key, 0) + 1
    return {"sent": len(results), "answered": len(ok), "wrong": wrong, "errors": errors,
            "rate": len(ok) / wall if wall else None,
            "p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99),
            "batch_mean": statistics.mean(sizes) if sizes else 0, "batch_max": max(sizes) if sizes else 0}


# ----------------------------------------------------------------------------- 5. restart
async def restart_run(url: str, port: int, frames: list[bytes], clients: int) -> tuple[dict, float]:
    """Clients send for the whole run; the server is stopped after a few seconds and started again."""
    outcomes = {"answered": 0, "http_error": 0, "refused_or_reset": 0, "lost": 0}
    state = {"proc": start_server(port)}
    wait_ready(url, state["proc"])
    stop_at, restarted = time.monotonic() + 8, {"t": None}

    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(120, connect=5)) as c:
        async def worker(k):
            i = k
            while restarted["t"] is None or time.monotonic() < restarted["t"] + 5:
                try:
                    r = await c.post("/v1/receive", content=frames[i % len(frames)],
                                     headers={"Content-Type": MEDIA})
                    r.json()  # every answer, error or not, is JSON
                    outcomes["answered" if r.status_code == 200 else "http_error"] += 1
                except httpx.TimeoutException:
                    outcomes["lost"] += 1
                except httpx.TransportError:
                    outcomes["refused_or_reset"] += 1
                    await asyncio.sleep(0.2)
                i += clients

        async def restarter():
            await asyncio.sleep(max(0, stop_at - time.monotonic()))
            await asyncio.to_thread(stop, state["proc"])
            state["proc"] = start_server(port)
            await asyncio.to_thread(wait_ready, url, state["proc"])
            restarted["t"] = time.monotonic()

        t0 = time.monotonic()
        await asyncio.gather(restarter(), *(worker(k) for k in range(clients)))
    stop(state["proc"])
    return outcomes, time.monotonic() - t0


# ----------------------------------------------------------------------------- 6. kill -9 during ingestion
def kill_during_ingest(tmp: Path) -> list[list]:
    import json

    from ragsc.encoders import load_encoder
    from ragsc.kb import KnowledgeBase

    kb_dir = tmp / "local-kb"
    KnowledgeBase.create(kb_dir, load_encoder("embedded"), scope="local")
    spec = tmp / "spec.yaml"
    spec.write_text(json.dumps({"name": "ingest-bench", "task": "text",
                                "knowledge_bases": [{"path": str(kb_dir), "scope": "local"}]}))
    token = tmp / "token"
    token.write_text("bench-token-0123456789abcdef")
    os.chmod(token, 0o600)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "ragsc.cli", "serve", str(spec), "--port", str(port),
                             "--token-file", str(token)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    wait_ready(url, proc)
    auth = {"Authorization": "Bearer bench-token-0123456789abcdef"}
    from ragsc.datasets.heldout import wordnet_examples

    texts = wordnet_examples(2000, seed=7)
    committed = 0
    for j in range(3):  # three committed ingestions
        r = httpx.post(url + "/v1/kb/local/ingest", headers=auth, timeout=300,
                       json={"items": [{"text": t} for t in texts[j * 50:(j + 1) * 50]]})
        committed = r.json()["items"]
    rows = [["before the kill", committed]]
    # a large ingestion, killed while the server embeds it
    big = {"items": [{"text": t} for t in texts[200:456]]}
    result = {}

    def post():
        try:
            result["r"] = httpx.post(url + "/v1/kb/local/ingest", headers=auth, json=big,
                                     timeout=300).status_code
        except httpx.TransportError as exc:
            result["r"] = type(exc).__name__

    import threading

    th = threading.Thread(target=post)
    th.start()
    time.sleep(0.6)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    th.join()
    kb = KnowledgeBase.open(kb_dir)
    kb.verify()
    rows += [["killed request", result.get("r")], ["after the kill (opened, checksums verified)", len(kb)],
             ["at the last commit", "yes" if len(kb) in (committed, committed + 256) else "NO"]]
    return rows


# ----------------------------------------------------------------------------- 7. Ray Serve
def ray_run(frames, reference, replicas: int, clients: int, seconds: float) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(port, "--engine", "ray", "--replicas", str(replicas))
    try:
        ready_s = wait_ready(url, proc, timeout_s=900)
        asyncio.run(closed_loop(url, frames, clients, 5))  # warm-up: every replica has decoded
        results, wall = asyncio.run(closed_loop(url, frames, clients, seconds))
        out = summarise(results, reference, wall)
        out["ready_s"] = ready_s
        return out
    finally:
        stop(proc)
        subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "stop", "--force"], capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sentences", type=int, default=64)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=45.0)
    ap.add_argument("--no-ray", action="store_true")
    add_results_args(ap)
    args = ap.parse_args()
    from ragsc.datasets.heldout import wordnet_examples

    sentences = wordnet_examples(args.sentences, seed=0)  # the held-out test draw of bench_text.py
    tables, notes = [], []
    t_in, frames, reference, best, per_one = in_process(sentences)
    print(t_in.title)
    print(t_in.text())
    tables.append(t_in)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(port, "--max-batch", "32", "--max-queue", "512")
    try:
        ready = wait_ready(url, proc)
        print(f"\nserver ready in {ready:.0f} s")
        # 2. batch-1 overhead: the client's latency minus the server's own work on the request
        over, lat = [], []
        with httpx.Client(base_url=url, timeout=300) as c:  # one connection, kept alive, as a device would
            for i in range(25):
                t0 = time.perf_counter()
                d = c.post("/v1/receive", content=frames[i % len(frames)],
                           headers={"Content-Type": MEDIA}).json()
                dt = time.perf_counter() - t0
                work = sum(d["timings"].get(k, 0.0) for k in ("channel", "retrieve", "decode"))
                if i >= 5:  # after a warm-up
                    over.append(dt - work)
                    lat.append(dt)
        # 3. saturation
        asyncio.run(closed_loop(url, frames, args.clients, 5))  # warm-up
        results, wall = asyncio.run(closed_loop(url, frames, args.clients, args.seconds))
        sat = summarise(results, reference, wall)
        # 4. half load, open loop
        half = summarise(asyncio.run(open_loop(url, frames, sat["rate"] / 2, args.seconds)), reference)
    finally:
        stop(proc)
    ratio = sat["rate"] / best
    rows = [["overhead at batch 1 (median, ms)", f"{1000 * statistics.median(over):.1f}", "<= 10",
             "met" if statistics.median(over) <= 0.010 else "MISSED"],
            ["latency at batch 1 (median, s)", f"{statistics.median(lat):.2f}",
             f"in process {per_one:.2f}", ""],
            [f"saturation, {args.clients} clients: answers/s", f"{sat['rate']:.2f}",
             f"best in process {best:.2f}", ""],
            ["served / best in-process throughput", f"{ratio:.2f}", ">= 0.9",
             "met" if ratio >= 0.9 else "MISSED"],
            ["saturation p50 / p95 / p99 (s)", f"{sat['p50']:.2f} / {sat['p95']:.2f} / {sat['p99']:.2f}",
             "", ""],
            ["saturation batch size mean / max", f"{sat['batch_mean']:.1f} / {sat['batch_max']}",
             "", ""],
            ["saturation: sent / answered / wrong / errors",
             f"{sat['sent']} / {sat['answered']} / {sat['wrong']} / "
             f"{sat['errors'] or 0}", "0 lost, 0 wrong", "met" if sat["answered"] == sat["sent"]
             and not sat["wrong"] else "MISSED"],
            [f"half load ({sat['rate'] / 2:.2f}/s open loop): p50 / p99 (s)",
             f"{half['p50']:.2f} / {half['p99']:.2f}",
             "p99 <= 3x p50", "met" if half["p99"] <= 3 * half["p50"] else "MISSED"],
            ["half load: sent / answered / wrong", f"{half['sent']} / {half['answered']} / {half['wrong']}",
             "", ""]]
    t_load = Table("served", ["measure", "value", "goal / reference", ""], rows,
                   f"Served over loopback: ragsc serve text, frames at AWGN {SNR_DB:g} dB, max batch 32")
    print("\n" + t_load.title)
    print(table(t_load.rows, t_load.columns))
    tables.append(t_load)

    outcomes, dt = asyncio.run(restart_run(f"http://127.0.0.1:{(p := free_port())}", p, frames, 8))
    t_restart = Table("restart", ["outcome", "requests"], [[k, v] for k, v in outcomes.items()],
                      f"Server stopped (SIGTERM) and started again under load from 8 clients ({dt:.0f} s): "
                      "every request answered or clearly failed")
    print("\n" + t_restart.title)
    print(t_restart.text())
    tables.append(t_restart)

    with tempfile.TemporaryDirectory() as tmp:
        t_kill = Table("kill9_ingest", ["", "KB items"], kill_during_ingest(Path(tmp)),
                       "kill -9 of the server during POST /v1/kb/local/ingest (256 sentences)")
    print("\n" + t_kill.title)
    print(t_kill.text())
    tables.append(t_kill)

    if not args.no_ray:
        runs = {n: ray_run(frames, reference, n, args.clients, args.seconds) for n in (1, 2)}
        gain = runs[2]["rate"] / runs[1]["rate"]
        rows = [[n, f"{r['rate']:.2f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}", f"{r['batch_mean']:.1f}",
                 f"{r['sent']} / {r['answered']} / {r['wrong']}", f"{r['ready_s']:.0f}"]
                for n, r in runs.items()]
        t_ray = Table("ray_serve", ["replicas", "answers/s", "p50 s", "p99 s", "mean batch",
                                    "sent / answered / wrong", "ready in s"], rows,
                      f"Ray Serve on this machine ({os.cpu_count()} cores), {args.clients} clients: "
                      f"2 replicas give {gain:.2f}x one replica's throughput "
                      f"(goal >= 1.6x: {'met' if gain >= 1.6 else 'MISSED'})")
        print("\n" + t_ray.title)
        print(t_ray.text())
        tables.append(t_ray)
    write_results("bench_serve", tables, args=args, notes=notes)


if __name__ == "__main__":
    main()
