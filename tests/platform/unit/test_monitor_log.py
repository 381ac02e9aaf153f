"""The monitor reads any scenario's log: its own columns come from its spec, not from the kit."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd

from rtml.monitor.data import LIGHT, load_log


def _log(tmp_path, rows):
    part = tmp_path / "date=2026-03-10"
    part.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(part / "a.parquet", index=False)
    return tmp_path


def test_a_scenarios_own_columns_are_kept_for_every_row_and_read_as_numbers(tmp_path):
    at = pd.Timestamp("2026-03-10T12:00Z")
    rows = [{"reading_id": f"r-{i}", "temperature": str(20 + i), "logged_at": at,
             "event_timestamp": at, "score": 0.1 * i, "decision": "ok", "fallback": False,
             "model_version": "m:1", "features_ms": 1.0, "model_ms": 0.5, "total_ms": "2.5",
             "features": json.dumps({"mean_5m": float(i)}),
             "feature_event_times": json.dumps({"sensor_fresh": at.timestamp() - 30})}
            for i in range(4)]
    data = load_log(_log(tmp_path, rows), since=datetime(2026, 3, 10, tzinfo=UTC),
                    sample_rows=2, columns=("reading_id", "temperature"),
                    numeric=("temperature",))
    assert data.total == 4 and data.sampled and len(data.sample) == 2
    assert data.rows["reading_id"].tolist() == ["r-0", "r-1", "r-2", "r-3"]
    assert data.rows["temperature"].tolist() == [20.0, 21.0, 22.0, 23.0]
    assert data.rows["total_ms"].tolist() == [2.5] * 4  # the kit's numbers, as before
    assert data.rows["fallback_reason"].isna().all()  # a kit column a batch lacks: None
    assert data.sample["age_s:sensor_fresh"].tolist() == [30.0, 30.0]
    assert set(data.sample["mean_5m"]) <= {0.0, 1.0, 2.0, 3.0}


def test_the_kit_names_no_scenario_column():
    assert not {"transaction_id", "amount", "customer_id"} & set(LIGHT)
