"""The Redis Streams source and the producer against real servers.

The tests' own Valkey (the session's, from conftest) is used under a random key prefix, deleted
afterwards, so no Redis on :6379 is needed; the restart test owns a private Valkey on a free port,
so stopping it touches nothing else.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import redis

from pipelines.fraud.events import decode, partition_of, stream_key
from pipelines.fraud.produce import produce
from rtml.redis import connect
from rtml.redis.embedded import start_embedded, stop_embedded
from rtml.settings import Settings
from rtml.streams.source import RedisStreamPartition, RedisStreamSource, dead_letter
from tests.support.procs import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def server(valkey: Settings) -> tuple[str, int]:
    """Host and port of the session's own Valkey (started by conftest on a free port)."""
    return valkey.redis_host, valkey.redis_port


@pytest.fixture
def shared(server: tuple[str, int]) -> Iterator[redis.Redis]:
    """A client of the session's Valkey."""
    host, port = server
    client = connect(address=f"{host}:{port}", decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def prefix(shared: redis.Redis) -> Iterator[str]:
    """A random key prefix on the shared Redis; every key under it is deleted afterwards."""
    p = f"test:rtml-streams:{uuid.uuid4().hex}"
    yield p
    keys = list(shared.scan_iter(f"{p}*", count=1000))
    if keys:
        shared.delete(*keys)


def transactions(n: int, *, customers: int = 50, seed: int = 1) -> pd.DataFrame:
    """`n` rows in the raw transactions format, deliberately not in event-time order."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    order = pd.Series(range(n)).sample(frac=1.0, random_state=seed).tolist()
    return pd.DataFrame({
        "transaction_id": [1_000_000 + i for i in order],
        "event_timestamp": pd.to_datetime([start + timedelta(seconds=i) for i in order],
                                          utc=True),
        "customer_id": [(i * 7) % customers for i in order],
        "terminal_id": [i % 13 for i in order],
        "amount": [5.0 + i % 300 for i in order],
    })


def expected_ids(tx: pd.DataFrame, partition: int, partitions: int) -> list[str]:
    """Transaction ids one partition should carry, in send (event-time) order."""
    tx = tx.sort_values("event_timestamp", kind="stable")
    return [str(t) for t, c in zip(tx["transaction_id"], tx["customer_id"], strict=True)
            if partition_of(int(c), partitions) == partition]


def drain(part: RedisStreamPartition, *, max_polls: int = 10_000) -> list:
    """Poll until a poll comes back empty."""
    out: list = []
    for _ in range(max_polls):
        batch = part.next_batch()
        if not batch:
            return out
        assert part.next_awake() is None  # data came: poll again at once
        out.extend(batch)
    raise AssertionError("stream never drained")


def ids(entries: list) -> list[str]:
    """Decoded transaction ids of `(entry_id, fields)` items."""
    return [decode(fields).transaction_id for _, fields in entries]


def test_source_yields_every_produced_event_in_order_per_partition(server: tuple[str, int],
                                                                   prefix: str):
    host, port = server
    n, partitions = 6000, 3
    tx = transactions(n)
    out = produce(address=f"{host}:{port}", transactions=tx, rate=1e9, duration=None,
                  partitions=partitions, prefix=prefix, progress=False)
    assert out["sent"] == n
    assert out["achieved_rate"] > 0

    streams = [stream_key(i, prefix) for i in range(partitions)]
    source = RedisStreamSource(address=f"{host}:{port}", streams=streams, batch_size=500)
    assert source.list_parts() == streams
    total = 0
    for i, key in enumerate(streams):
        part = source.build_part("input", key, None)
        entries = drain(part)
        part.close()
        assert ids(entries) == expected_ids(tx, i, partitions)
        assert all(isinstance(e, str) and all(isinstance(v, str) for v in f.values())
                   for e, f in entries)
        times = [decode(f).event_time for _, f in entries]
        assert times == sorted(times)  # stamped at send time, in send order
        assert abs((datetime.now(UTC) - times[-1]).total_seconds()) < 300
        total += len(entries)
    assert total == n


def test_empty_stream_returns_at_once_and_schedules_a_wake_up(server: tuple[str, int], prefix: str):
    host, port = server
    source = RedisStreamSource(address=f"{host}:{port}", streams=[stream_key(0, prefix)],
                               idle_wait=timedelta(milliseconds=50))
    part = source.build_part("input", stream_key(0, prefix), None)
    result: list = []
    worker = threading.Thread(target=lambda: result.append(part.next_batch()), daemon=True)
    before = datetime.now(UTC)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "next_batch blocked on an empty stream"
    assert result == [[]]
    awake = part.next_awake()
    assert awake is not None and awake > before
    assert part.snapshot() == "0"
    part.close()


def test_dollar_start_reads_only_new_entries(server: tuple[str, int], shared: redis.Redis,
                                             prefix: str):
    host, port = server
    key = stream_key(0, prefix)
    shared.xadd(key, {"old": "1"})
    part = RedisStreamSource(address=f"{host}:{port}", streams=[key], start_id="$").build_part(
        "input", key, None)
    assert part.next_batch() == []
    new_id = shared.xadd(key, {"new": "1"})
    assert part.next_batch() == [(new_id, {"new": "1"})]
    part.close()


def test_resume_after_snapshot_yields_exactly_the_rest(server: tuple[str, int], prefix: str):
    host, port = server
    n = 1000
    tx = transactions(n)
    produce(address=f"{host}:{port}", transactions=tx, rate=1e9, duration=None, partitions=1,
            prefix=prefix, progress=False)
    key = stream_key(0, prefix)
    source = RedisStreamSource(address=f"{host}:{port}", streams=[key], batch_size=100)
    first = source.build_part("input", key, None)
    head: list = []
    while len(head) < n // 2:
        head.extend(first.next_batch())
    state = first.snapshot()
    assert state == head[-1][0]
    first.close()

    resumed = source.build_part("input", key, state)
    tail = drain(resumed)
    resumed.close()
    assert len(head) == len(tail) == n // 2
    assert ids(head) + ids(tail) == expected_ids(tx, 0, 1)


def test_survives_a_redis_restart_and_delivers_everything(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture):
    settings = Settings(repo_root=tmp_path, redis_address=f"localhost:{free_port()}")
    start_embedded(settings)
    try:
        n = 3000
        tx = transactions(n)
        produce(address=settings.redis_address, transactions=tx, rate=1e9,
                duration=None, partitions=1, prefix="rtml:tx", progress=False)
        key = stream_key(0, "rtml:tx")
        part = RedisStreamSource(address=settings.redis_address,
                                 streams=[key], batch_size=500).build_part("input", key, None)
        got = list(part.next_batch())
        assert len(got) == 500

        stop_embedded(settings)
        with caplog.at_level(logging.WARNING, logger="rtml.streams.source"):
            waits = []
            for _ in range(8):
                assert part.next_batch() == []  # no exception while Redis is down
                awake = part.next_awake()
                assert awake is not None
                waits.append(awake - datetime.now(UTC))
            assert all(w <= timedelta(seconds=1) for w in waits)  # capped back-off
            assert waits[-1] > waits[0]  # ...that grows
            down = [r for r in caplog.records if "unavailable" in r.getMessage()]
            assert len(down) == 1  # one line per outage, not per poll
            assert part.snapshot() == got[-1][0]

            start_embedded(settings)  # same data dir: the append-only file brings the stream back
            deadline = time.monotonic() + 30
            while len(got) < n and time.monotonic() < deadline:
                batch = part.next_batch()
                got.extend(batch)
                if not batch:
                    time.sleep(0.02)
            assert any("back" in r.getMessage() for r in caplog.records)
        part.close()
        assert ids(got) == expected_ids(tx, 0, 1)
    finally:
        stop_embedded(settings)


def test_streams_are_capped(server: tuple[str, int], shared: redis.Redis, prefix: str):
    host, port = server
    out = produce(address=f"{host}:{port}", transactions=transactions(5000), rate=1e9,
                  duration=None, partitions=1, prefix=prefix, maxlen=1000, progress=False)
    assert out["sent"] == 5000
    assert 1000 <= shared.xlen(stream_key(0, prefix)) < 2000


def test_producer_paces_open_loop(server: tuple[str, int], prefix: str):
    host, port = server
    rate, duration = 2000.0, 0.5
    out = produce(address=f"{host}:{port}", transactions=transactions(10_000), rate=rate,
                  duration=duration, partitions=2, prefix=prefix, progress=False)
    # Event i is due at i/rate: within `duration` at most rate*duration + 1 are ever due.
    assert 0 < out["sent"] <= rate * duration + 1


def test_dead_letter_keeps_fields_and_reason(shared: redis.Redis, prefix: str):
    stream = f"{prefix}:dead"
    fields = {b"transaction_id": b"t1", "customer_id": "x1", "amount": "3"}
    dead_letter(shared, fields, "customer_id: not an integer: 'x1'", stream=stream, maxlen=10)
    [(_, entry)] = shared.xrange(stream)
    assert entry["transaction_id"] == "t1"
    assert entry["customer_id"] == "x1"
    assert entry["amount"] == "3"
    assert entry["reason"] == "customer_id: not an integer: 'x1'"
    failed_at = datetime.fromisoformat(entry["failed_at"])
    assert failed_at.tzinfo is not None
    assert abs((datetime.now(UTC) - failed_at).total_seconds()) < 300
