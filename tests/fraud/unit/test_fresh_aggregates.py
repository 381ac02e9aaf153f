"""Fresh sliding-window aggregates: tile semantics, lateness, replays, decay, backfill parity."""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipelines.fraud import windows as fa
from pipelines.fraud.events import TxEvent
from pipelines.fraud.offline_sources import SCHEMAS
from pipelines.fraud.simulate import simulate

T0 = datetime(2024, 3, 1, 12, 0, 3, tzinfo=UTC)
S = timedelta(seconds=1)


def reference(events: list[tuple[datetime, float]], at: datetime) -> dict[str, float | int]:
    """Customer features by direct computation over the tile semantics."""
    now = fa.tile_of(at)
    out: dict[str, float | int] = {}
    for label, seconds in (("10m", 600), ("1h", 3600)):
        inside = [a for t, a in events if now - seconds // 10 < fa.tile_of(t) <= now]
        out[f"cust_tx_count_{label}"] = len(inside)
        out[f"cust_amount_sum_{label}"] = sum(inside)
        out[f"cust_mean_amount_{label}"] = sum(inside) / len(inside) if inside else 0.0
    return out


def feed(state: fa.WindowState, ev: TxEvent, now: datetime | None = None) -> dict | None:
    """`on_event` at wall time `now` (default: the event's own time, a flow keeping up); values."""
    out = fa.on_event(state, ev, ev.event_time if now is None else now)
    return None if out is None else out[0]


def timer(state: fa.WindowState, now: datetime) -> dict:
    """`on_timer`'s values."""
    return fa.on_timer(state, now)[0]


def assert_values(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for name, value in want.items():
        if "count" in name:
            assert got[name] == value and isinstance(got[name], int), name
        else:
            assert got[name] == pytest.approx(value, abs=1e-9), name


def random_events(seed: int, n: int = 600, keys: int = 4) -> list[TxEvent]:
    """Events a few seconds to minutes apart, up to 50 s out of order (within the lateness)."""
    rng = random.Random(seed)
    base, out = T0, []
    for i in range(n):
        base += timedelta(seconds=rng.choice([0, 1, 3, 9, 10, 11, 45, 120, 700]))
        jitter = timedelta(seconds=rng.randint(0, 50), microseconds=rng.randint(0, 999_999))
        out.append(TxEvent(transaction_id=f"t{i}", customer_id=rng.randrange(keys),
                           terminal_id=rng.randrange(3), amount=round(rng.uniform(1, 300), 2),
                           event_time=base - jitter))
    return out


def frame(events: list[TxEvent]) -> pd.DataFrame:
    return pd.DataFrame({
        "transaction_id": [e.transaction_id for e in events],
        "event_timestamp": pd.to_datetime([e.event_time for e in events], utc=True),
        "customer_id": [e.customer_id for e in events],
        "terminal_id": [e.terminal_id for e in events],
        "amount": [e.amount for e in events],
    })


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_values_after_each_event_match_brute_force_and_next_expiry(seed):
    states: dict[int, fa.WindowState] = {}
    seen: dict[int, list[tuple[datetime, float]]] = {}
    for ev in random_events(seed):
        state = states.setdefault(ev.customer_id, fa.customer_state())
        values = feed(state, ev)
        assert values is not None
        seen.setdefault(ev.customer_id, []).append((ev.event_time, ev.amount))
        assert_values(values, reference(seen[ev.customer_id], state.watermark))
        # Nothing changes before next_expiry; at it, an event leaves a window.
        due = state.next_expiry()
        assert due is not None and due > state.watermark
        assert due == fa.tile_start(fa.tile_of(due))
        assert_values(state.values(due - timedelta(microseconds=1)), values)
        assert state.values(due) != values
        assert len(state.tiles) <= 3600 // fa.TILE_SECONDS


def pit(history: pd.DataFrame, entity: str, key: int, at: datetime) -> dict:
    """The latest backfill row of `key` at or before `at`: what a point-in-time join returns."""
    rows = history[(history[entity] == key) & (history["event_timestamp"] <= at)]
    return rows.iloc[-1].drop([entity, "event_timestamp"]).to_dict() if len(rows) else {}


def test_backfill_point_in_time_equals_the_windows_at_any_instant_decays_included():
    """Training's "latest row at or before t" must be the windows as of t, however quiet the key.

    The skew this replaced: rows only at events, so a join saw windows as of the previous payment.
    """
    events = random_events(5, n=500, keys=6)
    until = max(e.event_time for e in events) + timedelta(hours=2)
    history = fa.backfill(frame(events), kind="customer", until=until)
    rng = random.Random(1)
    first = min(e.event_time for e in events)
    span = (until - first).total_seconds()
    empty = {name: 0 for name in reference([], first)}
    for _ in range(300):
        at = first + timedelta(seconds=rng.uniform(0, span))
        key = rng.randrange(6)
        seen = [(e.event_time, e.amount) for e in events
                if e.customer_id == key and e.event_time <= at]
        got = pit(history, "customer_id", key, at) or empty
        assert_values({k: (int(v) if "count" in k else v) for k, v in got.items()},
                      reference(seen, at))
    # Every key decays to an all-zero row before `until`.
    last = history.groupby("customer_id").tail(1)
    assert (last["cust_tx_count_1h"] == 0).all() and (last["event_timestamp"] <= until).all()


def test_backfill_event_rows_equal_the_stream_keeping_up():
    events = random_events(5, n=800, keys=6)
    for kind in ("customer", "terminal"):
        entity = f"{kind}_id"
        make = fa.customer_state if kind == "customer" else fa.terminal_state
        states: dict[int, fa.WindowState] = {}
        expected: dict[tuple[int, datetime], dict] = {}
        for ev in sorted(events, key=lambda e: e.event_time):  # the backfill's order
            key = getattr(ev, entity)
            values = feed(states.setdefault(key, make()), ev)
            assert values is not None
            expected[(key, ev.event_time)] = values
        got = fa.backfill(frame(events), kind=kind)
        assert list(got.columns) == SCHEMAS[f"{kind}_fresh.parquet"].names
        at_events = got[[(k, t.to_pydatetime()) in expected
                         for k, t in zip(got[entity], got["event_timestamp"], strict=True)]]
        assert len(at_events) == len({k for k in expected})  # ties aside, one row per event
        for row in at_events.itertuples(index=False):
            want = expected[(getattr(row, entity), row.event_timestamp.to_pydatetime())]
            assert {k: getattr(row, k) for k in want} == pytest.approx(want)


def test_backlogged_events_are_evaluated_at_the_wall_clock():
    """Events at -30 min, a timer, then one at -25 min: nothing is in the last 10 minutes now.

    The flow used to emit as of the event's own time and leave a count of 2 online.
    """
    now = T0 + timedelta(hours=5)
    state = fa.customer_state()
    assert fa.on_event(state, TxEvent("a", 1, 1, 10.0, now - 30 * 60 * S), now) is not None
    timer(state, now + S)
    values, at = fa.on_event(state, TxEvent("b", 1, 1, 30.0, now - 25 * 60 * S), now + 2 * S)
    assert at == now + 2 * S
    assert values["cust_tx_count_10m"] == 0 and values["cust_tx_count_1h"] == 2
    assert values["cust_amount_sum_1h"] == 40.0
    # The next change is when the -30 min tile leaves the hour, half an hour from now.
    assert state.next_expiry() == fa.tile_start(fa.tile_of(now - 30 * 60 * S) + 360)
    # An event already out of every window when it arrives is not counted, and says why.
    assert fa.on_event(state, TxEvent("c", 1, 1, 5.0, now - 2 * 3600 * S), now + 3 * S) is None
    assert state.expired == 1 and state.late_dropped == 0


def test_quiet_customer_decays_to_zero_at_next_expiry():
    state = fa.customer_state()
    feed(state, TxEvent("a", 1, 1, 10.0, T0))
    feed(state, TxEvent("b", 1, 1, 30.0, T0 + 2 * S))
    tile = fa.tile_start(fa.tile_of(T0))  # 12:00:00
    assert state.next_expiry() == tile + timedelta(minutes=10)
    before = timer(state, tile + timedelta(minutes=10) - timedelta(microseconds=1))
    assert before["cust_tx_count_10m"] == 2 and before["cust_mean_amount_10m"] == 20.0
    after = timer(state, state.next_expiry())
    assert after["cust_tx_count_10m"] == 0
    assert after["cust_amount_sum_10m"] == 0.0 and after["cust_mean_amount_10m"] == 0.0
    assert after["cust_tx_count_1h"] == 2 and after["cust_amount_sum_1h"] == 40.0
    assert not state.is_empty()
    assert state.next_expiry() == tile + timedelta(hours=1)
    gone = timer(state, tile + timedelta(hours=1))
    assert gone["cust_tx_count_1h"] == 0 and gone["cust_mean_amount_1h"] == 0.0
    assert state.is_empty() and state.next_expiry() is None and not state.seen


def test_out_of_order_within_lateness_counted_beyond_dropped():
    state = fa.terminal_state()  # default allowed_lateness: 60 s
    assert state.add(T0, 1.0, "a")
    assert state.add(T0 - 30 * S, 1.0, "b")
    assert state.add(T0 - 60 * S, 1.0, "c")  # exactly at the limit
    assert not state.add(T0 - 61 * S, 1.0, "d")
    assert state.late_dropped == 1 and "d" not in state.seen
    assert state.values(T0) == {"term_tx_count_1h": 3}
    assert state.watermark == T0
    strict = fa.customer_state(allowed_lateness=5)  # seconds or a timedelta
    strict.add(T0, 1.0, "a")
    assert not strict.add(T0 - 6 * S, 1.0, "b") and strict.late_dropped == 1
    loose = fa.customer_state(allowed_lateness=timedelta(hours=3))
    loose.add(T0, 1.0, "a")
    assert not loose.add(T0 - timedelta(hours=2), 1.0, "b")  # out of every window
    assert loose.expired == 1 and loose.late_dropped == 0


def test_replayed_transaction_ids_are_not_double_counted():
    events = random_events(3, n=200, keys=1)
    once, twice = fa.customer_state(), fa.customer_state()
    for ev in events:
        feed(once, ev)
    for ev in events[:150] + events[100:]:  # a rewind: 50 events delivered again
        feed(twice, ev)
    # A replayed id still held is a duplicate; one whose tile has left every window is expired.
    assert once.late_dropped == once.duplicates == once.expired == 0
    assert twice.duplicates > 0 and twice.duplicates + twice.expired == 50
    assert twice.values(twice.watermark) == once.values(once.watermark)
    assert feed(twice, events[-1]) is None


def test_state_stays_bounded_over_ten_hours():
    state = fa.customer_state()
    rng = random.Random(0)
    t, times, peak_tiles = T0, [], 0
    while t < T0 + timedelta(hours=10):
        t += timedelta(seconds=rng.uniform(0.5, 8))
        assert state.add(t, 5.0, f"t{len(times)}")
        times.append(t)
        peak_tiles = max(peak_tiles, len(state.tiles))
        if len(times) % 97 == 0:  # ids kept are exactly those of the last hour's tiles
            first = fa.tile_of(t) - 3600 // fa.TILE_SECONDS + 1
            assert len(state.seen) == sum(fa.tile_of(x) >= first for x in times[-2000:])
            assert state.order == sorted(state.tiles)
    assert len(times) > 8000
    assert peak_tiles <= 3600 // fa.TILE_SECONDS
    assert len(state.seen) < 1200
    assert set(state.seen) == {tid for slot in state.tiles.values() for tid in slot[2]}


def test_backfill_timestamps_strictly_increase_per_entity_with_ties():
    stamp = pd.Timestamp("2024-03-01 12:00:00", tz="UTC")
    tx = pd.DataFrame({
        "transaction_id": range(6),
        "event_timestamp": [stamp] * 4 + [stamp + pd.Timedelta(microseconds=1)] * 2,
        "customer_id": [7, 7, 8, 7, 7, 8],
        "terminal_id": [1, 1, 1, 1, 2, 2],
        "amount": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    })
    cust = fa.backfill(tx, kind="customer")
    us = pd.Timedelta(microseconds=1)
    assert cust["customer_id"].tolist() == [7, 7, 7, 7, 8, 8]
    assert cust["event_timestamp"].tolist() == [stamp, stamp + us, stamp + 2 * us,
                                                stamp + 3 * us, stamp, stamp + us]
    assert cust["cust_tx_count_10m"].tolist() == [1, 2, 3, 4, 1, 2]
    term = fa.backfill(tx, kind="terminal")
    for frame_ in (cust, term):
        key = frame_.columns[0]
        assert frame_.groupby(key)["event_timestamp"].apply(
            lambda s: s.is_monotonic_increasing and s.is_unique).all()


def test_state_pickles_to_an_equal_behaving_state():
    events = random_events(9, n=300, keys=1)
    state = fa.customer_state(allowed_lateness=timedelta(seconds=20))
    for ev in events[:150]:
        feed(state, ev)
    timer(state, state.watermark + timedelta(minutes=1))
    copy = pickle.loads(pickle.dumps(state))
    assert copy == state
    for ev in events[150:]:
        assert feed(copy, ev) == feed(state, ev)
        assert copy.next_expiry() == state.next_expiry()
    assert (copy.late_dropped, copy.duplicates) == (state.late_dropped, state.duplicates)
    later = state.watermark + timedelta(minutes=30)
    assert timer(copy, later) == timer(state, later)


def test_write_backfill_matches_the_stream_source_schemas(tmp_path):
    data = simulate(customers=30, terminals=40, days=2, start=T0.date(), seed=3)
    raw = tmp_path / "transactions.parquet"
    data.transactions.to_parquet(raw, index=False)
    paths = fa.write_backfill(raw, tmp_path / "features")
    assert set(paths) == {"customer_fresh", "terminal_fresh"}
    for name, path in paths.items():
        table = pq.read_table(path)
        assert table.schema.equals(SCHEMAS[f"{name}.parquet"])
        assert table.num_rows > len(data.transactions)  # a row per event and per decay
        # Every key has decayed to zero by now (the data is two days old): what a load sees.
        last = table.to_pandas().groupby(f"{name.split('_')[0]}_id").tail(1)
        assert (last.filter(like="count_1h") == 0).all().all()


def test_frozen_snapshot_is_a_copy_that_thaws_to_an_equal_behaving_state():
    events = random_events(11, n=300, keys=1)
    state = fa.customer_state(allowed_lateness=timedelta(seconds=20))
    for ev in events[:150]:
        feed(state, ev)
    frozen = pickle.loads(pickle.dumps(state.freeze()))  # what the recovery store keeps
    before = state.values(state.watermark)
    feed(state, events[150])  # the live state moves on; the snapshot must not
    thawed = fa.customer_state(allowed_lateness=timedelta(seconds=20)).thaw(frozen)
    assert thawed.values(thawed.watermark) == before
    assert feed(thawed, events[150]) == state.values(state.watermark)
    assert thawed == state
    # Replays of ids counted before the snapshot are still recognised after a thaw.
    counted = next(ev for ev in reversed(events[:150]) if ev.transaction_id in state.seen)
    assert feed(thawed, counted) is None and thawed.duplicates == state.duplicates + 1
