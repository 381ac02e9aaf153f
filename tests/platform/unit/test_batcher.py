"""The batcher over BentoML's internal `CorkDispatcher`, pinned to the BentoML version.

`CorkDispatcher` is not public API: these tests hold what `rtml.serving.batcher` relies on (its
constructor, batching of concurrent calls, its fallback on overload and on a cancelled wait), so a
BentoML upgrade fails here, loudly, before it reaches a service.
"""

from __future__ import annotations

import asyncio
import inspect

import bentoml
import numpy as np
import pytest
from bentoml._internal.marshal.dispatcher import CorkDispatcher

from rtml.serving.batcher import BENTOML_VERSION, Batcher, Overloaded


def test_bentoml_is_the_version_the_batcher_was_checked_against():
    # An upgrade must re-check rtml/serving/batcher.py, then move this pin.
    assert bentoml.__version__ == BENTOML_VERSION == "1.4.40"


def test_dispatcher_constructor_takes_what_the_batcher_passes():
    params = inspect.signature(CorkDispatcher.__init__).parameters
    for name in ("max_latency_in_ms", "max_batch_size", "fallback", "get_batch_size"):
        assert name in params, name
    for name in ("fallback", "get_batch_size"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
    # Decorating a coroutine function gives a coroutine function of one item.
    wrapped = CorkDispatcher(10, 4, fallback=lambda: None, get_batch_size=len)(_echo([]))
    assert inspect.iscoroutinefunction(wrapped)


def _echo(calls: list[int], delay_s: float = 0.0):
    """A model that doubles its rows and records each call's row count."""

    async def fn(items):
        calls.append(sum(len(x) for x in items))
        if delay_s:
            await asyncio.sleep(delay_s)
        return [x * 2 for x in items]

    return fn


def test_concurrent_calls_share_model_calls_and_each_gets_its_own_rows():
    calls: list[int] = []

    async def main():
        batcher = Batcher(_echo(calls, delay_s=0.005), max_latency_ms=500, max_batch_size=64)
        items = [np.full((1, 3), float(i)) for i in range(40)]
        out = await asyncio.gather(*(batcher(x, timeout_s=5) for x in items))
        batcher.shutdown()
        return items, out

    items, out = asyncio.run(main())
    for x, y in zip(items, out, strict=True):
        np.testing.assert_array_equal(y, x * 2)
    assert sum(calls) == 40
    assert len(calls) < 40 and max(calls) > 1  # some calls carried several requests


def test_overload_raises_overloaded_not_a_fallback_value():
    calls: list[int] = []

    async def main():
        # Each call takes 50 ms against a 5 ms queueing budget: the queue cannot keep up.
        batcher = Batcher(_echo(calls, delay_s=0.05), max_latency_ms=5, max_batch_size=2)
        results = await asyncio.gather(
            *(batcher(np.ones((1, 3)), timeout_s=10) for _ in range(60)),
            return_exceptions=True)
        batcher.shutdown()
        return results

    results = asyncio.run(main())
    shed = [r for r in results if isinstance(r, Overloaded)]
    answered = [r for r in results if isinstance(r, np.ndarray)]
    assert shed, "the dispatcher no longer sheds calls it cannot place in time"
    assert len(shed) + len(answered) == 60  # nothing else (no None, no sentinel) leaks out
    assert all((a == 2).all() for a in answered)


def test_a_deadline_is_a_timeout_not_an_overload():
    async def main():
        batcher = Batcher(_echo([], delay_s=0.2), max_latency_ms=1000, max_batch_size=64)
        try:
            with pytest.raises(TimeoutError):
                await batcher(np.ones((1, 3)), timeout_s=0.02)
        finally:
            batcher.shutdown()

    asyncio.run(main())


def test_an_item_of_a_full_batch_goes_to_the_model_directly():
    calls: list[int] = []

    async def main():
        batcher = Batcher(_echo(calls), max_latency_ms=10, max_batch_size=8)
        return await batcher(np.ones((8, 3)), timeout_s=1)

    out = asyncio.run(main())
    assert out.shape == (8, 3) and (out == 2).all()
    assert calls == [8]
