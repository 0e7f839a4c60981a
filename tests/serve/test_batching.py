"""The dynamic batcher with a fake work function: gathering, keys, the bounded queue, deadlines,
cancellation."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ragsc.serve.batching import Batcher, DeadlineExceeded, Job, QueueFull


def run(coro):
    return asyncio.run(coro)


def make(work=None, **kw):
    calls = []

    def default(payloads, key):
        calls.append((key, list(payloads)))
        time.sleep(0.01)
        return [p * 10 if p >= 0 else ValueError(f"bad {p}") for p in payloads]

    b = Batcher(work or default, executor=ThreadPoolExecutor(1), **kw)
    return b, calls


def job(p, key="k", size=1, deadline_s=30.0):
    return Job(p, size, key, time.monotonic() + deadline_s)


def test_concurrent_jobs_share_one_batch_and_keep_their_results():
    async def main():
        b, calls = make(max_batch=8, max_wait_ms=50)
        b.start()
        futs = [b.submit(job(i)) for i in range(5)]
        out = await asyncio.gather(*futs)
        await b.stop()
        return out, calls

    out, calls = run(main())
    assert out == [0, 10, 20, 30, 40]
    assert len(calls) == 1 and calls[0][1] == [0, 1, 2, 3, 4]


def test_max_batch_and_keys_split_batches_in_order():
    async def main():
        b, calls = make(max_batch=2, max_wait_ms=30)
        b.start()
        futs = [b.submit(job(i, key="a" if i % 2 else "b")) for i in range(6)]
        await asyncio.gather(*futs)
        await b.stop()
        return calls

    calls = run(main())
    assert all(len(c[1]) <= 2 for c in calls)
    assert all({p % 2 for p in c[1]} == ({1} if c[0] == "a" else {0}) for c in calls)
    assert sorted(p for c in calls for p in c[1]) == list(range(6))  # nothing lost, nothing twice


def test_a_lone_job_waits_at_most_max_wait():
    async def main():
        b, _ = make(max_batch=64, max_wait_ms=40)
        b.start()
        t0 = time.perf_counter()
        await b.submit(job(1))
        dt = time.perf_counter() - t0
        await b.stop()
        return dt

    assert 0.035 < run(main()) < 2.0


def test_one_bad_job_fails_alone():
    async def main():
        b, _ = make(max_batch=8, max_wait_ms=20)
        b.start()
        futs = [b.submit(job(p)) for p in (1, -1, 2)]
        out = await asyncio.gather(*futs, return_exceptions=True)
        await b.stop()
        return out

    out = run(main())
    assert out[0] == 10 and out[2] == 20 and isinstance(out[1], ValueError)


def test_a_full_queue_refuses_with_retry_after():
    async def main():
        b, _ = make(max_batch=1, max_wait_ms=0, max_queue=3)
        b.start()
        accepted, refused = [], []
        for i in range(10):
            try:
                accepted.append(b.submit(job(i)))
            except QueueFull as exc:
                refused.append(exc.retry_after_s)
        out = await asyncio.gather(*accepted)
        await b.stop()
        return out, refused

    out, refused = run(main())
    assert 3 <= len(out) <= 4 and len(refused) == 10 - len(out) and all(r >= 1 for r in refused)
    assert out == [10 * i for i in range(len(out))]


def test_expired_and_cancelled_jobs_cost_no_work():
    async def main():
        b, calls = make(max_batch=8, max_wait_ms=30)
        b.start()
        late = job(1, deadline_s=-1)
        gone = job(2)
        f_late, f_gone, f_ok = b.submit(late), b.submit(gone), b.submit(job(3))
        gone.cancel()
        ok = await f_ok
        with pytest.raises(DeadlineExceeded):
            await f_late
        assert f_gone.cancelled()
        await b.stop()
        return ok, calls, (b.stats.expired, b.stats.gone)

    ok, calls, dropped = run(main())
    assert ok == 30 and calls == [("k", [3])] and dropped == (1, 1)


def test_work_that_raises_fails_its_batch_only():
    state = {"n": 0}

    def work(payloads, key):
        state["n"] += 1
        if state["n"] == 1:
            raise RuntimeError("boom")
        return payloads

    async def main():
        b, _ = make(work, max_batch=1, max_wait_ms=0)
        b.start()
        f1, f2 = b.submit(job(1)), b.submit(job(2))
        out = await asyncio.gather(f1, f2, return_exceptions=True)
        await b.stop()
        return out

    out = run(main())
    assert isinstance(out[0], RuntimeError) and out[1] == 2


def test_stop_fails_what_is_still_queued():
    async def main():
        b, _ = make(lambda p, k: (time.sleep(0.2), p)[1], max_batch=1, max_wait_ms=0)
        b.start()
        futs = [b.submit(job(i)) for i in range(3)]
        await asyncio.sleep(0.05)
        await b.stop()
        return await asyncio.gather(*futs, return_exceptions=True)

    out = run(main())
    assert any(isinstance(o, DeadlineExceeded) for o in out)


def test_under_load_the_next_batch_waits_for_the_clients_of_the_last():
    """Closed loop: the four clients of a finished batch send again a few ms apart; the next batch waits for
    them (5 % of the last batch's time) instead of starting with the first one alone."""
    def work(payloads, key):
        time.sleep(0.4)
        return payloads

    async def main():
        b = Batcher(work, max_batch=8, max_wait_ms=0, max_fill_ms=250, executor=ThreadPoolExecutor(1))
        b.start()
        await asyncio.gather(*(b.submit(job(i)) for i in range(4)))  # one batch of 4: load seen
        async def again(i):
            await asyncio.sleep(0.004 * i)  # 0..12 ms after the answers
            return await b.submit(job(10 + i))
        await asyncio.gather(*(again(i) for i in range(4)))
        sizes = list(b.stats.sizes)
        await b.stop()
        return sizes

    assert run(main()) == [4, 4]
