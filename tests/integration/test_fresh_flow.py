"""The fresh-features flow: parity with the backfill, dead letters, Feast push, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import redis
from bytewax.testing import TestingSink, TestingSource, run_main

from pipelines.feast_push import FRESHNESS_STREAM
from pipelines.fraud_fresh_flow import build_flow
from pipelines.fresh_aggregates import backfill
from pipelines.produce import produce
from rtml.events import DEAD_LETTER_STREAM, BadEventError, TxEvent, decode, encode, stream_key
from rtml.features import load_store
from rtml.redis_server import start_embedded, stop_embedded
from rtml.settings import REPO_ROOT, Settings

FRESH = ["cust_tx_count_10m", "cust_amount_sum_10m", "cust_mean_amount_10m",
         "cust_tx_count_1h", "cust_amount_sum_1h", "cust_mean_amount_1h"]


def recent_events(n: int, *, seed: int = 0, customers: int = 20) -> pd.DataFrame:
    """`n` transactions over the last ~30 minutes, in event-time order, with some ties."""
    rng = pd.Series(range(n)).sample(frac=1.0, random_state=seed).to_numpy()
    now = datetime.now(UTC).replace(microsecond=0)
    offsets = sorted(int(x) for x in (rng * 1800 // n))
    return pd.DataFrame({
        "transaction_id": range(n),
        "event_timestamp": pd.to_datetime([now - timedelta(seconds=1800 - o) for o in offsets],
                                          utc=True),
        "customer_id": [int(x) % customers for x in rng],
        "terminal_id": [int(x) % 7 for x in rng],
        "amount": [round(5 + (int(x) * 37 % 200) + 0.25, 2) for x in rng],
    })


def _entries(tx: pd.DataFrame) -> list[tuple[str, dict[str, str]]]:
    out = []
    for i, r in enumerate(tx.itertuples()):
        ev = TxEvent(transaction_id=str(r.transaction_id), customer_id=int(r.customer_id),
                     terminal_id=int(r.terminal_id), amount=float(r.amount),
                     event_time=r.event_timestamp.to_pydatetime())
        out.append((f"{1_700_000_000_000 + i}-0", encode(ev)))
    return out


def test_flow_emits_exactly_the_backfill_values_and_dead_letters_bad_events():
    tx = recent_events(400)
    entries = _entries(tx)
    entries.insert(10, ("1700000000000-5", {"transaction_id": "bad", "customer_id": "x1",
                                              "terminal_id": "1", "amount": "3",
                                              "event_time": "2026-01-01T00:00:00Z"}))
    rows: list = []
    dead: list = []
    run_main(build_flow(TestingSource(entries), TestingSink(rows), TestingSink(dead)))

    assert [f["transaction_id"] for f, _ in dead] == ["bad"]
    assert "customer_id" in dead[0][1]
    streamed = pd.DataFrame(
        [{"customer_id": e, "event_timestamp": at, **v}
         for src, e, v, at, xadd in rows if src == "customer_fresh_push" and xadd > 0])
    expected = backfill(tx, kind="customer")
    assert len(streamed) == len(tx)
    streamed = streamed.sort_values(["customer_id", "event_timestamp"]).reset_index(drop=True)
    expected = expected.sort_values(["customer_id", "event_timestamp"]).reset_index(drop=True)
    cols = ["customer_id", *FRESH]
    pd.testing.assert_frame_equal(streamed[cols], expected[cols], check_dtype=False)


def _flow_process(env: dict[str, str], recovery, *extra: str,
                  stderr=subprocess.PIPE) -> subprocess.Popen:
    if not recovery.exists():
        recovery.mkdir()
        subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True)
    return subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "pipelines.fraud_fresh_flow:get_flow()",
         "-r", str(recovery), "-s", "1", "-b", "0", *extra],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        start_new_session=True)


def _clear_streams(client: redis.Redis, partitions: int) -> None:
    client.delete(*[stream_key(i) for i in range(partitions)], FRESHNESS_STREAM)


def _expected(sent: pd.DataFrame) -> pd.DataFrame:
    """The backfill's last row per customer: what the online store must hold once caught up."""
    return (backfill(sent, kind="customer").sort_values("event_timestamp")
            .groupby("customer_id").tail(1).set_index("customer_id"))


def _assert_online_equals(got: pd.DataFrame, expected: pd.DataFrame, customers: list[int]):
    for name in FRESH:
        assert got[name].to_numpy() == pytest.approx(expected.loc[customers, name].to_numpy()), name


def _online(stack: Settings, customers: list[int]) -> pd.DataFrame:
    store = load_store(stack)
    return store.get_online_features(
        features=[f"customer_fresh:{f}" for f in FRESH],
        entity_rows=[{"customer_id": c} for c in customers]).to_df()


def _wait_consumed(stack: Settings, customers: list[int], expected: pd.DataFrame,
                   timeout_s: float = 90) -> pd.DataFrame:
    deadline = time.monotonic() + timeout_s
    while True:
        got = _online(stack, customers)
        if (got["cust_tx_count_1h"].astype(float).fillna(-1).to_numpy()
                == expected.loc[customers, "cust_tx_count_1h"].to_numpy()).all():
            return got
        if time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def _sent_events(client: redis.Redis, partitions: int) -> pd.DataFrame:
    """What actually went over the streams (the producer stamps events with send time)."""
    rows = []
    for i in range(partitions):
        for _, fields in client.xrange(stream_key(i)):
            try:
                ev = decode(fields)
            except BadEventError:
                continue
            rows.append({"transaction_id": ev.transaction_id, "event_timestamp": ev.event_time,
                         "customer_id": ev.customer_id, "terminal_id": ev.terminal_id,
                         "amount": ev.amount})
    df = pd.DataFrame(rows)
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    return df.sort_values("event_timestamp", kind="stable").reset_index(drop=True)


