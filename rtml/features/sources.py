"""Batch sources that follow the offline-store profile: Parquet files, or Postgres tables of them.

Feast ties a feature view to one kind of source: a `FileSource` for the file and DuckDB offline
stores, a `PostgreSQLSource` for the Postgres one. The feature repos declare each batch source
once through `batch_source`, which gives the kind the profile asks for
(`RTML_OFFLINE_STORE=postgres` when `feast apply` imports the definitions). The Parquet files
under `data/features/` stay the one place the pipelines write; `load_parquet_tables` copies each
into the table `batch_source` names for it (`rtml features load-offline`), in one transaction per
table, so a reader never sees half a table.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

PROFILE_ENV = "RTML_OFFLINE_STORE"
TABLE_PREFIX = "rtml_"


def postgres_profile() -> bool:
    """True when the offline store is Postgres (read when the definitions are imported)."""
    return os.environ.get(PROFILE_ENV, "").strip().lower() == "postgres"


def table_for(path: str | Path) -> str:
    """The table of a Parquet source (`…/customer_stats.parquet`: `rtml_customer_stats`)."""
    stem = Path(path).name.split(".")[0]
    return TABLE_PREFIX + re.sub(r"[^a-z0-9_]", "_", stem.lower())


def batch_source(name: str, path: str, *, timestamp_field: str = "event_timestamp",
                 created_timestamp_column: str = "") -> Any:
    """A Feast batch source for `path` (relative to the repo root) in the current profile."""
    if postgres_profile():
        from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
            PostgreSQLSource,
        )

        return PostgreSQLSource(name=name, table=table_for(path), timestamp_field=timestamp_field,
                                created_timestamp_column=created_timestamp_column)
    from feast import FileSource

    return FileSource(name=name, path=path, timestamp_field=timestamp_field,
                      created_timestamp_column=created_timestamp_column)


def _pg_type(t: pa.DataType) -> str:
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _pg_type(t.value_type) + "[]"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_floating(t):
        return "DOUBLE PRECISION"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "TEXT"
    raise TypeError(f"no Postgres column type for Arrow type {t}")


def _pg_array(values: list | None) -> str | None:
    if values is None:
        return None
    items = []
    for v in values:
        if v is None:
            items.append("NULL")
        elif isinstance(v, str):
            items.append('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            items.append(repr(v))
    return "{" + ",".join(items) + "}"


def _for_csv(table: pa.Table) -> pa.Table:
    """Columns Postgres' CSV COPY reads: list columns as array literals, times in UTC."""
    cols = []
    for name in table.column_names:
        col = table[name]
        if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
            col = pa.array([_pg_array(v) for v in col.to_pylist()], type=pa.string())
        elif pa.types.is_timestamp(col.type):
            col = pc.cast(col, pa.timestamp("us", tz="UTC"))
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def load_parquet_tables(features_dir: Path, dsn: str, *,
                        batch_rows: int = 200_000) -> dict[str, int]:
    """Copy every `*.parquet` under `features_dir` into its table (replaced); rows per table."""
    import psycopg
    import pyarrow.csv as pacsv

    loaded: dict[str, int] = {}
    with psycopg.connect(dsn) as conn:
        for path in sorted(features_dir.glob("*.parquet")):
            table = table_for(path)
            pf = pq.ParquetFile(path)
            schema = pf.schema_arrow
            columns = ", ".join(f'"{f.name}" {_pg_type(f.type)}' for f in schema)
            rows = 0
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(f'DROP TABLE IF EXISTS "{table}"')
                cur.execute(f'CREATE TABLE "{table}" ({columns})')
                names = ", ".join(f'"{f.name}"' for f in schema)
                with cur.copy(f'COPY "{table}" ({names}) FROM STDIN WITH (FORMAT csv)') as copy:
                    for batch in pf.iter_batches(batch_size=batch_rows):
                        buf = io.BytesIO()
                        pacsv.write_csv(_for_csv(pa.Table.from_batches([batch])), buf,
                                        pacsv.WriteOptions(include_header=False))
                        copy.write(buf.getvalue())
                        rows += batch.num_rows
                # The point-in-time join filters and sorts on the timestamp per entity.
                if "event_timestamp" in schema.names:
                    cur.execute(f'CREATE INDEX ON "{table}" ("event_timestamp")')
                cur.execute(f'ANALYZE "{table}"')
            loaded[table] = rows
    return loaded
