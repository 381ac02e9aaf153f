"""The fresh-features flow against an independent recomputation of its windows.

Every test feeds raw events with their own event times (a backlog hours behind the wall clock,
out of order within and beyond the allowed lateness, duplicates) and compares what Feast serves
for both streamed views with `tests.window_oracle` (plain pandas, no code from `pipelines/`).
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import redis
from bytewax.testing import TestingSink, TestingSource, run_main

from pipelines.fraud.events import DEAD_LETTER_STREAM, TxEvent, encode, stream_key
from pipelines.fraud.flow import build_flow
from rtml.features.push import FRESHNESS_STREAM
from rtml.redis import connect
from rtml.redis.embedded import start_embedded, stop_embedded
from rtml.settings import Settings
from tests.support import flow_harness as h
from tests.support import window_oracle as oracle
from tests.support.procs import free_port


def _clear(client: redis.Redis, partitions: int) -> None:
    client.delete(*[stream_key(i) for i in range(partitions)], FRESHNESS_STREAM,
                  DEAD_LETTER_STREAM)


def _keys(events: pd.DataFrame) -> tuple[list[int], list[int]]:
    return sorted(events["customer_id"].unique()), sorted(events["terminal_id"].unique())


def _outcomes(arrivals: pd.DataFrame, key: str) -> tuple[set[str], set[str]]:
    """Entries (`source`) the flow must count, and those it must skip as duplicates, per view."""
    counted = oracle.counted_events(arrivals, key)
    repeat = ~arrivals["source"].isin(arrivals.drop_duplicates("transaction_id")["source"])
    dupes = arrivals[repeat & arrivals["transaction_id"].isin(counted["transaction_id"])]
    return set(counted["source"]), set(dupes["source"])


def test_in_process_rows_equal_the_recomputation_at_their_instant_and_bad_events_dead_letter():
    """Every key's last row holds its windows as of the instant it was emitted (wall clock)."""
    now = datetime.now(UTC)
    events = h.backlog(1, now=now, customers=list(range(700_000, 700_030)), partitions=1)
    entries = [(f"{1_700_000_000_000 + i}-0",
                encode(TxEvent(str(r.transaction_id), int(r.customer_id), int(r.terminal_id),
                               float(r.amount), r.event_timestamp.to_pydatetime())))
               for i, r in enumerate(events.itertuples(index=False))]
    bad = {"transaction_id": "bad", "customer_id": "x1", "terminal_id": "1", "amount": "3",
           "event_time": "2026-01-01T00:00:00Z"}
    entries.insert(10, ("1700000000000-5", bad))
    rows: list = []
    dead: list = []
    run_main(build_flow(TestingSource(entries), TestingSink(rows), TestingSink(dead),
                        allowed_lateness=timedelta(seconds=60)))

    assert [(f["transaction_id"], i) for f, _, i in dead] == [("bad", "1700000000000-5")]
    assert "customer_id" in dead[0][1]
    for source, names, windows in (
            ("customer_fresh_push", h.CUSTOMER_FEATURES, oracle.customer_windows),
            ("terminal_fresh_push", h.TERMINAL_FEATURES, oracle.terminal_windows)):
        last = {entity: (values, at) for src, entity, values, at, _ in rows if src == source}
        assert last, source
        for entity, (values, at) in last.items():
            want = windows(events, at, [entity], 60).loc[entity]
            got = pd.Series(values)[names]
            assert got.to_numpy(dtype=float) == pytest.approx(
                want[names].to_numpy(dtype=float)), (source, entity, at)
        # A backlog: rows are stamped with the wall clock, never with the events' own times.
        stamps = [at for src, _, _, at, _ in rows if src == source]
        assert min(stamps) >= now


