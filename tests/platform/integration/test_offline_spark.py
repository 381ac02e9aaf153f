"""Beyond one machine, offline: Feast's Spark offline store (issue 13, part 1).

Spark in local mode (the driver's JVM in this process; `RTML_OFFLINE_SPARK_MASTER` names a
cluster instead) reads the Parquet sources as `rtml features load-offline` publishes them
(microsecond timestamps); `rtml apply` under `RTML_OFFLINE_STORE=spark`
registers Spark sources, and a point-in-time training frame joined by Spark equals the one DuckDB
joins (another engine, the same rule).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rtml.features.online import in_repo, load_store
from rtml.features.pit import point_in_time_features
from rtml.settings import Settings
from tests.support.procs import BIN, run
from tests.support.sandbox import repo_copy

pytestmark = pytest.mark.integration


def test_spark_offline_store_joins_what_duckdb_joins(stack: Settings, env: dict[str, str],
                                                     tmp_path: Path):
    root = repo_copy(stack, tmp_path)
    profile = {**env, "RTML_REPO_ROOT": str(root), "RTML_OFFLINE_STORE": "spark",
               "RTML_OFFLINE_SPARK_MASTER": "local[2]"}
    run([str(BIN / "rtml"), "features", "load-offline"], env=profile, cwd=root)
    # Every source is published for Spark with all its rows, timestamps in microseconds (Spark
    # refuses Parquet's nanosecond timestamps).
    sources = sorted(stack.features_dir.glob("*.parquet"))
    assert sources
    for path in sources:
        copy = root / "data" / "spark" / path.name
        assert pq.read_metadata(copy).num_rows == pq.read_metadata(path).num_rows, path.name
        stamps = [f.type for f in pq.read_schema(copy) if pa.types.is_timestamp(f.type)]
        assert stamps and all(t.unit == "us" for t in stamps), (path.name, stamps)
    run([str(BIN / "rtml"), "apply"], env=profile, cwd=root)
    spark = load_store(Settings(scenario="fraud", repo_root=root,
                                redis_address=stack.redis_address, offline_store="spark",
                                offline_spark_master="local[2]"))
    view = spark.get_feature_view("customer_stats")
    assert type(view.batch_source).__name__ == "SparkSource"
    duck = load_store(Settings(scenario="fraud", repo_root=stack.repo_root,
                               redis_address=stack.redis_address, offline_store="duckdb"))

    # Requests at random instants over the data, with keys and amounts of real payments.
    tx = pd.read_parquet(stack.raw_dir / "transactions.parquet")
    rng = np.random.default_rng(12)
    pick = tx.iloc[rng.integers(0, len(tx), 300)].reset_index(drop=True)
    first, last = tx["event_timestamp"].min() + pd.Timedelta(days=30), tx["event_timestamp"].max()
    requests = pick[["customer_id", "terminal_id", "amount"]].copy()
    requests["event_timestamp"] = first + (last - first) * rng.uniform(0, 1, len(pick))
    requests.insert(0, "transaction_id", [f"sp-{i}" for i in range(len(pick))])

    joined = {}
    for name, store in (("spark", spark), ("duckdb", duck)):
        with in_repo(store):
            joined[name] = point_in_time_features(store, "fraud_model_v2", requests,
                                                  id_column="transaction_id"
                                                  ).set_index("transaction_id")
    features = [f.name for p in spark.get_feature_service("fraud_model_v2")
                .feature_view_projections for f in p.features]
    sp, dk = (joined[k].loc[requests["transaction_id"], features].astype(float)
              for k in ("spark", "duckdb"))
    assert len(sp) == len(requests) and sp.notna().to_numpy().any()
    same = np.isclose(sp.to_numpy(), dk.to_numpy(), rtol=1e-9, atol=1e-9, equal_nan=True)
    assert same.all(), pd.concat({"spark": sp[~same.all(axis=1)],
                                  "duckdb": dk[~same.all(axis=1)]}, axis=1).T.to_string()
