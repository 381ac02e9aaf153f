"""Offline twins of the streamed views, so `feast materialize-incremental` has a table to read.

The streaming flow pushes fresh aggregates straight to the online store; its backfill (the same
window functions over history) writes these files for training. Until a backfill has run they
exist empty, with the right schema, because Feast materializes every view and fails on a
missing source file. The schemas are generated from the views' specs
(`feature_repo/fraud/specs.py`), the same declaration the Feast views are built from.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from feature_repo.fraud.specs import STREAMED
from rtml.features.specs import parquet_schema

SCHEMAS: dict[str, pa.Schema] = {view.offline_file: parquet_schema(view)  # type: ignore[misc]
                                 for view in STREAMED}


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
