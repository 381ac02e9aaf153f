"""What the fresh-flow tests share: backlogs of raw events, the real flow process, online reads.

Events are `XADD`ed with their own event times (a backlog lagging the wall clock, out of order
within and beyond the allowed lateness, with at-least-once duplicates), the real
`python -m bytewax.run` flow consumes them, and the online values are read through Feast and
compared with `tests.window_oracle`, which shares no code with `pipelines/`.
"""

from __future__ import annotations

import pickle
import sqlite3
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import redis

from pipelines.fraud.events import TxEvent, encode, partition_of, stream_key
from rtml.features.online import load_store
from rtml.settings import REPO_ROOT, Settings
from tests.support import window_oracle as oracle

CUSTOMER_FEATURES = ["cust_tx_count_10m", "cust_amount_sum_10m", "cust_mean_amount_10m",
                     "cust_tx_count_1h", "cust_amount_sum_1h", "cust_mean_amount_1h"]
TERMINAL_FEATURES = ["term_tx_count_1h"]
COLUMNS = ["transaction_id", "event_timestamp", "customer_id", "terminal_id", "amount"]


def backlog(seed: int, *, now: datetime, customers: list[int], partitions: int,
            hours: float = 3.0, terminals_per_partition: int = 6, newest_s: float = 20,
            oldest_s: float | None = None) -> pd.DataFrame:
    """Raw events in *arrival* order: bursts and quiet gaps (> 10 min, > 1 h) over `hours`.

    A terminal only takes payments from customers of its own partition, so each key's arrival
    order is its partition's order (deterministic whatever the worker interleaving). About 10%
    arrive up to 40 s late (within the 60 s lateness), 4% 3-15 min late (beyond it, unless the
    key was quiet meanwhile) and 2% are sent twice (an at-least-once producer).
    """
    rng = np.random.default_rng(seed)
    start = now - timedelta(hours=hours)
    oldest = start if oldest_s is None else now - timedelta(seconds=oldest_s)
    rows = []
    for cid in customers:
        t = start + timedelta(seconds=float(rng.uniform(0, 900)))
        for i in range(int(rng.integers(4, 30))):
            kind = rng.choice(4, p=[0.5, 0.3, 0.15, 0.05])
            gap = [rng.exponential(20), rng.exponential(240), rng.uniform(650, 1500),
                   rng.uniform(3700, 5000)][kind]
            t += timedelta(seconds=float(gap))
            if t > now - timedelta(seconds=newest_s):
                break
            if t < oldest:
                continue
            part = partition_of(cid, partitions)
            terminal = 800_000 + part + partitions * int(rng.integers(terminals_per_partition))
            rows.append({"transaction_id": f"s{seed}-c{cid}-{i}", "event_timestamp": t,
                         "customer_id": cid, "terminal_id": terminal,
                         "amount": round(float(rng.lognormal(3.5, 1.0)), 2) + 0.01})
    events = pd.DataFrame(rows, columns=COLUMNS)
    delay = np.zeros(len(events))
    late = rng.random(len(events))
    delay[late < 0.10] = rng.uniform(1, 40, (late < 0.10).sum())
    very = late > 0.96
    delay[very] = rng.uniform(180, 900, very.sum())
    events["arrive"] = events["event_timestamp"] + pd.to_timedelta(delay, unit="s")
    dupes = events.sample(frac=0.02, random_state=seed).copy()
    dupes["arrive"] += pd.to_timedelta(rng.uniform(1, 600, len(dupes)), unit="s")
    out = pd.concat([events, dupes]).sort_values("arrive", kind="stable")
    return out.drop(columns="arrive").reset_index(drop=True)


def xadd(client: redis.Redis, events: pd.DataFrame, partitions: int) -> pd.DataFrame:
    """Send events in order; returns them with `partition`, `entry_id` and `source` (both)."""
    pipe = client.pipeline(transaction=False)
    order = []
    for r in events.itertuples(index=False):
        part = partition_of(int(r.customer_id), partitions)
        ev = TxEvent(transaction_id=str(r.transaction_id), customer_id=int(r.customer_id),
                     terminal_id=int(r.terminal_id), amount=float(r.amount),
                     event_time=pd.Timestamp(r.event_timestamp).to_pydatetime())
        pipe.xadd(stream_key(part), encode(ev))
        order.append(part)
    ids = [i.decode() if isinstance(i, bytes) else i for i in pipe.execute()]
    return events.assign(partition=order, entry_id=ids,
                         source=[f"{p}/{i}" for p, i in zip(order, ids, strict=True)])


def sentinels(tag: str, now: datetime, partitions: int) -> pd.DataFrame:
    """One event per partition, sent last: once its row is online, the partition is consumed.

    Its keys are the tag's own (no other test's sentinel row can answer for it), in partition p.
    """
    base = 880_000 + partitions * (zlib.crc32(tag.encode()) % 25_000)
    return pd.DataFrame([{"transaction_id": f"sentinel-{tag}-{p}", "event_timestamp": now,
                          "customer_id": base + p, "terminal_id": base + p,
                          "amount": 1.0} for p in range(partitions)], columns=COLUMNS)


