"""`feast materialize` over every view works with the streamed `machine_stats` view applied.

Feast reads each online view's batch source, push-fed ones included; `rtml features build`
writes the sensors view's file empty and typed until training writes a history.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq

from feature_repo.sensors.specs import MACHINE_STATS
from pipelines.sensors.offline_sources import ensure_offline_sources
from rtml.features.online import load_store
from rtml.features.specs import parquet_schema
from rtml.settings import Settings


def test_the_empty_offline_file_is_typed_and_materialize_reads_it(sensors: Settings) -> None:
    path = sensors.features_dir / "machine_stats.parquet"
    ensure_offline_sources(sensors.features_dir)
    assert pq.read_schema(path) == parquet_schema(MACHINE_STATS)
    assert pq.read_schema(path).field("machine_channel").type == "string"
    assert ensure_offline_sources(sensors.features_dir) == []  # never overwrites a history
    now = datetime.now(UTC)
    load_store(sensors).materialize(start_date=now - timedelta(hours=1), end_date=now,
                                    feature_views=["machine_stats"])
