"""The batcher: batches form under concurrency, a full queue answers at once, one bad job fails alone."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from kizu.service.batching import Batcher, ModelHandle, QueueFull
from kizu.service.errors import ServiceError


class FakeModel:
    """Records batch sizes; sleeps ``delay`` per batch; refuses images named 'bad'."""

    def __init__(self, delay: float = 0.0):
        self.delay, self.batches, self.gate = delay, [], threading.Event()
        self.gate.set()

    def inspect(self, images, names):
        self.gate.wait()
        if "bad" in names:
            raise ValueError("bad image")
        self.batches.append(len(images))
        time.sleep(self.delay)
        return [float(im.sum()) for im in images]


def handle(model) -> ModelHandle:
    return ModelHandle(model, "fake", "", 0.0, {})


def run(coro):
    return asyncio.run(coro)


def test_concurrent_jobs_share_batches():
    model = FakeModel(delay=0.02)
    b = Batcher(lambda: handle(model), window_s=0.01, max_batch=8, max_queue=64)
    b.start()

    async def main():
        jobs = [b.submit([np.full((1, 2, 2), i, np.float32)], [str(i)]) for i in range(20)]
        return await asyncio.gather(*jobs)

    results = run(main())
    b.stop()
    assert [r.verdicts[0] for r in results] == [4.0 * i for i in range(20)]  # each job gets its own result
    assert max(model.batches) > 1 and max(model.batches) <= 8 and sum(model.batches) == 20


def test_full_queue_refuses_at_once():
    model = FakeModel()
    model.gate.clear()  # the worker blocks: nothing drains
    b = Batcher(lambda: handle(model), window_s=0.0, max_batch=2, max_queue=4)
    b.start()

    async def main():
        img = [np.zeros((1, 2, 2), np.float32)]
        waiting = [asyncio.ensure_future(b.submit(img * 2, ["a", "b"])) for _ in range(2)]
        await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        with pytest.raises(QueueFull) as err:
            await b.submit(img, ["c"])
        assert time.perf_counter() - t0 < 0.05 and err.value.retry_after >= 1
        model.gate.set()
        return await asyncio.gather(*waiting)

    assert len(run(main())) == 2
    b.stop()
    assert b.pending == 0


def test_a_failing_job_does_not_fail_its_batch_mates():
    model = FakeModel(delay=0.01)
    b = Batcher(lambda: handle(model), window_s=0.02, max_batch=8, max_queue=64)
    b.start()

    async def main():
        img = [np.ones((1, 2, 2), np.float32)]
        return await asyncio.gather(b.submit(img, ["ok1"]), b.submit(img, ["bad"]), b.submit(img, ["ok2"]),
                                    return_exceptions=True)

    ok1, bad, ok2 = run(main())
    b.stop()
    assert isinstance(bad, ValueError) and ok1.verdicts == ok2.verdicts == [4.0]
    assert b.pending == 0


def test_queue_full_is_a_503_with_retry_after(make_client, good_png, monkeypatch):
    client = make_client(max_queue=32, max_batch=32)
    service = client.app.state.service

    def full(images, names):
        raise QueueFull(7)

    monkeypatch.setattr(service.batcher, "submit", full)
    r = client.post("/v1/inspect", files={"file": ("g.png", good_png, "image/png")})
    assert r.status_code == 503 and r.headers["retry-after"] == "7" and "queue is full" in r.json()["error"]


def test_bad_batch_options():
    with pytest.raises(ValueError):
        Batcher(lambda: None, max_batch=8, max_queue=4)
    from kizu.service.app import ServiceConfig

    with pytest.raises(ServiceError, match="--audit-rate"):
        ServiceConfig(model=".", audit_rate=2).check()
    with pytest.raises(ServiceError, match="--max-queue"):
        ServiceConfig(model=".", max_queue=8, max_files=32).check()
