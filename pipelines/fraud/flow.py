"""Fresh fraud features: transaction events -> sliding windows per customer/terminal -> Feast.

    python -m bytewax.run "pipelines.fraud.flow:get_flow()" -r .rtml/recovery -s 30 -b 0
    rtml stream run                 # the same, with the recovery store initialised

Every event updates its customer's 10-minute and 1-hour windows and its terminal's 1-hour count
and emits the new values at once; a timer re-emits when old tiles leave a window, so a quiet
customer's count decays to zero instead of freezing. Windows are evaluated at the wall clock (or
the key's watermark, if later), never at an event's own time: a flow catching up on a backlog
serves what the last 10 minutes / hour hold *now*, and each row is stamped with that instant
(strictly increasing per key, as Feast's Redis store requires). The window arithmetic lives in
`pipelines.fraud.windows` (engine-free), which the offline backfill shares.
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
from bytewax.outputs import DynamicSink, Sink, StatelessSinkPartition

from feature_repo.fraud.specs import CUSTOMER_FRESH, TERMINAL_FRESH
from pipelines.fraud.events import DEAD_LETTER_STREAM, BadEventError, TxEvent, decode
from pipelines.fraud.windows import (
    Frozen,
    WindowState,
    customer_state,
    on_event,
    on_timer,
    terminal_state,
)
from rtml.metrics import stream_event_counter
from rtml.redis import connect, until_answers
from rtml.settings import Settings
from rtml.streams.source import dead_letter

# (push source, entity id, feature values, event time, XADD time in ms) — what reaches the sink.
Row = tuple[str, int, dict[str, Any], datetime, int]
ONE_MICROSECOND = timedelta(microseconds=1)


def wall_clock() -> datetime:
    """Now, in UTC: the instant an emission's windows are evaluated at."""
    return datetime.now(UTC)


def xadd_ms(entry_id: str) -> int:
    """The `XADD` wall-clock time (ms) encoded in a Redis stream entry id."""
    return int(entry_id.split("-", 1)[0])


def parse(entry: tuple[str, dict[str, str]]
          ) -> tuple[TxEvent, int] | tuple[dict[str, str], str, str]:
    """`(event, xadd_ms)` for a good entry, `(fields, reason, entry id)` for a bad one."""
    entry_id, fields = entry
    try:
        return decode(fields), xadd_ms(entry_id)
    except BadEventError as exc:
        return fields, str(exc), entry_id


# (frozen window state, last emitted row stamp, entity id): what a key's snapshot holds.
Snapshot = tuple[Frozen, "datetime | None", "int | None"]


class WindowLogic(StatefulLogic[tuple[TxEvent, int], Row, Snapshot]):
    """One key's windows: emit on every event and whenever a tile leaves a window."""

    def __init__(self, *, push_source: str, entity_of: Callable[[TxEvent], int],
                 state: WindowState, resume: Snapshot | None) -> None:
        self.push_source, self.entity_of = push_source, entity_of
        self.state, self.last_emitted, self.entity = state, None, None
        if resume is not None:
            frozen, self.last_emitted, self.entity = resume
            self.state.thaw(frozen)
        self.last_xadd_ms = 0

    def _row(self, values: dict[str, Any], at: datetime) -> Row:
        # Feast's Redis store keeps a write only if it is newer than the stored one.
        if self.last_emitted is not None and at <= self.last_emitted:
            at = self.last_emitted + ONE_MICROSECOND
        self.last_emitted = at
        assert self.entity is not None
        return (self.push_source, self.entity, values, at, self.last_xadd_ms)

    def on_item(self, value: tuple[TxEvent, int]) -> tuple[list[Row], bool]:
        event, self.last_xadd_ms = value
        self.entity = self.entity_of(event)
        state = self.state
        before = (state.duplicates, state.late_dropped, state.expired)
        counted = on_event(state, event, wall_clock())
        if counted is None:  # a replayed duplicate, too late, or already out of every window
            outcome = ("duplicate" if state.duplicates > before[0] else
                       "late" if state.late_dropped > before[1] else "expired")
            stream_event_counter(self.push_source, outcome).inc()
            return [], self._keep()
        stream_event_counter(self.push_source, "counted").inc()
        return [self._row(*counted)], StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[Row], bool]:
        counted = on_timer(self.state, wall_clock())
        self.last_xadd_ms = 0  # a decay is not an event: no freshness sample
        return [self._row(*counted)], self._keep()

    def _keep(self) -> bool:
        # A key with no tile left has nothing to decay; its last row (all zeros, or none at all)
        # stays online. Its next row is stamped with the wall clock, so Feast takes it.
        return StatefulLogic.DISCARD if self.state.is_empty() else StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return self.state.next_expiry()

    def snapshot(self) -> Snapshot:
        return self.state.freeze(), self.last_emitted, self.entity