def test_flow_pushes_into_feast_and_survives_kill_9(stack: Settings, env, tmp_path):
    """Produce to the real streams, kill -9 the flow mid-way, restart: online == backfill."""
    client = redis.Redis(host=stack.redis_host, port=stack.redis_port)
    for i in range(stack.stream_partitions):
        client.delete(stream_key(i))
    tx = recent_events(3000, seed=2, customers=50)
    tx["customer_id"] += 900_000  # entities no other test writes
    first, second = tx.iloc[:1500], tx.iloc[1500:]
    recovery = tmp_path / "recovery"
    flow = _flow_process(env, recovery)
    try:
        produce(host=stack.redis_host, port=stack.redis_port, transactions=first, rate=2000,
                duration=None, partitions=stack.stream_partitions, progress=False)
        client.xadd(stream_key(0), {"transaction_id": "oops", "amount": "lots"})
        time.sleep(3)
        os.killpg(flow.pid, signal.SIGKILL)  # mid-stream: some events read, not all snapshotted
        flow.wait()
        produce(host=stack.redis_host, port=stack.redis_port, transactions=second, rate=2000,
                duration=None, partitions=stack.stream_partitions, progress=False)
        flow = _flow_process(env, recovery)
        sent = _sent_events(client, stack.stream_partitions)
        assert len(sent) == len(tx)
        expected = _expected(sent)
        customers = sorted(expected.index)
        got = _wait_consumed(stack, customers, expected)
    finally:
        os.killpg(flow.pid, signal.SIGKILL)
        flow.wait()
    _assert_online_equals(got, expected, customers)
    dead = client.xrange(DEAD_LETTER_STREAM)
    assert any(f.get(b"transaction_id") == b"oops" and b"reason" in f for _, f in dead)
    lags = client.xrange("rtml:metrics:stream_freshness")
    assert lags and all(float(f[b"lag_ms"]) >= 0 for _, f in lags)


def test_two_processes_split_the_partitions_and_agree_with_the_backfill(stack: Settings, env,
                                                                        tmp_path):
    """`-i 0/1 -a "a;b"`: two processes, one worker each, both push, values equal the backfill."""
    from tests.integration.conftest import free_port

    client = redis.Redis(host=stack.redis_host, port=stack.redis_port)
    _clear_streams(client, stack.stream_partitions)
    tx = recent_events(2000, seed=5, customers=80)
    tx["customer_id"] += 910_000
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    recovery = tmp_path / "recovery"
    flows = [_flow_process(env, recovery, "-i", str(i), "-a", addresses, stderr=subprocess.DEVNULL)
             for i in range(2)]
    try:
        produce(host=stack.redis_host, port=stack.redis_port, transactions=tx, rate=4000,
                duration=None, partitions=stack.stream_partitions, progress=False)
        expected = _expected(_sent_events(client, stack.stream_partitions))
        customers = sorted(expected.index)
        got = _wait_consumed(stack, customers, expected)
        running = [f.poll() is None for f in flows]
    finally:
        for f in flows:
            os.killpg(f.pid, signal.SIGKILL)
            f.wait()
    assert running == [True, True]
    _assert_online_equals(got, expected, customers)
    # Each process's worker pushed its share of the keys (worker 0 in -i 0, worker 1 in -i 1).
    workers = {f[b"worker"] for _, f in client.xrange(FRESHNESS_STREAM)}
    assert workers == {b"0", b"1"}


def test_flow_rides_out_a_redis_restart(stack: Settings, env, tmp_path):
    """Redis goes away mid-run and comes back: the flow keeps running and loses nothing."""
    from tests.integration.conftest import free_port

    own = Settings(repo_root=stack.repo_root, redis_address=f"localhost:{free_port()}")
    start_embedded(own)
    flow_env = {**env, "RTML_REDIS_ADDRESS": own.redis_address}
    client = redis.Redis(host=own.redis_host, port=own.redis_port)
    tx = recent_events(1600, seed=6, customers=40)
    first, second = tx.iloc[:800], tx.iloc[800:]
    log = tmp_path / "flow.log"
    with log.open("wb") as err:
        flow = _flow_process(flow_env, tmp_path / "recovery", stderr=err)
    try:
        produce(host=own.redis_host, port=own.redis_port, transactions=first, rate=2000,
                duration=None, partitions=own.stream_partitions, progress=False)
        expected = _expected(_sent_events(client, own.stream_partitions))
        got = _wait_consumed(own, sorted(expected.index), expected)
        _assert_online_equals(got, expected, sorted(expected.index))

        stop_embedded(own)  # streams and online values persist (AOF); the flow sees errors
        time.sleep(3)
        assert flow.poll() is None, "the flow died while Redis was down"
        start_embedded(own)
        produce(host=own.redis_host, port=own.redis_port, transactions=second, rate=2000,
                duration=None, partitions=own.stream_partitions, progress=False)
        sent = _sent_events(client, own.stream_partitions)
        expected = _expected(sent)
        customers = sorted(expected.index)
        got = _wait_consumed(own, customers, expected)
        alive = flow.poll() is None
    finally:
        os.killpg(flow.pid, signal.SIGKILL)
        flow.wait()
        stop_embedded(own)
    assert alive
    assert len(sent) == len(tx)  # the streams came back whole (AOF)
    _assert_online_equals(got, expected, customers)
    assert "Redis unavailable" in log.read_text(errors="replace")