def flow_process(env: dict[str, str], recovery: Path, *extra: str, snapshot_s: float = 1,
                 log: Path | None = None) -> subprocess.Popen:
    """The real flow (`python -m bytewax.run`), recovery initialised, in its own process group."""
    if not recovery.exists():
        recovery.mkdir(parents=True)
        subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True)
    err = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "pipelines.fraud.flow:get_flow()",
         "-r", str(recovery), "-s", f"{snapshot_s:g}", "-b", "0", *extra],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)


def online(settings: Settings, customers: list[int], terminals: list[int]
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both streamed views as Feast serves them now (missing values as 0: empty windows)."""
    store = load_store(settings)

    def read(view: str, key: str, names: list[str], ids: list[int]) -> pd.DataFrame:
        if not ids:
            return pd.DataFrame(columns=names, index=pd.Index([], name=key))
        got = store.get_online_features(features=[f"{view}:{f}" for f in names],
                                        entity_rows=[{key: i} for i in ids]).to_df()
        return got.set_index(key)[names].astype(float).fillna(0.0)

    return (read("customer_fresh", "customer_id", CUSTOMER_FEATURES, customers),
            read("terminal_fresh", "terminal_id", TERMINAL_FEATURES, terminals))


def expected(arrivals: pd.DataFrame, at: datetime, customers: list[int], terminals: list[int],
             lateness_s: float = 3600) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The independent recomputation of both views as of `at`."""
    return (oracle.customer_windows(arrivals, at, customers, lateness_s),
            oracle.terminal_windows(arrivals, at, terminals, lateness_s))


def _mismatch(got: pd.DataFrame, want: pd.DataFrame) -> pd.DataFrame:
    got = got.reindex(want.index).astype(float)
    bad = ~np.isclose(got.to_numpy(), want.to_numpy(dtype=float), rtol=1e-9, atol=1e-9)
    rows = bad.any(axis=1)
    return pd.concat({"online": got[rows], "expected": want[rows]}, axis=1)


def wait_online_equals(settings: Settings, arrivals: pd.DataFrame, customers: list[int],
                       terminals: list[int], *, timeout_s: float = 90,
                       lateness_s: float = 3600) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Poll until both views equal the recomputation as of the read; fail with the difference.

    A read is judged only when no window changed while it ran (the recomputation at the
    read's start and end agree); the flow gets the time to catch up and to fire its timers.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        before = datetime.now(UTC)
        got = online(settings, customers, terminals)
        after = datetime.now(UTC)
        want = expected(arrivals, before, customers, terminals, lateness_s)
        stable = all(a.equals(b) for a, b in zip(
            want, expected(arrivals, after, customers, terminals, lateness_s), strict=True))
        diffs = [_mismatch(g, w) for g, w in zip(got, want, strict=True)]
        if stable and all(d.empty for d in diffs):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(
                f"online values differ from the recomputation after {timeout_s:.0f}s:\n"
                f"customers:\n{diffs[0].head(20)}\nterminals:\n{diffs[1].head(20)}")
        time.sleep(0.5)


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 90) -> None:
    """Poll `check` until true; fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.2)


def has_rows(settings: Settings, customers: list[int]) -> bool:
    """Whether every customer has a streamed row online (the flow consumed up to it)."""
    got, _ = online(settings, customers, [])
    return bool((got["cust_tx_count_1h"] > 0).all())


def scrape(port: int) -> dict[tuple[str, str], float]:
    """`rtml_stream_events_total` by (view, outcome) from the flow's metrics endpoint."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.TransportError:  # not listening (yet)
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("rtml_stream_events_total{"):
            labels, value = line[len("rtml_stream_events_total{"):].split("} ")
            kv = dict(part.split("=") for part in labels.split(","))
            out[(kv["view"].strip('"'), kv["outcome"].strip('"'))] = float(value)
    return out


def source_positions(recovery: Path) -> dict[str, str]:
    """The stream positions a restart resumes from: the input snapshots of the resume epoch."""
    with sqlite3.connect(recovery / "part-0.sqlite3") as db:
        fronts = db.execute("SELECT worker_frontier FROM fronts WHERE ex_num = "
                            "(SELECT MAX(ex_num) FROM fronts)").fetchall()
        if not fronts:
            return {}
        resume = min(f for (f,) in fronts)
        rows = db.execute(
            "SELECT state_key, ser_change FROM snaps s WHERE step_id LIKE '%read_events' AND "
            "snap_epoch = (SELECT MAX(snap_epoch) FROM snaps t WHERE t.step_id = s.step_id AND "
            "t.state_key = s.state_key AND t.snap_epoch < ?)", (resume,)).fetchall()
    return {key: pickle.loads(blob) for key, blob in rows if blob is not None}


def entry_after(entry_id: str, position: str) -> bool:
    """Whether a stream entry id comes after a snapshotted position."""
    def parse(x: str) -> tuple[int, int]:
        ms, _, seq = x.partition("-")
        return int(ms), int(seq or 0)

    return parse(entry_id) > parse(position)
