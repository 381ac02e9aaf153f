"""`rtml monitor run --model sensors` on a real Valkey: drift per machine type, alert spikes.

The plant's history (the drift reference) is written where `rtml data generate --scenario
sensors` writes it; recent readings and alerts are `XADD`ed to the real streams; the command runs
as a user runs it and its summary and dashboard page are read back.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pandas as pd

from pipelines.sensors.alerts import Alert
from pipelines.sensors.streams import ALERT_STREAM, encode, partition_of, stream_key
from rtml.redis import connect
from rtml.settings import Settings
from tests.sensors.sample import readings

BIN = Path(__file__).resolve().parents[3] / ".venv" / "bin"
MACHINES, CHANNELS = ["press-1", "pump-1"], ["temperature", "current"]
PARTITIONS = 4


def test_monitor_flags_the_drifted_type_and_the_spiking_machine(
        sensors: Settings, env: dict[str, str]) -> None:
    now = time.time()
    # History: both machines calm (i.i.d. noise around their levels), 5 min at 4 Hz.
    history, _ = readings(machines=MACHINES, channels=CHANNELS, seconds=300, spikes=0,
                          t0=now - 7200, seed=1)
    raw = sensors.raw_dir / "sensors"
    raw.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(history).rename(columns={"timestamp": "ts"}).assign(anomaly="").to_parquet(
        raw / "readings.parquet", index=False)
    # Now: the press as before; the pump's every channel 3 (6 noise sigmas) higher.
    recent, _ = readings(machines=MACHINES, channels=CHANNELS, seconds=300, spikes=0,
                         t0=now - 300, seed=2)
    client = connect(sensors, decode_responses=True)
    pipe = client.pipeline(transaction=False)
    for r in recent:
        value = r["value"] + (3.0 if r["machine_id"] == "pump-1" else 0.0)
        pipe.xadd(stream_key(partition_of(r["machine_id"], PARTITIONS)),
                  encode(machine_id=r["machine_id"], channel=r["channel"], ts=r["timestamp"],
                         value=value, reading_id=r["reading_id"]))
    # Alerts: five on the press within the last minutes (a spike), one on the pump.
    for i, machine in enumerate(["press-1"] * 5 + ["pump-1"]):
        alert = Alert(alert_id=f"mon-{i}", machine_id=machine, channel="temperature",
                      severity="high", score=9.0, drivers={"z": 9.0}, reading_id=f"r{i}",
                      ts=now - 60 + i, raised_at=pd.Timestamp.now(tz="UTC").isoformat())
        pipe.xadd(ALERT_STREAM, alert.fields())
    pipe.execute()

    done = subprocess.run([str(BIN / "rtml"), "monitor", "run", "--model", "sensors"],
                          env={**env, "RTML_SENSORS__STREAM_PARTITIONS": str(PARTITIONS)},
                          cwd=sensors.repo_root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr  # 1: a check failed
    assert "readings" in done.stdout and "FAIL alerts: alert spike" in done.stdout, done.stdout
    summary = json.loads((sensors.reports_dir / "sensors" / "latest.json").read_text())
    assert summary["predictions"]["total"] >= len(recent)

    drift = summary["figures"]["feature_drift"]["by_type"]
    pump_values = {f"{c}:value" for c in CHANNELS}
    assert pump_values <= set(drift["pump"]["drifted"])
    assert not pump_values & set(drift["press"]["drifted"])
    failed = set(summary["failed_checks"])
    assert any(name.startswith("feature_drift: pump:") for name in failed), failed
    assert not any(name.startswith("feature_drift: press:") for name in failed), failed

    rows = {r["machine"]: r for r in summary["figures"]["alerts"]["table"]["rows"]}
    assert rows["press-1"]["status"] == "fail" and rows["press-1"]["alerts"] == 5
    assert rows["pump-1"]["status"] == "pass"
    assert "press-1" in summary["figures"]["alerts"]["spikes"]

    assert "machine_stats" in summary["figures"]["freshness"]["views"]
    assert summary["figures"]["health"]["readings"] >= len(recent)
    page = (sensors.reports_dir / "index.html").read_text()
    for panel in ("panel-alerts", "panel-feature_drift", "panel-freshness"):
        assert f'id="{panel}"' in page
