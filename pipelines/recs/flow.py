"""Fresh recommendation features: shop events -> session, trending and stock per key -> Feast.

    python -m bytewax.run "pipelines.recs.flow:get_flow()" -r .rtml/recovery -s 30 -b 0
    rtml stream run --scenario recs     # the same, with the recovery store initialised

Every user event (click, cart, order) updates its user's session and its item's last-hour
trending windows and emits both at once, so the next request sees the click. Orders and restocks
move the item's stock level. Timers end a session that has been quiet for `SESSION_GAP_S` in
event time (and `EXPIRY_GRACE_S` in wall time, so a backlog replayed at speed keeps its sessions
whole) and re-emit an item's trending counts
as tiles leave the hour. Rows are stamped with the wall clock (strictly increasing per key, as
Feast's Redis store requires). Trending rows also feed `TRENDING_INDEX`, a sorted set of items by
their last-hour events that the service reads its trending candidates from. Malformed events go
to the dead-letter stream with the reason. The per-key logic is `pipelines.recs.stream_state`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulLogic
from bytewax.outputs import Sink

from feature_repo.recs.stream_specs import (
    ITEM_STOCK,
    ITEM_TRENDING,
    SESSION_GAP_S,
    TRENDING_WINDOWS,
    USER_SESSION,
)
from pipelines.recs.events import USER_TYPES, BadEvent, parse_event
from pipelines.recs.sinks import BadEntry, DeadLetterSink, Row, TrendingIndexSink
from pipelines.recs.stream_state import SessionState, StockState, trending_values
from rtml.features import windows as kit
from rtml.metrics import stream_event_counter
from rtml.redis import connect
from rtml.settings import Settings

__all__ = ["DeadLetterSink", "TrendingIndexSink", "build_flow", "get_flow"]

Event = tuple[dict[str, Any], int]  # (parsed event, XADD ms)
ONE_MICROSECOND = timedelta(microseconds=1)
EXPIRY_GRACE_S = 60.0


def wall_clock() -> datetime:
    """Now, in UTC: the instant rows are stamped with."""
    return datetime.now(UTC)


def parse(entry: tuple[str, dict[str, str]]) -> Event | BadEntry:
    """`(event, xadd_ms)` for a good entry, `(fields, reason, entry id)` for a bad one."""
    entry_id, fields = entry
    try:
        return parse_event(fields), int(entry_id.split("-", 1)[0])
    except BadEvent as exc:
        return fields, str(exc), entry_id


class _Stamped:
    """Rows of one key, stamped with the wall clock, strictly increasing."""

    push_source = ""

    def __init__(self) -> None:
        self.entity: int | None = None
        self.last_emitted: datetime | None = None
        self.last_xadd_ms = 0

    def _row(self, values: dict[str, Any], at: datetime | None = None) -> Row:
        at = at or wall_clock()
        if self.last_emitted is not None and at <= self.last_emitted:
            at = self.last_emitted + ONE_MICROSECOND
        self.last_emitted = at
        assert self.entity is not None
        return (self.push_source, self.entity, values, at, self.last_xadd_ms)


class SessionLogic(_Stamped, StatefulLogic[Event, Row, tuple]):
    """One user's session: a row on every event, an empty one when it has been quiet too long."""

    push_source = str(USER_SESSION.push_source)

    def __init__(self, category_of: Callable[[int], int], resume: tuple | None) -> None:
        super().__init__()
        self.category_of, self.state = category_of, SessionState()
        if resume is not None:
            (self.entity, self.last_emitted, sid, items, cats, length, last_ts, seen) = resume
            self.state = SessionState(session_id=sid, items=list(items), categories=list(cats),
                                      length=length, last_ts=last_ts)
            self.state.seen.extend(seen)

    def on_item(self, value: Event) -> tuple[list[Row], bool]:
        event, self.last_xadd_ms = value
        self.entity = int(event["user_id"])
        if not self.state.add(event, self.category_of(int(event["item_id"]))):
            stream_event_counter(self.push_source, "duplicate").inc()
            return [], StatefulLogic.RETAIN
        stream_event_counter(self.push_source, "counted").inc()
        return [self._row(self.state.values())], StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        # Quiet for the gap in event time, and for a grace period in wall time: a backlog
        # replayed at speed delivers a session's next event seconds later, and `add` ends the
        # session itself when that event comes more than the gap after the last one.
        last = self.state.last_ts
        if last is None or not self.state.length or self.last_emitted is None:
            return None
        return max(last + timedelta(seconds=SESSION_GAP_S),
                   self.last_emitted + timedelta(seconds=EXPIRY_GRACE_S))

    def on_notify(self) -> tuple[list[Row], bool]:
        self.last_xadd_ms = 0  # an expiry is not an event: no freshness sample
        return [self._row(self.state.end())], StatefulLogic.DISCARD

    def snapshot(self) -> tuple:
        s = self.state
        return (self.entity, self.last_emitted, s.session_id, tuple(s.items),
                tuple(s.categories), s.length, s.last_ts, tuple(s.seen))