def _builder(push_source: str, entity_of: Callable[[TxEvent], int],
             make_state: Callable[[], WindowState]) -> Callable[[Snapshot | None], WindowLogic]:
    def build(resume: Snapshot | None) -> WindowLogic:
        return WindowLogic(push_source=push_source, entity_of=entity_of, state=make_state(),
                           resume=resume)

    return build


BadEntry = tuple[dict[str, str], str, str]  # (fields, reason, source entry id)


class _DeadLetterPartition(StatelessSinkPartition[BadEntry]):
    def __init__(self, settings: Settings) -> None:
        self.client = connect(settings, role="flow", decode_responses=True)

    def write_batch(self, items: list[BadEntry]) -> None:
        for fields, reason, entry_id in items:
            until_answers(
                lambda f=fields, r=reason, i=entry_id: dead_letter(
                    self.client, f, r, stream=DEAD_LETTER_STREAM, source_id=i),
                "dead letter")


class DeadLetterSink(DynamicSink[BadEntry]):
    """Malformed events, with the reason, to the dead-letter stream, once per source entry.

    A flow restarted from recovery reads again the entries after its last snapshot; the dead
    letter of one it had already refused is not written twice (`dead_letter(source_id=...)`).
    """

    def __init__(self, *, settings: Settings) -> None:
        self.settings = settings

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DeadLetterPartition:
        """One client per worker."""
        return _DeadLetterPartition(self.settings)


def build_flow(source: Source, sink: Sink[Row], dead_letters: Sink[BadEntry],
               *, allowed_lateness: timedelta = timedelta(hours=1)) -> Dataflow:
    """The dataflow, top to bottom; shapes after each step in the comments."""
    flow = Dataflow("fraud_fresh")
    entries = op.input("read_events", flow, source)  # (entry_id, {field: str})
    parsed = op.map("parse_events", entries, parse)  # (TxEvent, xadd_ms) | (fields, reason, id)
    split = op.branch("split_bad_events", parsed, lambda x: isinstance(x[0], TxEvent))
    op.output("write_dead_letters", split.falses, dead_letters)
    events = split.trues  # (TxEvent, xadd_ms)

    kw = {"allowed_lateness": allowed_lateness}
    by_customer = op.key_on("key_by_customer", events, lambda e: str(e[0].customer_id))
    customer_rows = op.stateful("window_customers", by_customer,
                                _builder(CUSTOMER_FRESH.push_source, lambda e: e.customer_id,
                                         lambda: customer_state(**kw)))
    by_terminal = op.key_on("key_by_terminal", events, lambda e: str(e[0].terminal_id))
    terminal_rows = op.stateful("window_terminals", by_terminal,
                                _builder(TERMINAL_FRESH.push_source, lambda e: e.terminal_id,
                                         lambda: terminal_state(**kw)))
    rows = op.merge("merge_views", customer_rows, terminal_rows)  # (entity key, Row)
    op.output("push_to_feast", op.key_rm("drop_keys", rows), sink)  # Row
    return flow


def tune_gc() -> None:
    """Make CPython's cycle collector cheap for a process that holds every key's window state.

    Profiled at 5,000+ events/s, a quarter of the flow's CPU went to `gc_collect_main`: each
    collection walks the ever-growing set of live per-key tiles, and the default first-generation
    threshold (700 allocations) triggers one every few events. The state holds no reference cycles,
    so collecting less often loses nothing; `gc.freeze()` also moves everything imported so far
    (Feast, pandas, protobuf) out of the collector's sight.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def get_flow() -> Dataflow:
    """The production wiring from settings: Redis Streams in, Feast push out."""
    from feature_repo.fraud.specs import PUSH_JOIN_KEYS
    from pipelines.fraud.events import stream_key
    from rtml.features.online import load_store
    from rtml.features.push import FeastPushSink
    from rtml.streams.source import RedisStreamSource

    s = Settings(scenario="fraud")
    if s.stream_metrics_port:
        from rtml.metrics import serve_stream_metrics

        serve_stream_metrics(s.stream_metrics_port)
    source = RedisStreamSource(address=s.redis_address, settings=s,
                               streams=[stream_key(i) for i in range(s.stream_partitions)])
    sink = FeastPushSink(store_factory=lambda: load_store(s),
                         redis_factory=lambda: connect(s, role="flow"),
                         join_keys=PUSH_JOIN_KEYS,
                         writer=s.stream_writer)
    flow = build_flow(source, sink, DeadLetterSink(settings=s),
                      allowed_lateness=timedelta(seconds=s.stream_allowed_lateness_s))
    tune_gc()
    return flow
