"""The lists every request shares: popular, trending, and popular-in-stock for fallbacks.

Refreshed off the request path every `REFRESH_S` (the nightly popular lists, the trending
index's top, and the stock of the most popular items), so a request reads them from memory and
a fallback has an answer even while Redis is down. A fallback re-checks the stock of what it is
about to answer when Redis answers within the budget; during an outage it answers the list as
last checked (at most `REFRESH_S` old) and says so in its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import redis

from bentos.recs.online import Popular, RecsOnline, read_lists
from bentos.recs.ranking import TRENDING_N

log = logging.getLogger("bentoml.recs")
REFRESH_S = 2.0
FALLBACK_POOL = 300  # most popular items whose stock is kept checked
FIRST_READ_S = 1.0


def popularity_score(rank: int) -> float:
    """The popular source's score for a list position (as `pipelines.recs.candidates` scores)."""
    return 1.0 / (1.0 + 0.1 * rank)


class FallbackLists:
    """Shared lists, refreshed in the background (see the module docstring)."""

    def __init__(self, online: RecsOnline | None, client: Any) -> None:
        self.online, self.client = online, client
        self.popular = Popular()
        self.trending: list[int] = []
        self.in_stock: list[int] = []  # popular.global_ filtered by stock at `checked_at`
        self.checked_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._first = False

    async def ensure(self) -> None:
        """Once: read the lists before the first answer; keep a refresher task running."""
        if not self._first:
            self._first = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.refresh(), FIRST_READ_S)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def refresh(self) -> None:
        """Read the lists and the popular items' stock now."""
        popular, trending = await read_lists(self.client, TRENDING_N)
        self.popular, self.trending = popular, trending
        if self.online is not None and popular.global_:
            pool = popular.global_[:FALLBACK_POOL]
            stock = await self.online.stock_levels(self.client, pool)
            self.in_stock = [i for i in pool if stock[i] > 0]
        else:
            self.in_stock = []
        self.checked_at = time.monotonic()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except (redis.RedisError, OSError) as exc:
                log.debug("recs lists not refreshed: %s", exc)
            except Exception:  # a refresher must outlive any one bad read
                log.exception("recs lists: refresh failed")

    async def in_stock_popular(self, k: int, *, check: bool, timeout_s: float
                               ) -> list[tuple[int, float]]:
        """Up to `k` popular items in stock (re-checked now when `check` and Redis answers)."""
        rank = {item: j for j, item in enumerate(self.popular.global_)}
        pool = self.in_stock[:k + 20]
        if check and self.online is not None and pool:
            try:
                stock = await asyncio.wait_for(self.online.stock_levels(self.client, pool),
                                               timeout_s)
                pool = [i for i in pool if stock[i] > 0]
            except (TimeoutError, redis.RedisError, OSError):
                pass  # the list as last checked (at most REFRESH_S old)
        return [(i, popularity_score(rank[i])) for i in pool[:k]]