class TrendingLogic(_Stamped, StatefulLogic[Event, Row, tuple]):
    """One item's last-hour windows: emit on every event and whenever a tile leaves the hour."""

    push_source = str(ITEM_TRENDING.push_source)

    def __init__(self, allowed_lateness: timedelta, resume: tuple | None) -> None:
        super().__init__()
        self.state = kit.WindowState(TRENDING_WINDOWS, allowed_lateness=allowed_lateness)
        if resume is not None:
            frozen, self.last_emitted, self.entity = resume
            self.state.thaw(frozen)

    def on_item(self, value: Event) -> tuple[list[Row], bool]:
        event, self.last_xadd_ms = value
        self.entity = int(event["item_id"])
        now = wall_clock()
        counted = kit.on_event(self.state, event["event_id"], event["ts"],
                               trending_values(event["type"]), now)
        if counted is None:
            stream_event_counter(self.push_source, "not_counted").inc()
            return [], self._keep()
        stream_event_counter(self.push_source, "counted").inc()
        return [self._row(*counted)], StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[Row], bool]:
        values, at = kit.on_timer(self.state, wall_clock())
        self.last_xadd_ms = 0
        return [self._row(values, at)], self._keep()

    def _keep(self) -> bool:
        return StatefulLogic.DISCARD if self.state.is_empty() else StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return self.state.next_expiry()

    def snapshot(self) -> tuple:
        return self.state.freeze(), self.last_emitted, self.entity


class StockLogic(_Stamped, StatefulLogic[Event, Row, tuple]):
    """One item's stock level, starting from `initial(item)` the first time the item is seen."""

    push_source = str(ITEM_STOCK.push_source)

    def __init__(self, initial: Callable[[int], int], resume: tuple | None) -> None:
        super().__init__()
        self.initial, self.state = initial, None
        if resume is not None:
            self.entity, self.last_emitted, level, seen = resume
            self.state = StockState(level=level)
            self.state.seen.extend(seen)

    def on_item(self, value: Event) -> tuple[list[Row], bool]:
        event, self.last_xadd_ms = value
        self.entity = int(event["item_id"])
        if self.state is None:
            self.state = StockState(level=int(self.initial(self.entity)))
        if not self.state.add(event):
            stream_event_counter(self.push_source, "duplicate").inc()
            return [], StatefulLogic.RETAIN
        stream_event_counter(self.push_source, "counted").inc()
        return [self._row(self.state.values())], StatefulLogic.RETAIN

    def snapshot(self) -> tuple:
        assert self.state is not None
        return self.entity, self.last_emitted, self.state.level, tuple(self.state.seen)


def build_flow(source: Source, sink: Sink[Row], dead_letters: Sink[BadEntry],
               trending_index: Sink[Row], *, category_of: Callable[[int], int],
               initial_stock: Callable[[int], int],
               allowed_lateness: timedelta = timedelta(hours=1)) -> Dataflow:
    """The dataflow, top to bottom; shapes after each step in the comments."""
    flow = Dataflow("recs_fresh")
    entries = op.input("read_events", flow, source)  # (entry_id, {field: str})
    parsed = op.map("parse_events", entries, parse)  # (event, xadd_ms) | (fields, reason, id)
    split = op.branch("split_bad_events", parsed, lambda x: len(x) == 2)
    op.output("write_dead_letters", split.falses, dead_letters)
    events = split.trues  # (event, xadd_ms)

    by_kind = op.branch("split_user_events", events, lambda e: e[0]["type"] in USER_TYPES)
    user_events = by_kind.trues  # click | cart | order
    by_user = op.key_on("key_by_user", user_events, lambda e: str(e[0]["user_id"]))
    sessions = op.stateful("track_sessions", by_user,
                           lambda resume: SessionLogic(category_of, resume))
    by_item = op.key_on("key_by_item", user_events, lambda e: str(e[0]["item_id"]))
    trending = op.stateful("window_trending", by_item,
                           lambda resume: TrendingLogic(allowed_lateness, resume))
    stock_events = op.filter("keep_stock_events", events,
                             lambda e: e[0]["type"] in ("order", "restock"))
    by_stocked = op.key_on("key_by_stocked_item", stock_events, lambda e: str(e[0]["item_id"]))
    stock = op.stateful("track_stock", by_stocked,
                        lambda resume: StockLogic(initial_stock, resume))
    trending_rows = op.key_rm("drop_trending_keys", trending)  # Row
    op.output("index_trending", trending_rows, trending_index)
    rows = op.merge("merge_views", op.key_rm("drop_session_keys", sessions), trending_rows,
                    op.key_rm("drop_stock_keys", stock))  # Row
    op.output("push_to_feast", rows, sink)
    return flow


def tune_gc() -> None:
    """Collect rarely: per-key state holds no cycles (see pipelines/fraud/flow.py's reasoning)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def get_flow() -> Dataflow:
    """The production wiring from settings: Redis Streams in, Feast push out."""
    from feature_repo.recs.stream_specs import STREAMED_JOIN_KEYS
    from pipelines.recs.events import STREAM
    from pipelines.recs.stream_inputs import category_lookup, initial_stock_lookup
    from rtml.features.online import load_store
    from rtml.features.push import FeastPushSink
    from rtml.streams.source import RedisStreamSource

    s = Settings(scenario="recs")
    if s.stream_metrics_port:
        from rtml.metrics import serve_stream_metrics

        serve_stream_metrics(s.stream_metrics_port)
    source = RedisStreamSource(address=s.redis_address, settings=s, streams=[STREAM])
    sink = FeastPushSink(store_factory=lambda: load_store(s),
                         redis_factory=lambda: connect(s, role="flow"),
                         join_keys=STREAMED_JOIN_KEYS, writer=s.stream_writer)
    flow = build_flow(source, sink, DeadLetterSink(settings=s),
                      TrendingIndexSink(lambda: connect(s, role="flow")),
                      category_of=category_lookup(s), initial_stock=initial_stock_lookup(s),
                      allowed_lateness=timedelta(seconds=s.stream_allowed_lateness_s))
    tune_gc()
    return flow
