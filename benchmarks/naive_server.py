"""*naive*: the seed article's approach — per request, aggregate the customer's last 30 days in SQL.

    python -m benchmarks.naive_server --port 3101 --table tx_...   (the harness starts it)

The generated transactions (`data/raw/transactions.parquet`) are copied into one Postgres table
with covering B-tree indexes on (customer_id, ts) and (terminal_id, ts), then ANALYZEd, so each
request is two index range scans, not a table scan: a fair naive, not a straw man. One SQL
statement (one round trip) computes every feature the model's FeatureService lists, with the
same windows as the nightly job and the stream (terminal windows shifted by the 7-day label
delay), relative to the request's timestamp; then the fraud service's own model code scores it
(`benchmarks.model`: the same backend choice, TreeSHAP reasons on one thread).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.httpapp import make_app, serve
from benchmarks.model import answer_timed, load_model
from bentos.fraud.model import FraudModel
from feature_repo.fraud.request_features import request_features

DEFAULT_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=rtml_bench"
LABEL_DELAY = "7 days"


def _window(col: str, since: str, agg: str, name: str, until: str = "") -> str:
    cond = f"ts >= %(t)s - interval '{since}'" + (f" AND ts < %(t)s - interval '{until}'"
                                                    if until else "")
    if agg == "count":
        return f"count(*) FILTER (WHERE {cond}) AS {name}"
    return f"coalesce({agg}({col}) FILTER (WHERE {cond}), 0) AS {name}"


REQUEST_FEATURES = ("tx_amount", "amount_vs_cust_mean_30d")  # from the request, not SQL


def sql_features() -> list[str]:
    """The feature columns `feature_sql` returns, in order."""
    return re.findall(r" AS (\w+)", feature_sql("t"))


def feature_sql(table: str) -> str:
    """The one statement: customer and terminal aggregates as of %(t)s, in one round trip."""
    cust = []
    for w, since in (("1d", "1 day"), ("7d", "7 days"), ("30d", "30 days")):
        cust += [_window("amount", since, "count", f"cust_tx_count_{w}"),
                 _window("amount", since, "avg", f"cust_mean_amount_{w}")]
    for w, since in (("10m", "10 minutes"), ("1h", "1 hour")):
        cust += [_window("amount", since, "count", f"cust_tx_count_{w}"),
                 _window("amount", since, "sum", f"cust_amount_sum_{w}"),
                 _window("amount", since, "avg", f"cust_mean_amount_{w}")]
    term = [_window("", "1 hour", "count", "term_tx_count_1h")]
    for w, days in (("1d", 1), ("7d", 7), ("30d", 30)):
        since = f"{days + 7} days"
        term += [_window("", since, "count", f"term_tx_count_{w}", LABEL_DELAY),
                 _window("is_fraud", since, "avg", f"term_fraud_rate_{w}", LABEL_DELAY)]
    return (
        f"SELECT * FROM (SELECT {', '.join(cust)} FROM {table} WHERE customer_id = %(c)s "
        f"AND ts >= %(t)s - interval '30 days' AND ts < %(t)s) customer_rows, "
        f"(SELECT {', '.join(term)} FROM {table} WHERE terminal_id = %(term)s "
        f"AND ts >= %(t)s - interval '37 days' AND ts < %(t)s) terminal_rows")


def table_name(parquet: Path) -> str:
    """A table per dataset (path, size, mtime), so runs on different data never collide."""
    st = parquet.stat()
    key = f"{parquet.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()
    return "tx_" + hashlib.sha1(key).hexdigest()[:12]


def ensure_database(dsn: str) -> None:
    """Create the DSN's database when Postgres answers but it does not exist yet."""
    import psycopg

    params = psycopg.conninfo.conninfo_to_dict(dsn)
    try:
        psycopg.connect(dsn, connect_timeout=3).close()
        return
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    admin = psycopg.conninfo.make_conninfo(dsn, dbname="postgres")
    with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE DATABASE "{params["dbname"]}"')


def load_transactions(dsn: str, parquet: Path, table: str) -> int:
    """Copy the transactions into `table` (once per dataset), indexed; returns its row count."""
    import psycopg

    ensure_database(dsn)
    tx = pd.read_parquet(parquet, columns=["transaction_id", "event_timestamp", "customer_id",
                                           "terminal_id", "amount", "is_fraud"])
    with psycopg.connect(dsn, connect_timeout=3) as conn:
        done = conn.execute("SELECT obj_description(to_regclass(%s), 'pg_class')",
                            (table,)).fetchone()
        if done and done[0] == f"rows={len(tx)}":
            return len(tx)
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (transaction_id bigint PRIMARY KEY, "
                     "ts timestamptz NOT NULL, customer_id bigint NOT NULL, "
                     "terminal_id bigint NOT NULL, amount double precision NOT NULL, "
                     "is_fraud smallint NOT NULL)")
        buf = io.StringIO()
        tx.to_csv(buf, index=False, header=False, date_format="%Y-%m-%dT%H:%M:%S%z")
        with conn.cursor().copy(f"COPY {table} FROM STDIN WITH (FORMAT csv)") as copy:
            copy.write(buf.getvalue())
        conn.execute(f"CREATE INDEX ON {table} (customer_id, ts) INCLUDE (amount)")
        conn.execute(f"CREATE INDEX ON {table} (terminal_id, ts) INCLUDE (is_fraud)")
        conn.execute(f"COMMENT ON TABLE {table} IS 'rows={len(tx)}'")
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"VACUUM ANALYZE {table}")  # fresh statistics and a visibility map
    return len(tx)


class NaiveScorer:
    """A small connection pool, the one feature statement, the model."""

    def __init__(self, *, dsn: str, table: str, model: FraudModel, connections: int = 4
                 ) -> None:
        self.dsn, self.sql, self.model, self.size = dsn, feature_sql(table), model, connections
        self.pool: asyncio.Queue = asyncio.Queue()

    async def open(self) -> None:
        """Open the pool (server-side prepared statements from the first execution)."""
        import psycopg

        for _ in range(self.size):
            conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True,
                                                         prepare_threshold=0)
            self.pool.put_nowait(conn)

    async def __call__(self, tx: dict[str, Any], timings: dict[str, float],
                       notes: dict[str, str]) -> dict[str, Any]:
        t0 = time.perf_counter()
        conn = await self.pool.get()
        try:
            cur = await conn.execute(self.sql, {"c": tx["customer_id"], "term": tx["terminal_id"],
                                                "t": tx["timestamp"]})
            row = await cur.fetchone()
            names = [d.name for d in cur.description]
        finally:
            self.pool.put_nowait(conn)
        values = {n: float(v) for n, v in zip(names, row, strict=True)}
        values.update(request_features(tx["amount"], values["cust_mean_amount_30d"]))
        return answer_timed(self.model, tx["transaction_id"], values, t0=t0, timings=timings,
                            notes=notes)


def main() -> None:
    """Serve /score from Postgres aggregates (the table must already be loaded)."""
    from rtml.settings import Settings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--dsn", default=DEFAULT_DSN)
    p.add_argument("--table", required=True)
    args = p.parse_args()
    model = load_model(Settings(scenario="fraud"))
    known = {*sql_features(), *REQUEST_FEATURES}
    unknown = [f for f in model.features if f not in known]
    if unknown:
        raise SystemExit(f"naive: no SQL for the model's features {unknown}")
    scorer = NaiveScorer(dsn=args.dsn, table=args.table, model=model)
    serve(make_app(scorer, startup=scorer.open), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