def test_backlogged_flow_serves_the_recomputation_and_decays_with_timers(stack: Settings, env,
                                                                         tmp_path):
    """A backlog hours behind the clock, late and duplicated events: both views as recomputed.

    Once consumed, and again after tiles have left windows with no new event (timers fired).
    """
    client = connect(stack)
    parts = stack.stream_partitions
    _clear(client, parts)
    # A 60 s lateness (the default is the longest window) so that some events are too late.
    flow = h.flow_process({**env, "RTML_FRAUD__STREAM_ALLOWED_LATENESS_S": "60"},
                          tmp_path / "recovery",
                          log=tmp_path / "flow.log")
    try:
        warm = h.sentinels("warm", datetime.now(UTC), parts)
        h.xadd(client, warm, parts)
        h.wait_until(lambda: h.has_rows(stack, list(warm["customer_id"])), "the flow to start")
        now = datetime.now(UTC)
        events = h.backlog(2, now=now, customers=list(range(710_000, 710_060)), partitions=parts)
        # Single events that leave the 10-minute (and hour) window 45-55 s from now: a value
        # that only a timer can change, since nothing else arrives for these keys.
        expiring = pd.DataFrame([
            {"transaction_id": f"exp-{i}", "event_timestamp": now - timedelta(seconds=s),
             "customer_id": 720_000 + i, "terminal_id": 820_000 + (720_000 + i) % parts,
             "amount": 10.0 + i}
            for i, s in enumerate([555, 552, 3555, 3552])], columns=h.COLUMNS)
        done = h.sentinels("backlog", now, parts)
        arrivals = pd.concat([warm, events, expiring, done], ignore_index=True)
        h.xadd(client, pd.concat([events, expiring, done]), parts)
        h.wait_until(lambda: h.has_rows(stack, list(done["customer_id"])), "the backlog")
        consumed = datetime.now(UTC)
        customers, terminals = _keys(arrivals)
        first = h.wait_online_equals(stack, arrivals, customers, terminals, lateness_s=60)
        tiles = oracle._tile(expiring["event_timestamp"])
        leave = [(tiles[0] + 60) * 10, (tiles[1] + 60) * 10, (tiles[2] + 360) * 10,
                 (tiles[3] + 360) * 10]  # when each leaves its window (epoch seconds)
        assert consumed.timestamp() < min(leave), "the flow took too long to prove a timer"
        h.wait_until(lambda: datetime.now(UTC).timestamp() > max(leave) + 2, "the expiries",
                     timeout_s=max(leave) + 5 - datetime.now(UTC).timestamp())
        second = h.wait_online_equals(stack, arrivals, customers, terminals, lateness_s=60)
        alive = flow.poll() is None
    finally:
        os.killpg(flow.pid, signal.SIGKILL)
        flow.wait()
    assert alive
    mine = [720_000 + i for i in range(4)]
    assert (first[0].loc[mine, "cust_tx_count_1h"] == 1).all()
    assert (second[0].loc[mine[:2], "cust_tx_count_10m"] == 0).all()
    assert (second[0].loc[mine[2:], "cust_tx_count_1h"] == 0).all()
    # The backlog exercised what it is meant to: lateness, duplicates, keys quiet for hours.
    counted = oracle.counted_events(arrivals, "customer_id", lateness_s=60)
    assert len(counted) < arrivals["transaction_id"].nunique() < len(arrivals)
    assert (first[0]["cust_tx_count_1h"] == 0).any() and (first[0]["cust_tx_count_10m"] > 0).any()


def test_kill_9_mid_backlog_resumes_from_the_snapshot_exactly_once(stack: Settings, env,
                                                                   tmp_path):
    """Kill -9 after a snapshot and after rows past it were pushed; restart from recovery.

    The restart re-reads the entries after the snapshot and applies them to the snapshot's
    windows: each counted exactly once more (the counter), at-least-once duplicates skipped by
    id (the counter), the malformed event dead-lettered once, and the online values equal the
    recomputation.
    """
    client = connect(stack)
    parts = stack.stream_partitions
    _clear(client, parts)
    recovery = tmp_path / "recovery"
    ports = [free_port(), free_port()]
    now = datetime.now(UTC)
    # Within the last 50 minutes: no event is near the hour boundary, so each outcome is fixed.
    events = h.backlog(3, now=now, customers=list(range(730_000, 730_050)), partitions=parts,
                       oldest_s=3000)
    first, second = events.iloc[: len(events) // 2], events.iloc[len(events) // 2:]
    both = (set(oracle.counted_events(first, "customer_id")["transaction_id"])
            & set(oracle.counted_events(first, "terminal_id")["transaction_id"]))
    resent = first[first["transaction_id"].isin(sorted(both)[:7])]
    mark1, mark2 = h.sentinels("part1", now, parts), h.sentinels("part2", now, parts)

    flow = h.flow_process({**env, "RTML_STREAM_METRICS_PORT": str(ports[0])}, recovery,
                          snapshot_s=10, log=tmp_path / "flow.log")
    try:
        sent1 = h.xadd(client, pd.concat([first, mark1]), parts)
        h.wait_until(lambda: h.has_rows(stack, list(mark1["customer_id"])), "part 1")
        last1 = sent1.groupby("partition")["entry_id"].last()
        h.wait_until(lambda: all(
            not h.entry_after(last1[p], h.source_positions(recovery).get(stream_key(p), "0"))
            for p in range(parts)), "a snapshot covering part 1", timeout_s=60)
        sent2 = h.xadd(client, pd.concat([second, resent, mark2]), parts)
        bad_id = client.xadd(stream_key(0), {"transaction_id": "oops", "amount": "lots"})
        h.wait_until(lambda: h.has_rows(stack, list(mark2["customer_id"])), "part 2 pushed")
        h.wait_until(lambda: client.xlen(DEAD_LETTER_STREAM) > 0, "the dead letter")
        before_kill = h.scrape(ports[0])
    finally:
        os.killpg(flow.pid, signal.SIGKILL)
        flow.wait()
    snapshot = h.source_positions(recovery)
    assert set(snapshot) == {stream_key(p) for p in range(parts)}  # a snapshot was written
    replayed = sent2[[h.entry_after(i, snapshot[stream_key(p)])
                      for i, p in zip(sent2["entry_id"], sent2["partition"], strict=True)]]
    # ... and rows of events after it were pushed before the kill (part 2's marks were online).
    assert len(replayed) > len(sent2) // 2 and set(mark2["transaction_id"]) <= set(
        replayed["transaction_id"])
    arrivals = pd.concat([sent1, sent2], ignore_index=True)
    counted, dupes = _outcomes(arrivals, "customer_id")
    assert before_kill[("customer_fresh_push", "counted")] == len(counted)
    assert before_kill[("customer_fresh_push", "duplicate")] == len(dupes) >= len(resent)

    flow = h.flow_process({**env, "RTML_STREAM_METRICS_PORT": str(ports[1])}, recovery,
                          log=tmp_path / "flow.log")
    try:
        customers, terminals = _keys(arrivals)
        replay_counted = len(_outcomes(arrivals, "customer_id")[0] & set(replayed["source"]))
        h.wait_until(lambda: h.scrape(ports[1]).get(("customer_fresh_push", "counted"), 0)
                     >= replay_counted, "the restarted flow to replay")
        h.wait_online_equals(stack, arrivals, customers, terminals)
        after = h.scrape(ports[1])
    finally:
        os.killpg(flow.pid, signal.SIGKILL)
        flow.wait()
    # Exactly the entries after the snapshot were applied again, onto the snapshot's state.
    again = set(replayed["source"])
    for view, key in (("customer_fresh_push", "customer_id"),
                      ("terminal_fresh_push", "terminal_id")):
        counted, dupes = _outcomes(arrivals, key)
        assert after.get((view, "counted"), 0) == len(counted & again), view
        assert after.get((view, "duplicate"), 0) == len(dupes & again), view
    assert len(dupes & again) >= len(resent)  # the re-sent ones were all replayed
    dead = [f for _, f in client.xrange(DEAD_LETTER_STREAM)]
    assert [f[b"transaction_id"] for f in dead] == [b"oops"]
    assert dead[0][b"source_id"] == bad_id and b"amount" in dead[0][b"reason"]


