"""The offline file of the streamed `machine_stats` view exists before anything reads it.

`feast materialize-incremental` (and `rtml materialize`) reads the batch source of every online
view, push-fed ones included, and fails on a missing file. The flow pushes online only; the
offline history is what training writes when it has one. Until then the file is empty and typed,
generated from the view spec (`feature_repo.sensors.specs`).
"""

from __future__ import annotations

from pathlib import Path

from feature_repo.sensors.specs import STREAMED
from rtml.features.specs import write_empty_sources


def ensure_offline_sources(features_dir: Path) -> list[Path]:
    """Write an empty, typed file for each streamed sensors view that has none yet."""
    return write_empty_sources(STREAMED, features_dir)
