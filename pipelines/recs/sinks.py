"""The recommendation flow's own sinks: dead letters, and the trending index beside Feast.

The Feast rows go through the kit's push sink (`rtml.features.push`); these two write what is not
a feature view: a refused event with its reason, once per source entry, and each item's
last-hour count into the sorted set the service reads its trending candidates from.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from pipelines.recs.events import DEAD_LETTER_STREAM
from pipelines.recs.keys import TRENDING_INDEX
from rtml.redis import connect, until_answers
from rtml.settings import Settings
from rtml.streams.source import dead_letter

# (push source, entity id, feature values, event time, XADD time in ms): what reaches the sink.
Row = tuple[str, int, dict[str, Any], datetime, int]
BadEntry = tuple[dict[str, str], str, str]  # (fields, reason, source entry id)


class _DeadLetterPartition(StatelessSinkPartition[BadEntry]):
    def __init__(self, settings: Settings) -> None:
        self.client = connect(settings, role="flow", decode_responses=True)

    def write_batch(self, items: list[BadEntry]) -> None:
        for fields, reason, entry_id in items:
            until_answers(lambda f=fields, r=reason, i=entry_id: dead_letter(
                self.client, f, r, stream=DEAD_LETTER_STREAM, source_id=i), "dead letter")


class DeadLetterSink(DynamicSink[BadEntry]):
    """Malformed events, with the reason, to the dead-letter stream, once per source entry."""

    def __init__(self, *, settings: Settings) -> None:
        self.settings = settings

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DeadLetterPartition:
        """One client per worker."""
        return _DeadLetterPartition(self.settings)


class _TrendingIndexPartition(StatelessSinkPartition[Row]):
    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self.client = client_factory()

    def write_batch(self, items: list[Row]) -> None:
        newest: dict[int, Row] = {}
        for row in items:
            if row[1] not in newest or row[3] >= newest[row[1]][3]:
                newest[row[1]] = row
        scores = {item: float(row[2]["trend_events_1h"]) for item, row in newest.items()}

        def write() -> None:
            with self.client.pipeline(transaction=False) as pipe:
                gone = [i for i, s in scores.items() if s <= 0]
                if gone:
                    pipe.zrem(TRENDING_INDEX, *gone)
                live = {i: s for i, s in scores.items() if s > 0}
                if live:
                    pipe.zadd(TRENDING_INDEX, live)
                pipe.execute()

        until_answers(write, "trending index")


class TrendingIndexSink(DynamicSink[Row]):
    """Items by their last-hour events in one sorted set: a top-N read for trending candidates."""

    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self.client_factory = client_factory

    def build(self, step_id: str, worker_index: int, worker_count: int
              ) -> _TrendingIndexPartition:
        """One client per worker."""
        return _TrendingIndexPartition(self.client_factory)
