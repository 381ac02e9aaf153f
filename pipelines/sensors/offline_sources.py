"""The offline file of the streamed `machine_stats` view exists before anything reads it.

`feast materialize-incremental` (and `rtml materialize`) reads the batch source of every online
view, push-fed ones included, and fails on a missing file. The flow pushes online only; the
offline history is what training writes when it has one. Until then the file is empty and typed,
generated from the view spec (`feature_repo.sensors.specs`).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from feature_repo.sensors.specs import STREAMED
from rtml.features.specs import parquet_schema


def ensure_offline_sources(features_dir: Path) -> list[Path]:
    """Write an empty, typed file for each streamed sensors view that has none yet."""
    features_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for view in STREAMED:
        assert view.offline_file is not None
        path = features_dir / view.offline_file
        if not path.exists():
            pq.write_table(parquet_schema(view).empty_table(), path)
            written.append(path)
    return written
