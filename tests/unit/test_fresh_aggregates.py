"""Fresh sliding-window aggregates: tile semantics, lateness, replays, decay, backfill parity."""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipelines import fresh_aggregates as fa
from pipelines.simulate import simulate
from pipelines.stream_sources import SCHEMAS
from rtml.events import TxEvent

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
        values = fa.on_event(state, ev)
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


def test_backfill_equals_events_fed_one_by_one():
    events = random_events(5, n=800, keys=6)
    for kind in ("customer", "terminal"):
        entity = f"{kind}_id"
        make = fa.customer_state if kind == "customer" else fa.terminal_state
        states: dict[int, fa.WindowState] = {}
        rows = []
        ordered = sorted(events, key=lambda e: e.event_time)  # the backfill's order
        for ev in ordered:
            key = getattr(ev, entity)
            values = fa.on_event(states.setdefault(key, make()), ev)
            assert values is not None
            rows.append({entity: key, **values})
        got = fa.backfill(frame(events), kind=kind)
        assert list(got.columns) == SCHEMAS[f"{kind}_fresh.parquet"].names
        expected = pd.DataFrame(rows)[list(got.columns.drop("event_timestamp"))]
        pd.testing.assert_frame_equal(got.drop(columns="event_timestamp"), expected,
                                      check_exact=True)


def test_quiet_customer_decays_to_zero_at_next_expiry():
    state = fa.customer_state()
    fa.on_event(state, TxEvent("a", 1, 1, 10.0, T0))
    fa.on_event(state, TxEvent("b", 1, 1, 30.0, T0 + 2 * S))
    tile = fa.tile_start(fa.tile_of(T0))  # 12:00:00
    assert state.next_expiry() == tile + timedelta(minutes=10)
    before = fa.on_timer(state, tile + timedelta(minutes=10) - timedelta(microseconds=1))
    assert before["cust_tx_count_10m"] == 2 and before["cust_mean_amount_10m"] == 20.0
    after = fa.on_timer(state, state.next_expiry())
    assert after["cust_tx_count_10m"] == 0
    assert after["cust_amount_sum_10m"] == 0.0 and after["cust_mean_amount_10m"] == 0.0
    assert after["cust_tx_count_1h"] == 2 and after["cust_amount_sum_1h"] == 40.0
    assert not state.is_empty()
    assert state.next_expiry() == tile + timedelta(hours=1)
    gone = fa.on_timer(state, tile + timedelta(hours=1))
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
    assert not loose.add(T0 - timedelta(hours=2), 1.0, "b")  # out of every window: late
    assert loose.late_dropped == 1


def test_replayed_transaction_ids_are_not_double_counted():
    events = random_events(3, n=200, keys=1)
    once, twice = fa.customer_state(), fa.customer_state()
    for ev in events:
        fa.on_event(once, ev)
    for ev in events[:150] + events[100:]:  # a rewind: 50 events delivered again
        fa.on_event(twice, ev)
    # A replayed id still held is a duplicate; one whose tile has left every window is late.
    assert once.late_dropped == once.duplicates == 0
    assert twice.duplicates > 0 and twice.duplicates + twice.late_dropped == 50
    assert twice.values(twice.watermark) == once.values(once.watermark)
    assert fa.on_event(twice, events[-1]) is None


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
    assert cust["customer_id"].tolist() == [7, 7, 8, 7, 7, 8]
    assert cust["event_timestamp"].tolist() == [stamp, stamp + us, stamp, stamp + 2 * us,
                                                stamp + 3 * us, stamp + us]
    assert cust["cust_tx_count_10m"].tolist() == [1, 2, 1, 3, 4, 2]
    term = fa.backfill(tx, kind="terminal")
    for frame_ in (cust, term):
        key = frame_.columns[0]
        assert frame_.groupby(key)["event_timestamp"].apply(
            lambda s: s.is_monotonic_increasing and s.is_unique).all()


def test_state_pickles_to_an_equal_behaving_state():
    events = random_events(9, n=300, keys=1)
    state = fa.customer_state(allowed_lateness=timedelta(seconds=20))
    for ev in events[:150]:
        fa.on_event(state, ev)
    fa.on_timer(state, state.watermark + timedelta(minutes=1))
    copy = pickle.loads(pickle.dumps(state))
    assert copy == state
    for ev in events[150:]:
        assert fa.on_event(copy, ev) == fa.on_event(state, ev)
        assert copy.next_expiry() == state.next_expiry()
    assert (copy.late_dropped, copy.duplicates) == (state.late_dropped, state.duplicates)
    later = state.watermark + timedelta(minutes=30)
    assert fa.on_timer(copy, later) == fa.on_timer(state, later)


def test_write_backfill_matches_the_stream_source_schemas(tmp_path):
    data = simulate(customers=30, terminals=40, days=2, start=T0.date(), seed=3)
    raw = tmp_path / "transactions.parquet"
    data.transactions.to_parquet(raw, index=False)
    paths = fa.write_backfill(raw, tmp_path / "features")
    assert set(paths) == {"customer_fresh", "terminal_fresh"}
    for name, path in paths.items():
        table = pq.read_table(path)
        assert table.schema.equals(SCHEMAS[f"{name}.parquet"])
        assert table.num_rows == len(data.transactions)


def test_frozen_snapshot_is_a_copy_that_thaws_to_an_equal_behaving_state():
    events = random_events(11, n=300, keys=1)
    state = fa.customer_state(allowed_lateness=timedelta(seconds=20))
    for ev in events[:150]:
        fa.on_event(state, ev)
    frozen = pickle.loads(pickle.dumps(state.freeze()))  # what the recovery store keeps
    before = state.values(state.watermark)
    fa.on_event(state, events[150])  # the live state moves on; the snapshot must not
    thawed = fa.customer_state(allowed_lateness=timedelta(seconds=20)).thaw(frozen)
    assert thawed.values(thawed.watermark) == before
    assert fa.on_event(thawed, events[150]) == state.values(state.watermark)
    assert thawed == state
    # Replays of ids counted before the snapshot are still recognised after a thaw.
    counted = next(ev for ev in reversed(events[:150]) if ev.transaction_id in state.seen)
    assert fa.on_event(thawed, counted) is None and thawed.duplicates == state.duplicates + 1
