"""Point-in-time training sets at scale: Feast's offline stores side by side (`rtml bench offline`).

Issue 13 part 1. Training builds its frame with `rtml.features.pit.point_in_time_features`, i.e.
Feast's `get_historical_features` over the fraud feature service (nightly views + the backfill of
the streamed windows); this benchmark times exactly that call for N entity rows on each offline
store and records wall time and peak RSS. Each measurement runs in a fresh process, so its peak
RSS is its own (`ru_maxrss` of that process) and no store's caches help another.

Entity rows are requests drawn from the demo's data (run `make demo` or `rtml data generate` +
`rtml features build` first): a (customer, terminal, amount) of a real payment at a uniformly
random instant after the 30-day warm-up, so every key has history to join and the rows spread
over the whole range the way a training frame's do. Seeded.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rtml.settings import Settings

SERVICE = "fraud_model_v2"
PG_DATABASE = "rtml_bench_offline"
WARMUP_DAYS = 30


def entity_rows(settings: Settings, n: int, *, seed: int = 7) -> pd.DataFrame:
    """`n` requests at random instants, with the keys and amounts of real payments."""
    tx = pd.read_parquet(settings.raw_dir / "transactions.parquet",
                         columns=["customer_id", "terminal_id", "amount", "event_timestamp"])
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(tx), n)
    first = tx["event_timestamp"].min() + pd.Timedelta(days=WARMUP_DAYS)
    span_s = (tx["event_timestamp"].max() - first).total_seconds()
    df = tx.iloc[pick][["customer_id", "terminal_id", "amount"]].reset_index(drop=True)
    df["event_timestamp"] = first + pd.to_timedelta(rng.uniform(0, span_s, n), unit="s")
    df.insert(0, "transaction_id", np.arange(n, dtype=np.int64))
    return df


def measure_one(store: str, rows: int, *, chunk_days: int, repo: Path,
                sink: str = "frame") -> dict[str, Any]:
    """In this process: build the frame once on `store`; seconds, peak RSS, rows and a checksum.

    `sink`: `frame` (`point_in_time_features`, every chunk then their concatenation in memory)
    or `parquet` (`write_point_in_time`, one chunk in memory at a time, written to a scratch
    directory that is removed afterwards).
    """
    from rtml.features.online import load_store
    from rtml.features.pit import point_in_time_features, write_point_in_time

    settings = Settings(scenario="fraud", repo_root=repo, offline_store=store)  # type: ignore[arg-type]
    entity_df = entity_rows(settings, rows)
    feast_store = load_store(settings)
    sums = {"rows": 0, "checksum": 0.0, "features": 0}

    def tally(frame: pd.DataFrame) -> None:
        numeric = frame.select_dtypes("number").drop(columns=["transaction_id"])
        sums["rows"] += len(frame)
        sums["features"] = numeric.shape[1]
        # Equal across stores and sinks when they join the same values (a cheap cross-check).
        sums["checksum"] += float(numeric.fillna(0).to_numpy(dtype=float).sum())

    started = time.perf_counter()
    if sink == "parquet":
        with tempfile.TemporaryDirectory(prefix="rtml-pit-") as scratch:
            write_point_in_time(feast_store, SERVICE, entity_df, Path(scratch),
                                id_column="transaction_id", chunk_days=chunk_days,
                                on_chunk=tally)
            seconds = time.perf_counter() - started
    else:
        tally(point_in_time_features(feast_store, SERVICE, entity_df,
                                     id_column="transaction_id", chunk_days=chunk_days))
        seconds = time.perf_counter() - started
    jvm = _stop_spark() if store == "spark" else {}
    return {"store": store, "sink": sink, "rows": rows, "chunk_days": chunk_days,
            "seconds": round(seconds, 2), "rows_per_s": round(rows / seconds),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            **jvm, "frame_rows": sums["rows"], "features": sums["features"],
            "checksum": round(sums["checksum"], 3)}


def _stop_spark() -> dict[str, Any]:
    """Stop this process's Spark JVM and wait for it to exit; its peak RSS.

    Local Spark runs in a JVM child of this process: unless the process waits for it, its CPU
    time never reaches the benchmark's accounting (the run would count it as another process's)
    and its memory is not in this process's peak RSS. It exits once the gateway is shut down and
    its stdin closed (PySpark's own rule).
    """
    from pyspark import SparkContext

    context = SparkContext._active_spark_context
    if context is not None:
        context.stop()
    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None)
    if gateway is not None:
        gateway.shutdown()
    if proc is not None:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=120)
    return {"jvm_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
                                     / 1024)}


def run_isolated(store: str, rows: int, *, chunk_days: int, repo: Path,
                 timeout_s: float, sink: str = "frame",
                 env: dict[str, str] | None = None) -> dict[str, Any]:
    """`measure_one` in a fresh interpreter; a failure or timeout is recorded, not raised."""
    import os

    cmd = [sys.executable, "-m", "benchmarks.offline_pit", store, str(rows), str(chunk_days),
           str(repo), sink]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return {"store": store, "sink": sink, "rows": rows, "chunk_days": chunk_days,
                "error": f"not finished within {timeout_s:.0f} s (stopped)"}
    if done.returncode != 0:
        return {"store": store, "sink": sink, "rows": rows, "chunk_days": chunk_days,
                "error": (done.stderr.strip().splitlines() or ["?"])[-1][:300],
                "exit": done.returncode}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _repo_copy(settings: Settings, name: str) -> Path:
    """A copy of the repo for another offline store: definitions, a registry copy, linked data.

    Feast ties a view to one kind of source, so each store reads through a registry of its own.
    """
    import shutil

    root = settings.state_dir / "bench" / name
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    for item in ("feature_store.yaml", ".feastignore"):
        shutil.copy(settings.repo_root / item, root / item)
    shutil.copytree(settings.repo_root / "feature_repo", root / "feature_repo",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for item in settings.data_dir.iterdir():
        if item.name == "registry.db":
            shutil.copy(item, root / "data" / item.name)
        elif item.name != "predictions":
            (root / "data" / item.name).symlink_to(item, target_is_directory=item.is_dir())
    return root


def spark_repo(settings: Settings) -> Path:
    """A repo copy whose registry holds Spark sources (`rtml apply` under the profile).

    The data is the original's, published for Spark (`rtml features load-offline`).
    """
    from rtml.features.online import apply_repo
    from rtml.features.sources import publish_for_spark, spark_base

    root = _repo_copy(settings, "offline-spark")
    publish_for_spark(settings.features_dir, root / spark_base())
    apply_repo(settings.model_copy(update={"repo_root": root, "offline_store": "spark"}))
    return root


def postgres_repo(settings: Settings) -> tuple[Path, str]:
    """A repo copy whose registry holds Postgres sources, its tables in a database of its own.

    The team profile's offline side (`rtml features load-offline`, then `rtml apply`), in
    `PG_DATABASE` on the server `settings.offline_postgres` names (re-created each run).
    Returns the copy and the conninfo of its database.
    """
    import psycopg
    from psycopg.conninfo import make_conninfo

    from rtml.features.online import apply_repo
    from rtml.features.sources import load_parquet_tables

    admin = make_conninfo(settings.offline_postgres, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    conninfo = make_conninfo(settings.offline_postgres, dbname=PG_DATABASE)
    root = _repo_copy(settings, "offline-postgres")
    load_parquet_tables(settings.features_dir, conninfo)
    apply_repo(settings.model_copy(update={"repo_root": root, "offline_store": "postgres",
                                           "offline_postgres": conninfo}))
    return root, conninfo


def run(settings: Settings, *, stores: list[str], rows: list[int], chunk_days: list[int],
        timeout_s: float, sinks: list[str] | None = None,
        results_dir: Path | None = None) -> Path:
    """Every (rows, store, chunk, sink) in turn, each in its own process; one results file."""
    from benchmarks.record import RESULTS, Recorder
    from benchmarks.side_by_side import pg_port

    rec = Recorder("offline-pit", settings, model=False)
    repos: dict[str, Path] = {}
    env: dict[str, dict[str, str]] = {}
    for store in stores:
        if store == "spark":
            repos[store] = spark_repo(settings)
        elif store == "postgres":
            repos[store], conninfo = postgres_repo(settings)
            env[store] = {"RTML_OFFLINE_POSTGRES": conninfo}
            port = pg_port(conninfo)
            if port is not None:  # a server on this machine: its join is part of the run
                rec.add_port(port)
        else:
            repos[store] = settings.repo_root
    runs = []
    for n in rows:
        for store in stores:
            for chunk in chunk_days:
                for sink in sinks or ["frame"]:
                    with rec.window(f"{store}-{n}-{chunk}d-{sink}"):
                        got = run_isolated(store, n, chunk_days=chunk, repo=repos[store],
                                           timeout_s=timeout_s, sink=sink,
                                           env=env.get(store))
                    print(json.dumps(got), flush=True)
                    runs.append(got)
    data = pd.read_parquet(settings.raw_dir / "transactions.parquet", columns=["customer_id"])
    return rec.write({"service": SERVICE, "history_rows": len(data),
                      "customers": int(data["customer_id"].nunique()), "runs": runs},
                     out_dir=results_dir or RESULTS)


if __name__ == "__main__":  # the child process of `run_isolated`
    store_, rows_, chunk_, repo_, sink_ = sys.argv[1:6]
    print(json.dumps(measure_one(store_, int(rows_), chunk_days=int(chunk_), repo=Path(repo_),
                                 sink=sink_)))