def test_two_processes_split_the_partitions_and_equal_the_recomputation(stack: Settings, env,
                                                                        tmp_path):
    """`-i 0/1 -a "a;b"`: two processes, one worker each, both push, values equal the oracle."""
    client = connect(stack)
    parts = stack.stream_partitions
    _clear(client, parts)
    now = datetime.now(UTC)
    events = h.backlog(5, now=now, customers=list(range(740_000, 740_080)), partitions=parts)
    done = h.sentinels("two", now, parts)
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    flows = [h.flow_process(env, tmp_path / "recovery", "-i", str(i), "-a", addresses)
             for i in range(2)]
    try:
        h.xadd(client, pd.concat([events, done]), parts)
        arrivals = pd.concat([events, done], ignore_index=True)
        h.wait_until(lambda: h.has_rows(stack, list(done["customer_id"])), "the backlog",
                     timeout_s=120)
        h.wait_online_equals(stack, arrivals, *_keys(arrivals))
        running = [f.poll() is None for f in flows]
    finally:
        for f in flows:
            os.killpg(f.pid, signal.SIGKILL)
            f.wait()
    assert running == [True, True]
    # Each process's worker pushed its share of the keys (worker 0 in -i 0, worker 1 in -i 1).
    workers = {f[b"worker"] for _, f in client.xrange(FRESHNESS_STREAM)}
    assert workers == {b"0", b"1"}


def test_flow_rides_out_a_redis_restart(stack: Settings, env, tmp_path):
    """Redis goes away mid-run and comes back: the flow keeps running and loses nothing."""
    own = Settings(scenario="fraud",
                   repo_root=stack.repo_root, redis_address=f"localhost:{free_port()}")
    start_embedded(own)
    flow_env = {**env, "RTML_REDIS_ADDRESS": own.redis_address}
    client = connect(own)
    parts = own.stream_partitions
    now = datetime.now(UTC)
    events = h.backlog(6, now=now, customers=list(range(750_000, 750_040)), partitions=parts)
    first, second = events.iloc[: len(events) // 2], events.iloc[len(events) // 2:]
    done1, done2 = h.sentinels("r1", now, parts), h.sentinels("r2", now, parts)
    log = tmp_path / "flow.log"
    flow = h.flow_process(flow_env, tmp_path / "recovery", log=log)
    try:
        h.xadd(client, pd.concat([first, done1]), parts)
        h.wait_until(lambda: h.has_rows(own, list(done1["customer_id"])), "part 1")
        stop_embedded(own)  # streams and online values persist (AOF); the flow sees errors
        time.sleep(3)
        assert flow.poll() is None, "the flow died while Redis was down"
        start_embedded(own)
        h.xadd(client, pd.concat([second, done2]), parts)
        arrivals = pd.concat([first, done1, second, done2], ignore_index=True)
        h.wait_online_equals(own, arrivals, *_keys(arrivals))
        alive = flow.poll() is None
    finally:
        os.killpg(flow.pid, signal.SIGKILL)
        flow.wait()
        stop_embedded(own)
    assert alive
    assert "Redis unavailable" in log.read_text(errors="replace")
