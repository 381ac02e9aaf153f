"""The demo's Redis-facing pieces against the session's own Valkey.

Events replayed with their own times, the clean-stop record, the online store wiped of an earlier
run's rows (and nothing else), and the wait for the flow's sink to fall quiet.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import redis

from pipelines.fraud.events import decode, stream_key
from pipelines.fraud.produce import produce
from rtml.demo import clear_online_store, wait_caught_up
from rtml.features.push import FRESHNESS_STREAM
from rtml.redis import connect
from rtml.settings import Settings
from rtml.streams.stop import STOP_KEY, clean_stop, clear_clean_stop, record_clean_stop

PREFIX = "test:demo-pieces"


@pytest.fixture
def client(valkey: Settings) -> Iterator[redis.Redis]:
    c = connect(valkey)
    yield c
    keys = list(c.scan_iter(f"{PREFIX}*")) + [STOP_KEY, FRESHNESS_STREAM]
    c.delete(*keys)
    c.close()


def _rows(n: int) -> pd.DataFrame:
    start = datetime(2026, 3, 10, 6, tzinfo=UTC)
    return pd.DataFrame({
        "transaction_id": range(500, 500 + n), "customer_id": [7, 8] * (n // 2),
        "terminal_id": [3] * n, "amount": [12.5] * n,
        "event_timestamp": pd.to_datetime([start + timedelta(minutes=7 * i) for i in range(n)],
                                          utc=True)})


def _sent(client: redis.Redis) -> list:
    events = [decode(f) for key in (stream_key(0, PREFIX), stream_key(1, PREFIX))
              for _, f in client.xrange(key)]
    return sorted(events, key=lambda e: e.transaction_id)


def test_events_keep_their_own_times_or_are_stamped_when_sent(client, valkey):
    rows = _rows(10)
    out = produce(address=valkey.redis_address, transactions=rows,
                  rate=float("inf"), duration=None, partitions=2, prefix=PREFIX,
                  progress=False, own_times=True)
    assert out["sent"] == 10
    events = _sent(client)
    assert [e.event_time for e in events] == [t.to_pydatetime() for t in rows["event_timestamp"]]
    assert {e.customer_id for e in events if int(e.transaction_id) % 2} == {8}
    client.delete(stream_key(0, PREFIX), stream_key(1, PREFIX))
    before = datetime.now(UTC)
    produce(address=valkey.redis_address, transactions=rows, rate=float("inf"),
            duration=None, partitions=2, prefix=PREFIX, progress=False)
    assert all(e.event_time >= before.replace(microsecond=0) for e in _sent(client))


def test_a_clean_stop_is_recorded_read_back_and_cleared(client):
    assert clean_stop(client) is None
    recorded = record_clean_stop(client, by="rtml demo", at_s=1_773_000_000.25)
    assert clean_stop(client) == recorded
    assert recorded.at_s == 1_773_000_000.25 and recorded.by == "rtml demo"
    clear_clean_stop(client)
    assert clean_stop(client) is None
    client.hset(STOP_KEY, mapping={"by": "no time"})  # unreadable: no excuse
    assert clean_stop(client) is None


def test_clearing_the_online_store_deletes_the_project_rows_only(client):
    project_rows = [f"{PREFIX}:entity-{i}:myproj".encode() for i in range(7)]
    others = [f"{PREFIX}:tx:0", f"{PREFIX}:myproj:predictions", f"{PREFIX}:otherproj"]
    for key in project_rows + others:
        client.set(key, b"x")
    assert clear_online_store(client, "myproj") == len(project_rows)
    assert [k.decode() for k in sorted(client.scan_iter(f"{PREFIX}*"))] == sorted(others)


def test_waiting_for_the_sink_returns_once_it_falls_quiet(client):
    client.delete(FRESHNESS_STREAM)
    assert wait_caught_up(client, quiet_s=0.2, timeout_s=0.5) is False  # nothing pushed yet
    client.xadd(FRESHNESS_STREAM, {"lag_ms": "3.0"})
    assert wait_caught_up(client, quiet_s=0.2, timeout_s=30) is True
