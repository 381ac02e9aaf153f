"""The team profile's offline side: Postgres offline store + SQL registry (issue 13, part 1).

On the test stack's fraud data: `rtml features load-offline` copies every Parquet source into
Postgres (127.0.0.1:5432, databases of this test's own), `rtml apply` registers the definitions
in a SQL registry with Postgres batch sources, and a point-in-time training frame joined by
Postgres equals the one DuckDB joins from the Parquet files (another engine, the same rule).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyarrow.parquet as pq
import pytest

from rtml.features.online import load_store
from rtml.features.pit import point_in_time_features
from rtml.features.sources import table_for
from rtml.settings import Settings
from tests.support.procs import BIN, run
from tests.support.sandbox import repo_copy

pytestmark = pytest.mark.integration

ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """An offline database and a registry database of this test's own, dropped afterwards."""
    tag = uuid.uuid4().hex[:8]
    names = (f"rtml_offline_{tag}", f"rtml_registry_{tag}")
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    yield names
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_postgres_offline_store_and_sql_registry_join_what_duckdb_joins(
        stack: Settings, env: dict[str, str], databases: tuple[str, str], tmp_path: Path):
    offline_db, registry_db = databases
    root = repo_copy(stack, tmp_path)
    conninfo = f"host=127.0.0.1 port=5432 user=postgres dbname={offline_db}"
    registry = f"postgresql+psycopg://postgres@127.0.0.1:5432/{registry_db}"
    profile = {**env, "RTML_REPO_ROOT": str(root), "RTML_OFFLINE_STORE": "postgres",
               "RTML_OFFLINE_POSTGRES": conninfo, "RTML_REGISTRY_URL": registry}

    out = run([str(BIN / "rtml"), "features", "load-offline"], env=profile, cwd=root)
    # Every Parquet source is a table with all its rows (counted from the files' own metadata).
    sources = sorted(stack.features_dir.glob("*.parquet"))
    assert sources
    with psycopg.connect(conninfo) as conn:
        for path in sources:
            rows = conn.execute(f'SELECT count(*) FROM "{table_for(path)}"').fetchone()[0]
            assert rows == pq.read_metadata(path).num_rows, (path.name, rows, out)

    run([str(BIN / "rtml"), "apply"], env=profile, cwd=root)
    settings = Settings(scenario="fraud", repo_root=root, redis_address=stack.redis_address,
                        offline_store="postgres", offline_postgres=conninfo,
                        registry_url=registry)
    pg_store = load_store(settings)
    # The registry is in Postgres, and it holds Postgres sources for the views.
    view = pg_store.get_feature_view("customer_stats")
    assert type(view.batch_source).__name__ == "PostgreSQLSource"
    assert view.batch_source.get_table_query_string() in {table_for(p) for p in sources}
    with psycopg.connect(f"host=127.0.0.1 port=5432 user=postgres dbname={registry_db}") as conn:
        assert conn.execute("SELECT count(*) FROM feature_views").fetchone()[0] >= 4

    # Requests at random instants over the data, with keys and amounts of real payments.
    tx = pd.read_parquet(stack.raw_dir / "transactions.parquet")
    rng = np.random.default_rng(11)
    pick = tx.iloc[rng.integers(0, len(tx), 300)].reset_index(drop=True)
    first, last = tx["event_timestamp"].min() + pd.Timedelta(days=30), tx["event_timestamp"].max()
    requests = pick[["customer_id", "terminal_id", "amount"]].copy()
    requests["event_timestamp"] = first + (last - first) * rng.uniform(0, 1, len(pick))
    requests.insert(0, "transaction_id", [f"pg-{i}" for i in range(len(pick))])

    joined = {}
    for name, store in (("postgres", pg_store),
                        ("duckdb", load_store(Settings(scenario="fraud", repo_root=stack.repo_root,
                                                       redis_address=stack.redis_address,
                                                       offline_store="duckdb")))):
        joined[name] = point_in_time_features(store, "fraud_model_v2", requests,
                                              id_column="transaction_id"
                                              ).set_index("transaction_id")
    features = [f.name for p in pg_store.get_feature_service("fraud_model_v2")
                .feature_view_projections for f in p.features]
    pg, duck = (joined[k].loc[requests["transaction_id"], features].astype(float)
                for k in ("postgres", "duckdb"))
    assert len(pg) == len(requests) and pg.notna().to_numpy().any()
    same = np.isclose(pg.to_numpy(), duck.to_numpy(), rtol=1e-9, atol=1e-9, equal_nan=True)
    assert same.all(), pd.concat({"postgres": pg[~same.all(axis=1)],
                                  "duckdb": duck[~same.all(axis=1)]}, axis=1).T.to_string()
