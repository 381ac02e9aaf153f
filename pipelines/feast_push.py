"""The one sink through which streamed aggregates reach Feast: micro-batched, latest row per key.

Each `write_batch` (one Bytewax activation: up to a source batch of events) becomes one
`FeatureStore.push` per push source, with only the newest row of each entity: Feast's write path
costs milliseconds per call and its Redis store drops a row that is not newer than the stored one,
so sending superseded rows is pure cost.

Push mode is ONLINE, not ONLINE_AND_OFFLINE: the offline twin of these features is the backfill
(`pipelines/fresh_aggregates.py`) computed by the same functions over the raw transactions, which
is what keeps training and serving equal; appending every streamed row to the file offline store
would write a second, divergent history (and rewrite a parquet file per micro-batch).

Freshness is measured here: a Redis stream entry id carries its `XADD` time in milliseconds, so
after a push returns (the value is readable through Feast) the sink records `now - XADD time` of
the newest event in the batch into `rtml:metrics:stream_freshness` (a capped stream of samples)
for monitoring to read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from feast.data_source import PushMode

from rtml.metrics import record_stream_lag

log = logging.getLogger(__name__)

FRESHNESS_STREAM = "rtml:metrics:stream_freshness"
# push source -> entity column; a row is (push_source, entity_id, values, event_time, xadd_ms)
PUSH_SOURCES = {"customer_fresh_push": "customer_id", "terminal_fresh_push": "terminal_id"}


def latest_per_key(rows: list[tuple[str, int, dict[str, Any], Any, int]]
                   ) -> dict[str, pd.DataFrame]:
    """One frame per push source holding each entity's newest row (by event time)."""
    newest: dict[tuple[str, int], tuple[str, int, dict[str, Any], Any, int]] = {}
    for row in rows:
        key = (row[0], row[1])
        if key not in newest or row[3] >= newest[key][3]:
            newest[key] = row
    frames: dict[str, list[dict[str, Any]]] = {}
    for source, entity, values, event_time, _ in newest.values():
        frames.setdefault(source, []).append(
            {PUSH_SOURCES[source]: entity, "event_timestamp": event_time, **values})
    return {source: pd.DataFrame(recs) for source, recs in frames.items()}


class _FeastPushPartition(StatelessSinkPartition[tuple[str, int, dict[str, Any], Any, int]]):
    def __init__(self, store_factory: Callable[[], Any], redis_factory: Callable[[], Any]):
        self.store = store_factory()
        self.redis = redis_factory()
        self.pushed = 0

    def write_batch(self, items: list[tuple[str, int, dict[str, Any], Any, int]]) -> None:
        if not items:
            return
        for source, frame in latest_per_key(items).items():
            self.store.push(source, frame, to=PushMode.ONLINE)
            self.pushed += len(frame)
        newest_xadd_ms = max(item[4] for item in items)
        if newest_xadd_ms > 0:
            lag_ms = time.time() * 1000 - newest_xadd_ms
            try:
                record_stream_lag(lag_ms / 1000)
                self.redis.xadd(FRESHNESS_STREAM, {"lag_ms": f"{lag_ms:.1f}",
                                                   "rows": str(len(items))},
                                maxlen=10_000, approximate=True)
            except Exception as exc:  # a metric must never stop the flow
                log.warning("freshness sample not recorded: %s", exc)


class FeastPushSink(DynamicSink[tuple[str, int, dict[str, Any], Any, int]]):
    """Push rows `(push_source, entity_id, values, event_time, xadd_ms)` to Feast, online."""

    def __init__(self, *, store_factory: Callable[[], Any], redis_factory: Callable[[], Any]):
        self.store_factory = store_factory
        self.redis_factory = redis_factory

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _FeastPushPartition:
        """One Feast client per worker."""
        return _FeastPushPartition(self.store_factory, self.redis_factory)
