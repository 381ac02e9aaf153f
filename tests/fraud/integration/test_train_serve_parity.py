"""Train/serve parity: the vector training builds for a payment is the one the service scores.

The real flow consumes hours of events (a backlog behind the wall clock, with gaps longer than
10 minutes and an hour), the real `bentoml serve` of `fraud_model_v2` scores payments, and its
prediction log records the vector it read. Training's own code
(`training.fraud.train.point_in_time_features` over the backfill that `rtml features build`
writes) builds the vector for the same payments at the same instants. Every feature of the
FeatureService must be equal: nightly views, both streamed views, request-time features.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from feast.data_source import PushMode

from pipelines.fraud.events import stream_key
from pipelines.fraud.windows import write_backfill
from rtml.features.online import load_store
from rtml.features.pit import write_point_in_time
from rtml.features.push import FRESHNESS_STREAM
from rtml.redis import connect
from rtml.settings import Settings
from tests.support import flow_harness as h
from training.fraud.train import point_in_time_features

# Gaps after a customer's last payment before the request: inside 10 min, between 10 min and
# an hour (the "paid 50 minutes ago": 1 in the hour, 0 in 10 minutes), over an hour.
LAST_GAPS_S = [30, 240, 900, 3000, 3000, 4500, 8000]


def _histories(pairs: pd.DataFrame, now: datetime, seed: int) -> pd.DataFrame:
    """Bursts and pauses for real customers (each at one of its real terminals)."""
    rng = np.random.default_rng(seed)
    danger = (now.timestamp() - 10, now.timestamp() + 120)  # no window edge while we read
    rows = []
    for i, (cid, tid) in enumerate(zip(pairs["customer_id"], pairs["terminal_id"], strict=True)):
        t = now - timedelta(seconds=LAST_GAPS_S[i % len(LAST_GAPS_S)] + float(rng.uniform(0, 60)))
        for j in range(int(rng.integers(1, 12))):
            tile = int(t.timestamp()) // 10
            if not any(danger[0] <= (tile + w) * 10 <= danger[1] for w in (60, 360)):
                rows.append({"transaction_id": f"parity-{cid}-{j}", "event_timestamp": t,
                             "customer_id": int(cid), "terminal_id": int(tid),
                             "amount": round(float(rng.lognormal(3.5, 1)), 2) + 0.01})
            t -= timedelta(seconds=float(rng.choice([rng.exponential(60), rng.uniform(700, 2000),
                                                     rng.uniform(3700, 6000)])))
    return pd.DataFrame(rows, columns=h.COLUMNS).sort_values("event_timestamp",
                                                             ignore_index=True)


def _start_empty(settings: Settings, pairs: pd.DataFrame) -> None:
    """Empty streamed windows online for the test's keys, as a flow that has seen nothing recent.

    Other tests push made-up streamed values for real customers; the flow only overwrites a key
    it has an event for, so a key quiet for over an hour would keep them.
    """
    store = load_store(settings)
    at = pd.Timestamp(datetime.now(UTC))
    for source, key, names in (("customer_fresh_push", "customer_id", h.CUSTOMER_FEATURES),
                               ("terminal_fresh_push", "terminal_id", h.TERMINAL_FEATURES)):
        ids = sorted(set(pairs[key]))
        frame = pd.DataFrame({key: ids, "event_timestamp": at})
        for name in names:
            frame[name] = 0 if "count" in name else 0.0
        store.push(source, frame, to=PushMode.ONLINE)


def _training_repo(stack: Settings, tmp: Path, transactions: pd.DataFrame, until: datetime
                   ) -> Settings:
    """A copy of the Feast repo with the backfill of `transactions` as the streamed views' source.

    `transactions` is the history plus what was streamed: what `rtml features build` would see.
    """
    root = tmp / "training_repo"
    root.mkdir()
    for name in ("feature_store.yaml", ".feastignore"):
        shutil.copy(stack.repo_root / name, root / name)
    shutil.copytree(stack.repo_root / "feature_repo", root / "feature_repo",
                    ignore=shutil.ignore_patterns("__pycache__"))
    settings = Settings(scenario="fraud", repo_root=root, redis_address=stack.redis_address)
    shutil.copytree(stack.features_dir, settings.features_dir)
    shutil.copy(stack.data_dir / "registry.db", settings.data_dir / "registry.db")
    raw = tmp / "transactions.parquet"
    transactions.to_parquet(raw, index=False)
    write_backfill(raw, settings.features_dir, until=until)
    return settings


def test_training_features_equal_what_the_service_reads(stack_v2: Settings, env_v2, fraud_v2_url,
                                                        tmp_path):
    client = connect(stack_v2)
    parts = stack_v2.stream_partitions
    client.delete(*[stream_key(i) for i in range(parts)], FRESHNESS_STREAM)
    raw = pd.read_parquet(stack_v2.raw_dir / "transactions.parquet")
    pairs = raw.drop_duplicates("customer_id").sample(35, random_state=11)
    _start_empty(stack_v2, pairs)
    flow = h.flow_process(env_v2, tmp_path / "recovery", log=tmp_path / "flow.log")
    try:
        warm = h.sentinels("parity-warm", datetime.now(UTC), parts)
        h.xadd(client, warm, parts)
        h.wait_until(lambda: h.has_rows(stack_v2, list(warm["customer_id"])), "the flow")
        now = datetime.now(UTC)
        events = _histories(pairs, now, seed=11)
        # History the flow would have seen live (the last hour of the generated data, if any).
        recent = raw[raw["event_timestamp"] > now - timedelta(hours=1)][h.COLUMNS]
        done = h.sentinels("parity-done", now - timedelta(seconds=5), parts)
        h.xadd(client, pd.concat([recent, events, done]).sort_values("event_timestamp"), parts)
        h.wait_until(lambda: h.has_rows(stack_v2, list(done["customer_id"])), "the backlog")
        time.sleep(1)  # the sink's last micro-batch
        requests = events.drop_duplicates("customer_id")[["customer_id", "terminal_id"]].copy()
        requests["transaction_id"] = [f"parity-req-{c}" for c in requests["customer_id"]]
        requests["amount"] = 42.5
        requests["event_timestamp"] = pd.Timestamp(datetime.now(UTC))
        assert (requests["event_timestamp"].iloc[0] - now).total_seconds() < 110, "too slow"
        with httpx.Client(base_url=fraud_v2_url, timeout=10) as http:
            for r in requests.itertuples(index=False):
                reply = http.post("/score", json={
                    "transaction_id": r.transaction_id, "customer_id": int(r.customer_id),
                    "terminal_id": int(r.terminal_id), "amount": r.amount,
                    "timestamp": r.event_timestamp.isoformat()})
                assert reply.status_code == 200 and not reply.json()["fallback"], reply.text
        time.sleep(0.5)  # the prediction log flushes every 50 ms
    finally:
        os.killpg(flow.pid, signal.SIGKILL)
        flow.wait()
    logged = {f[b"transaction_id"].decode(): json.loads(f[b"features"])
              for _, f in client.xrange(stack_v2.prediction_stream)
              if f[b"transaction_id"].startswith(b"parity-req-")}
    assert set(logged) == set(requests["transaction_id"])
    served = pd.DataFrame.from_dict(logged, orient="index")

    history = pd.concat([raw[h.COLUMNS], events, warm, done], ignore_index=True)
    history["transaction_id"] = history["transaction_id"].astype(str)
    training = _training_repo(stack_v2, tmp_path, history, until=datetime.now(UTC))
    features = json.loads((stack_v2.artifacts_dir / "fraud" / "metrics.json").read_text()
                          )["features"]
    assert {"cust_tx_count_10m", "cust_amount_sum_1h", "term_tx_count_1h",
            "cust_tx_count_30d", "amount_vs_cust_mean_30d"} <= set(features)
    # Both offline stores a team can choose (DuckDB, the default; Feast's dask file store).
    for offline in ("duckdb", "file"):
        built = point_in_time_features(
            load_store(training.model_copy(update={"offline_store": offline})),
            "fraud_model_v2", requests.reset_index(drop=True)).set_index("transaction_id")
        got = served.loc[built.index, features].astype(float)
        want = built[features].astype(float)
        diff = ~np.isclose(got.to_numpy(), want.to_numpy(), rtol=1e-9, atol=1e-9,
                           equal_nan=True)
        assert not diff.any(), (
            f"training ({offline} offline store) and serving disagree:\n"
            + pd.concat({"served": got[diff.any(axis=1)], "training": want[diff.any(axis=1)]},
                        axis=1).T.to_string())
    # The chunked writer (training sets too large to hold twice; `rtml bench offline`'s 10 M
    # rows) writes the same rows: read back, they match what serving read too.
    files = write_point_in_time(load_store(training), "fraud_model_v2",
                                requests.reset_index(drop=True), tmp_path / "pit",
                                id_column="transaction_id", chunk_days=1)
    written = pd.read_parquet(tmp_path / "pit").set_index("transaction_id")
    assert len(files) >= 1 and sorted(written.index) == sorted(built.index)
    assert np.allclose(written.loc[built.index, features].astype(float).to_numpy(),
                       got.to_numpy(), rtol=1e-9, atol=1e-9, equal_nan=True)
    # The requests cover what the skew was about: windows that decayed since the last payment.
    fresh = want[["cust_tx_count_10m", "cust_tx_count_1h"]]
    assert ((fresh["cust_tx_count_10m"] == 0) & (fresh["cust_tx_count_1h"] > 0)).any()
    assert (fresh["cust_tx_count_10m"] > 0).any()
    quiet = [f"parity-req-{c}" for c in events.groupby("customer_id")["event_timestamp"].max()
             .loc[lambda s: s < now - timedelta(hours=1)].index]
    assert quiet and (want.loc[quiet, "cust_tx_count_1h"] == 0).all()
