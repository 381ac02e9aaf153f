"""Offline twins of the streamed views, so `feast materialize-incremental` has a table to read.

The streaming flow pushes fresh aggregates straight to the online store; its backfill (the same
aggregation functions over history) writes these files for training. Until a backfill has run
they exist empty, with the right schema, because Feast materializes every view and fails on a
missing source file.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

_TS = pa.timestamp("ns", tz="UTC")
SCHEMAS: dict[str, pa.Schema] = {
    "customer_fresh.parquet": pa.schema(
        [("customer_id", pa.int64()), ("event_timestamp", _TS)]
        + [(f"cust_tx_count_{w}", pa.int64()) for w in ("10m", "1h")]
        + [
            (f"cust_{kind}_{w}", pa.float64())
            for w in ("10m", "1h")
            for kind in ("amount_sum", "mean_amount")
        ]
    ),
    "terminal_fresh.parquet": pa.schema(
        [("terminal_id", pa.int64()), ("event_timestamp", _TS), ("term_tx_count_1h", pa.int64())]
    ),
}


def ensure_fresh_sources(features_dir: Path) -> list[Path]:
    """Write an empty, typed file for each streamed view that has no backfill yet."""
    features_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in SCHEMAS.items():
        path = features_dir / name
        if not path.exists():
            pq.write_table(schema.empty_table(), path)
            written.append(path)
    return written
