"""The one sink through which streamed aggregates reach Feast: micro-batched, latest row per key.

Each `write_batch` (one Bytewax activation: up to a source batch of events) keeps only the newest
row of each entity per push source (Feast's Redis store drops a row that is not newer than the
stored one, so sending superseded rows is pure cost) and writes them to every feature view the push
source feeds. By default through `rtml.features.writer.FeastRedisWriter`, which writes the bytes
`FeatureStore.push` would write at a sixth of its cost (`RTML_<SCENARIO>__STREAM_WRITER=feast` uses
`FeatureStore.push` itself; docs/benchmarks.md has both rates).

Push mode is ONLINE, not ONLINE_AND_OFFLINE: the offline twin of these features is the backfill
(`pipelines/fraud/windows.py`) computed by the same functions over the raw transactions, which
is what keeps training and serving equal; appending every streamed row to the file offline store
would write a second, divergent history (and rewrite a parquet file per micro-batch).

Freshness is measured here: a Redis stream entry id carries its `XADD` time in milliseconds, so
after a push returns (the value is readable through Feast) the sink records `now - XADD time` of
the newest (`lag_ms`) and of the oldest (`lag_oldest_ms`) event in the batch, and a histogram of
every event's lag (`lag_hist`, counts per `LAG_BUCKETS_MS` bucket), into
`rtml:metrics:stream_freshness` (a capped stream of samples, with the worker index) for
monitoring to read. Every event of the batch became readable between those two lags.

Redis going away mid-run (a restart, a failover) does not stop the flow: a push that fails to
connect is retried with a capped back-off until Redis answers, holding the batch (and, through
Bytewax's backpressure, the input) meanwhile; one warning line when it goes, one when it is back.
Nothing is dropped, and a retried push is idempotent (same rows, same timestamps).
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from feast.data_source import PushMode

from rtml.features.writer import FeastRedisWriter
from rtml.metrics import record_stream_lag
from rtml.redis import until_answers

log = logging.getLogger(__name__)

FRESHNESS_STREAM = "rtml:metrics:stream_freshness"
RETRY_FIRST_S, RETRY_MAX_S = 0.05, 2.0
# Upper bounds (ms) of the per-event lag histogram each freshness sample carries (+ overflow).
LAG_BUCKETS_MS = (5, 10, 20, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 5000, 10_000)


def lag_histogram(lags_ms: list[float]) -> list[int]:
    """Counts per `LAG_BUCKETS_MS` bucket (value <= bound), the last slot for anything above."""
    counts = [0] * (len(LAG_BUCKETS_MS) + 1)
    for lag in lags_ms:
        counts[bisect_left(LAG_BUCKETS_MS, lag)] += 1
    return counts


def latest_per_key(rows: list[tuple[str, int, dict[str, Any], Any, int]],
                   join_keys: Mapping[str, str]) -> dict[str, pd.DataFrame]:
    """One frame per push source holding each entity's newest row (by event time).

    `join_keys`: push source -> the entity column its frame carries (the scenario's, generated
    from its view specs).
    """
    return {source: pd.DataFrame([{join_keys[source]: entity, "event_timestamp": event_time,
                                   **values} for entity, values, event_time in rows])
            for source, rows in newest_per_key(rows).items()}


def newest_per_key(rows: list[tuple[str, int, dict[str, Any], Any, int]]
                   ) -> dict[str, list[tuple[int, dict[str, Any], Any]]]:
    """Per push source, each entity's newest `(entity, values, event_time)`."""
    newest: dict[tuple[str, int], tuple[str, int, dict[str, Any], Any, int]] = {}
    for row in rows:
        key = (row[0], row[1])
        if key not in newest or row[3] >= newest[key][3]:
            newest[key] = row
    out: dict[str, list[tuple[int, dict[str, Any], Any]]] = {}
    for source, entity, values, event_time, _ in newest.values():
        out.setdefault(source, []).append((entity, values, event_time))
    return out


class _FeastPushPartition(StatelessSinkPartition[tuple[str, int, dict[str, Any], Any, int]]):
    def __init__(self, store_factory: Callable[[], Any], redis_factory: Callable[[], Any],
                 join_keys: Mapping[str, str], worker_index: int = 0, writer: str = "direct"):
        self.join_keys = dict(join_keys)
        self.store = store_factory()
        self.redis = redis_factory()
        self.worker = str(worker_index)
        self.direct = FeastRedisWriter(self.store, self.redis) if writer == "direct" else None
        self.pushed = 0

    def write_batch(self, items: list[tuple[str, int, dict[str, Any], Any, int]]) -> None:
        if not items:
            return
        if self.direct is not None:
            for source, rows in newest_per_key(items).items():
                until_answers(lambda s=source, r=rows: self.direct.write(s, r),
                                    f"write {source}")
                self.pushed += len(rows)
        else:
            for source, frame in latest_per_key(items, self.join_keys).items():
                until_answers(
                    lambda s=source, f=frame: self.store.push(s, f, to=PushMode.ONLINE),
                    f"push to {source}")
                self.pushed += len(frame)
        now_ms = time.time() * 1000
        lags = [now_ms - item[4] for item in items if item[4] > 0]
        if lags:
            sample = {"lag_ms": f"{min(lags):.1f}", "lag_oldest_ms": f"{max(lags):.1f}",
                      "lag_hist": ",".join(map(str, lag_histogram(lags))),
                      "rows": str(len(items)), "events": str(len(lags)),
                      "worker": self.worker}
            try:
                for lag in lags:
                    record_stream_lag(lag / 1000)
                self.redis.xadd(FRESHNESS_STREAM, sample, maxlen=10_000, approximate=True)
            except Exception as exc:  # a metric must never stop the flow
                log.warning("freshness sample not recorded: %s", exc)


class FeastPushSink(DynamicSink[tuple[str, int, dict[str, Any], Any, int]]):
    """Push rows `(push_source, entity_id, values, event_time, xadd_ms)` to Feast, online.

    `join_keys`: push source -> entity column, for every push source the rows name (the
    `FeatureStore.push` path builds frames with it; the direct writer reads the views' own).
    """

    def __init__(self, *, store_factory: Callable[[], Any], redis_factory: Callable[[], Any],
                 join_keys: Mapping[str, str], writer: str = "direct"):
        self.join_keys = dict(join_keys)
        self.store_factory = store_factory
        self.redis_factory = redis_factory
        self.writer = writer

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _FeastPushPartition:
        """One Feast client per worker."""
        return _FeastPushPartition(self.store_factory, self.redis_factory, self.join_keys,
                                   worker_index, self.writer)
