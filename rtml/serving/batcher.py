"""Adaptive batching across requests: the one place that touches BentoML's internal dispatcher.

BentoML batches only `@bentoml.api(batchable=True)` endpoints, whose batch is the whole request;
a service that reads features per request and then wants requests arriving together to share one
model call needs the dispatcher itself. `CorkDispatcher` is internal (no stability promise), so it
is used here only, and `tests/platform/unit/test_batcher.py` pins the BentoML version and the
behaviour relied on: an upgrade fails those tests before it reaches a service.

What the dispatcher does that callers must not see:
- it answers an overload (the queue cannot meet `max_latency_ms`) with its `fallback` value;
- it answers a *cancelled* wait with the same fallback instead of raising, so a deadline around it
  would report a model over budget as an overload;
- it cannot fit a call larger than a batch (answered with a malformed result or an overload).
`Batcher` turns these into `Overloaded`, `TimeoutError`, and a direct call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from bentoml._internal.marshal.dispatcher import CorkDispatcher

In = TypeVar("In")
Out = TypeVar("Out")

BENTOML_VERSION = "1.4.40"  # the version whose dispatcher behaviour tests/platform pins
_FALLBACK = object()


class Overloaded(RuntimeError):
    """The batcher could not place the call inside its latency budget."""


class Batcher(Generic[In, Out]):
    """Gathers concurrent calls of one item each into one call of `fn` on a list of items.

    `fn(items) -> outputs` (one output per item, same order) runs on the event loop. `size(item)`
    is the rows an item holds; an item of `max_batch_size` rows or more is a batch already and
    goes to `fn` directly.
    """

    def __init__(self, fn: Callable[[Sequence[In]], Awaitable[Sequence[Out]]], *,
                 max_latency_ms: int, max_batch_size: int,
                 size: Callable[[In], int] = len) -> None:  # type: ignore[assignment]
        self.fn, self.max_batch_size, self.size = fn, max_batch_size, size
        self._dispatcher = CorkDispatcher(max_latency_in_ms=max_latency_ms,
                                          max_batch_size=max_batch_size,
                                          fallback=lambda: _FALLBACK, get_batch_size=size)
        self._call: Callable[[In], Awaitable[Any]] = self._dispatcher(fn)

    async def __call__(self, item: In, *, timeout_s: float | None = None) -> Out:
        """`fn`'s output for `item`; `Overloaded` or `TimeoutError` past `timeout_s`."""
        if self.size(item) >= self.max_batch_size:
            return (await self.fn((item,)))[0]
        async with asyncio.timeout(timeout_s) as deadline:
            result = await self._call(item)
        # The dispatcher swallowed the cancellation and answered its fallback: the deadline, not
        # an overload, is what happened.
        if deadline.expired():
            raise TimeoutError
        if result is _FALLBACK or result is None:
            raise Overloaded("batch could not meet its latency budget")
        return result

    def shutdown(self) -> None:
        """Stop the dispatcher's controller task and cancel what is queued."""
        self._dispatcher.shutdown()
