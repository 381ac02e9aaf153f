"""`rtml features build`, `rtml apply`, `rtml materialize`: offline sources, the online store."""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from rtml.cli.common import need_redis, parse_every, settings
from rtml.redis import connect

app = typer.Typer(no_args_is_help=True, help="Batch features.")


@app.command("build")
def features_build(
    scenario: Annotated[str, typer.Option(help="fraud or recs (its newest nightly snapshots)")]
    = "fraud",
) -> None:
    """Nightly batch features and the streamed windows' backfill: the Feast offline sources.

    `feast materialize` reads every online view's source, other scenarios' too: those not built
    here are written empty, with their schema.
    """
    from rtml.cli.scenarios import REGISTRY

    t0 = time.perf_counter()
    if scenario == "recs":
        from pipelines.recs import batch_features as recs_features
        from pipelines.recs import stream_backfill as recs_streamed

        s = settings("recs")
        paths = recs_features.build(s.data_dir / "recs", s.features_dir)
        paths["item_stock"] = recs_streamed.write_stock_at_end(s.data_dir / "recs",
                                                               s.features_dir)
    elif scenario == "fraud":
        from pipelines.fraud.batch_features import build
        from pipelines.fraud.windows import write_backfill

        s = settings()
        paths = build(s.raw_dir / "transactions.parquet", s.features_dir)
        paths.update(write_backfill(s.raw_dir / "transactions.parquet", s.features_dir))
    else:
        raise typer.BadParameter(f"--scenario {scenario!r}: fraud or recs")
    REGISTRY.ensure_offline_sources(s.features_dir)
    typer.echo(f"features in {time.perf_counter() - t0:.1f}s -> "
               + ", ".join(str(p) for p in paths.values()))


@app.command("load-offline")
def load_offline() -> None:
    """Copy the Parquet offline sources into the offline store: Postgres tables, or Spark's files.

    The team profile (`RTML_OFFLINE_STORE=postgres`, docs in the README's "Production profile"),
    or Spark (`RTML_OFFLINE_STORE=spark`: microsecond timestamps under RTML_OFFLINE_SPARK_PATH):
    run after `rtml features build` (and `rtml data generate` for other scenarios), before
    `rtml apply` and training. Each table is replaced in one transaction.
    """
    from rtml.features.sources import load_parquet_tables, publish_for_spark, spark_base

    s = settings()
    t0 = time.perf_counter()
    if s.offline_store == "spark":
        base = spark_base()
        if "://" in base:
            typer.echo(f"rtml: {base} is remote: copy {s.features_dir}/*.parquet there with "
                       "microsecond timestamps (this command writes local folders only)", err=True)
            raise typer.Exit(2)
        dest = s.repo_root / base  # an absolute base stays itself
        for name, rows in publish_for_spark(s.features_dir, dest).items():
            typer.echo(f"  {dest / name}: {rows:,} rows")
        typer.echo(f"published for Spark in {time.perf_counter() - t0:.1f}s")
        return
    try:
        loaded = load_parquet_tables(s.features_dir, s.offline_postgres)
    except Exception as exc:  # psycopg.OperationalError and friends: say what was tried
        typer.echo(f"rtml: could not load the offline tables into Postgres at "
                   f"{s.offline_postgres!r} ({type(exc).__name__}: {str(exc).strip()[:200]}); "
                   "start Postgres and create the database, or set RTML_OFFLINE_POSTGRES",
                   err=True)
        raise typer.Exit(1) from None
    for table, rows in loaded.items():
        typer.echo(f"  {table}: {rows:,} rows")
    typer.echo(f"loaded {len(loaded)} tables in {time.perf_counter() - t0:.1f}s")


def apply() -> None:
    """`feast apply` against the configured Redis (registers views, creates online tables)."""
    from rtml.features.online import apply_repo

    s = settings()
    need_redis(s)
    apply_repo(s)


def materialize(
    every: Annotated[str | None, typer.Option(help="repeat, e.g. 24h or 30m")] = None,
    cron: Annotated[bool, typer.Option(help="print the crontab line and exit")] = False,
) -> None:
    """Load the nightly features into Redis up to now, once or on a schedule.

    Like `feast materialize-incremental`, but incremental from what *this* Redis holds (recorded
    in the store, `rtml.features.online_store`), not from the registry's last run: a new or
    flushed Redis gets a full load of every value still within its view's TTL.
    """
    s = settings()
    if cron:
        exe = os.path.join(os.path.dirname(sys.executable), "rtml")
        typer.echo(f"15 2 * * * cd {s.repo_root} && {exe} materialize >> "
                   f"{s.state_dir / 'materialize.log'} 2>&1")
        return
    need_redis(s)

    from rtml.features.online import in_repo, load_store
    from rtml.features.online_store import materialize_window, record_materialized

    client = connect(s)
    period = parse_every(every) if every else None
    while True:
        t0 = time.perf_counter()
        store = load_store(s)
        now = datetime.now(UTC)
        max_ttl = max((v.ttl for v in store.list_feature_views() if v.online and v.ttl),
                      default=timedelta(days=1))
        start, why = materialize_window(client, now=now, max_ttl=max_ttl)
        typer.echo(f"materialize into {s.redis_address}: {why}", err=True)
        with in_repo(store):
            store.materialize(start_date=start, end_date=now)
        record_materialized(client, now)
        typer.echo(f"materialized in {time.perf_counter() - t0:.1f}s")
        if period is None:
            return
        time.sleep(max(0.0, period - (time.perf_counter() - t0)))
