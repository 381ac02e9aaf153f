"""`rtml log drain` killed mid-way and run again: every logged row in parquet exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from rtml.redis import connect, connect_async
from rtml.serving.predlog import GROUP, PredictionLog
from rtml.settings import Settings
from tests.support.procs import BIN, run

ROWS = 40_000
BATCH = 400  # entries per read/write/acknowledge step: 100 steps, so a kill lands mid-way
STREAM = "rtml:predictions:drain-test"


TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _log_rows(settings: Settings) -> list[str]:
    """ROWS decisions through the service's own log writer, logged either side of midnight."""
    ids = [f"req-{i:06d}" for i in range(ROWS)]

    async def write() -> None:
        # A generous socket timeout: this file's subject is the drain. Under the service's 0.5 s
        # a chunk that times out on a loaded machine is written again (at-least-once, at most one
        # chunk twice: the backlog test below), and the stream would not hold exactly ROWS.
        client = connect_async(settings, timeout_s=5.0)
        log = PredictionLog(client=client, stream=STREAM, maxlen=10 * ROWS, flush_ms=50,
                            buffer_max=ROWS)
        for i, rid in enumerate(ids):
            log.append({
                "request_id": rid, "transaction_id": f"tx-{i}", "customer_id": i % 97,
                "terminal_id": i % 89, "amount": 10.0 + i % 50,
                "features": {"cust_tx_count_30d": float(i % 7)}, "score": (i % 100) / 100,
                "decision": "approve", "fallback": False, "model_version": "fraud_model:test",
                "features_ms": 0.5, "model_ms": 0.3, "total_ms": 1.0, "batch_rows": 1,
                "logged_at": (TODAY + timedelta(seconds=i - ROWS // 2)).isoformat(),
            })
        deadline = time.monotonic() + 60
        while log.written < ROWS:  # its background task flushes (the service's path)
            assert time.monotonic() < deadline and log.dropped == 0, (log.written, log.dropped)
            await asyncio.sleep(0.05)
        await client.aclose()

    asyncio.run(write())
    return ids


def _parts(out: Path) -> list[Path]:
    return sorted(out.glob("date=*/part-*.parquet"))


def test_a_drain_killed_mid_way_then_rerun_writes_every_row_exactly_once(
        stack: Settings, env: dict[str, str], tmp_path: Path):
    client = connect(stack)
    client.delete(STREAM)
    ids = _log_rows(stack)
    assert client.xlen(STREAM) == ROWS
    # Its own repo root: the parquet goes to tmp_path/data/predictions, apart from other tests.
    drain_env = {**env, "RTML_REPO_ROOT": str(tmp_path), "RTML_FRAUD__PREDICTION_STREAM": STREAM}
    out = tmp_path / "data" / "predictions"
    cmd = [str(BIN / "rtml"), "log", "drain", "--batch", str(BATCH)]

    proc = subprocess.Popen(cmd, env=drain_env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while len(_parts(out)) < 5:  # a few batches written: kill it while it works on the next
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the drain wrote nothing in 120 s"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed, not finished
    left = client.xlen(STREAM)
    assert 0 < left < ROWS  # mid-way: some rows moved, some not
    # What a reader sees between the crash and the rerun: whole files, no row twice.
    before = pd.read_parquet(out)
    assert before["request_id"].is_unique and set(before["request_id"]) <= set(ids)

    run(cmd, env=drain_env, cwd=tmp_path)
    got = pd.read_parquet(out)
    assert sorted(got["request_id"]) == ids  # every logged row, each exactly once
    assert client.xlen(STREAM) == 0
    assert client.xpending(STREAM, GROUP)["pending"] == 0
    assert {p.parent.name for p in _parts(out)} == {
        f"date={(TODAY - timedelta(days=1)).date()}", f"date={TODAY.date()}"}
    assert not list(out.glob("date=*/.*"))  # no temporary file left behind
    client.delete(STREAM)


def test_flushes_that_overlap_write_each_entry_once(valkey: Settings):
    """A shutdown flush racing the background one: every entry once, nothing lost or raised."""
    stream = "rtml:predictions:overlap-test"
    n = 5000

    async def write() -> int:
        client = connect_async(valkey)
        await client.delete(stream)
        log = PredictionLog(client=client, stream=stream, maxlen=10 * n, flush_ms=1)
        for i in range(n):
            log.append({"request_id": f"r{i}", "score": i / n})
        results = await asyncio.gather(log.flush(), log.flush(), log.flush())
        while log._task is not None and not log._task.done():
            await asyncio.sleep(0.01)
        length = await client.xlen(stream)
        await client.aclose()
        assert sum(results) == n and log.written == n
        return length

    assert asyncio.run(write()) == n
    ids = [f.get(b"request_id") for _, f in connect(valkey).xrange(stream)]
    assert len(ids) == len(set(ids)) == n


def test_a_buffer_bigger_than_one_socket_timeout_is_written_once(valkey: Settings):
    """A backlog (after an outage) flushed under a short socket timeout: each decision once.

    The flush must not turn into a loop of partial writes, each retry adding copies.
    """
    stream = "rtml:predictions:backlog-test"
    n = 60_000

    async def write() -> None:
        client = connect_async(valkey, timeout_s=0.05)  # tighter than the service's 0.5 s
        await client.delete(stream)
        log = PredictionLog(client=client, stream=stream, maxlen=10 * n, flush_ms=1,
                            buffer_max=n)
        for i in range(n):
            log.append({"request_id": f"r{i}", "score": i / n, "features": {"x": float(i)},
                        "model_version": "fraud_model:test", "decision": "approve"})
        deadline = time.monotonic() + 60
        while log.written < n:
            assert time.monotonic() < deadline, (log.written, n)
            await asyncio.sleep(0.01)
        await client.aclose()

    asyncio.run(write())
    ids = [f[b"request_id"] for _, f in connect(valkey).xrange(stream)]
    assert len(ids) == len(set(ids)) == n  # each decision once, none lost
