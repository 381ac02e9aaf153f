"""Batch sources that follow the offline-store profile: Parquet, Postgres tables, or Spark.

Feast ties a feature view to one kind of source: a `FileSource` for the file and DuckDB offline
stores, a `PostgreSQLSource` for the Postgres one, a `SparkSource` for Spark. The feature repos
declare each batch source once through `batch_source`, which gives the kind the profile asks for
(`RTML_OFFLINE_STORE=postgres` or `spark` when `feast apply` imports the definitions). The
Parquet files under `data/features/` stay the one place the pipelines write; Spark reads them
where they are, and `load_parquet_tables` copies each into the table `batch_source` names for it
(`rtml features load-offline`), in one transaction per table, so a reader never sees half a table.
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
SPARK_PATH_ENV = "RTML_OFFLINE_SPARK_PATH"
SPARK_PATH_DEFAULT = "data/spark"
TABLE_PREFIX = "rtml_"


def profile() -> str:
    """The offline-store profile the definitions are imported under ('' for the file kinds)."""
    return os.environ.get(PROFILE_ENV, "").strip().lower()


def postgres_profile() -> bool:
    """True when the offline store is Postgres (read when the definitions are imported)."""
    return profile() == "postgres"


def table_for(path: str | Path) -> str:
    """The table of a Parquet source (`…/customer_stats.parquet`: `rtml_customer_stats`)."""
    stem = Path(path).name.split(".")[0]
    return TABLE_PREFIX + re.sub(r"[^a-z0-9_]", "_", stem.lower())


def spark_path_for(path: str | Path) -> str:
    """Where Spark reads a Parquet source: its copy under `RTML_OFFLINE_SPARK_PATH`.

    Relative (the default `data/spark`): against the repo root; on a cluster a URL every
    executor reads (`s3a://bucket/rtml`, `hdfs://…`).
    """
    return f"{spark_base()}/{Path(path).name}"


def spark_base() -> str:
    """`RTML_OFFLINE_SPARK_PATH` (default `data/spark`), without a trailing slash."""
    return (os.environ.get(SPARK_PATH_ENV, "").strip() or SPARK_PATH_DEFAULT).rstrip("/")


def batch_source(name: str, path: str, *, timestamp_field: str = "event_timestamp",
                 created_timestamp_column: str = "") -> Any:
    """A Feast batch source for `path` (relative to the repo root) in the current profile."""
    if postgres_profile():
        from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import (
            PostgreSQLSource,
        )

        return PostgreSQLSource(name=name, table=table_for(path), timestamp_field=timestamp_field,
                                created_timestamp_column=created_timestamp_column)
    if profile() == "spark":
        # The Parquet files as `publish_for_spark` copies them (relative paths: against the
        # repo root, where `in_repo` runs every offline read and so starts the Spark driver).
        from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import (
            SparkSource,
        )

        return SparkSource(name=name, path=spark_path_for(path), file_format="parquet",
                           timestamp_field=timestamp_field,
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


def publish_for_spark(features_dir: Path, dest: Path) -> dict[str, int]:
    """Copy every `*.parquet` under `features_dir` to `dest`, timestamps in microseconds.

    Spark refuses Parquet's nanosecond timestamps (PARQUET_TYPE_ILLEGAL, INT64
    TIMESTAMP(NANOS)), which pandas and Arrow write by default; microseconds are what Spark,
    Hive and every warehouse read. Each file is written beside its final name and renamed, so a
    reader never sees half a file. Returns rows per file name.
    """
    dest.mkdir(parents=True, exist_ok=True)
    done: dict[str, int] = {}
    for path in sorted(features_dir.glob("*.parquet")):
        table = pq.read_table(path)
        fields = [pa.field(f.name, pa.timestamp("us", tz=f.type.tz), f.nullable)
                  if pa.types.is_timestamp(f.type) and f.type.unit == "ns" else f
                  for f in table.schema]
        table = table.cast(pa.schema(fields, metadata=table.schema.metadata), safe=False)
        tmp = dest / f".{path.name}.tmp"
        pq.write_table(table, tmp)
        tmp.replace(dest / path.name)
        done[path.name] = table.num_rows
    return done
