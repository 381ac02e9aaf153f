"""Edge mode without any server: input formats, bad lines, alerts to JSON lines and the outbox."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.sensors.edge import BadLine, records, run
from pipelines.sensors.outbox import Outbox
from pipelines.sensors.readings import parse_reading
from rtml.settings import REPO_ROOT
from tests.sensors.sample import detector, readings

MACHINES, CHANNELS = ["m1", "m2"], ["temperature", "vibration"]


@pytest.fixture
def sample() -> tuple[list[dict], set[tuple[str, str, float]]]:
    return readings(machines=MACHINES, channels=CHANNELS, seconds=150, spikes=2, gap_s=50)


def _jsonl(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _alerts(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_reads_json_lines_and_csv_and_names_bad_lines() -> None:
    got = list(records(['{"machine_id": "m1", "value": 1}\n', "\n", "not json\n", "[1, 2]\n"]))
    assert got[0] == {"machine_id": "m1", "value": 1}
    assert [type(g) for g in got[1:]] == [BadLine, BadLine]
    assert "line 3: not JSON" in str(got[1]) and "line 4: not a JSON object" in str(got[2])
    got = list(records(["machine_id,channel,timestamp,value\n", "m1,current,1700000000,2.5\n",
                        "m1,current\n"]))
    assert got[0] == {"machine_id": "m1", "channel": "current", "timestamp": "1700000000",
                      "value": "2.5"}
    assert "line 3: 2 columns, the header has 4" in str(got[1])


def test_alerts_match_the_injected_spikes_and_land_in_jsonl_and_outbox(sample, tmp_path) -> None:
    rows, spiked = sample
    bad = [{"machine_id": "m1", "channel": "temperature", "timestamp": 1.7e9, "value": "NaN"},
           {"channel": "temperature", "timestamp": 1.7e9, "value": 1.0},
           {"machine_id": "m1", "channel": "temperature", "timestamp": 1.7e9, "value": "hot"}]
    source = _jsonl(rows[:100] + bad + rows[100:], tmp_path / "in.jsonl")
    said: list[str] = []
    stats = run(detector=detector(), parse=parse_reading, source=str(source),
                alerts_path=tmp_path / "alerts.jsonl", outbox_path=tmp_path / "outbox.sqlite",
                central=None, rearm_after=10, quiet_s=5.0, err=said.append)
    assert (stats.readings, stats.bad) == (len(rows), 3)
    assert any("value: not finite" in m for m in said)
    assert any("machine_id: missing" in m for m in said)
    assert any("value: not a number" in m for m in said)
    alerts = _alerts(tmp_path / "alerts.jsonl")
    assert {(a["machine_id"], a["channel"], a["ts"]) for a in alerts} == spiked
    assert stats.alerts == len(alerts) == len(spiked)
    box = Outbox(tmp_path / "outbox.sqlite")
    assert box.counts() == {"alerts": len(spiked), "pending": len(spiked)}
    assert {a.alert_id for a in box.pending(1000)} == {a["alert_id"] for a in alerts}


def test_the_same_input_again_adds_no_alert(sample, tmp_path) -> None:
    rows, spiked = sample
    source = _jsonl(rows, tmp_path / "in.jsonl")
    kw = {"parse": parse_reading, "source": str(source), "central": None, "rearm_after": 10,
          "quiet_s": 5.0, "alerts_path": tmp_path / "alerts.jsonl",
          "outbox_path": tmp_path / "outbox.sqlite"}
    assert run(detector=detector(), **kw).alerts == len(spiked)
    # A restart reading the same file (a replay) raises the same ids: the outbox has them.
    assert run(detector=detector(), **kw).alerts == 0
    assert len(_alerts(tmp_path / "alerts.jsonl")) == len(spiked)


def test_csv_input_gives_the_same_alerts_as_json_lines(sample, tmp_path) -> None:
    rows, spiked = sample
    with open(tmp_path / "in.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["machine_id", "channel", "timestamp", "value",
                                          "reading_id"])
        w.writeheader()
        w.writerows(rows)
    stats = run(detector=detector(), parse=parse_reading, source=str(tmp_path / "in.csv"),
                alerts_path=tmp_path / "a.jsonl", outbox_path=tmp_path / "o.sqlite",
                central=None, rearm_after=10, quiet_s=5.0)
    assert stats.bad == 0
    assert {(a["machine_id"], a["channel"], a["ts"]) for a in _alerts(tmp_path / "a.jsonl")
            } == spiked


def test_stdin_input(sample, tmp_path) -> None:
    rows, spiked = sample
    stdin = io.StringIO("".join(json.dumps(r) + "\n" for r in rows))
    stats = run(detector=detector(), parse=parse_reading, source="-", stdin=stdin,
                alerts_path=tmp_path / "a.jsonl", outbox_path=tmp_path / "o.sqlite",
                central=None, rearm_after=10, quiet_s=5.0)
    assert stats.alerts == len(spiked)


# Runs `rtml edge run` as the CLI does, in a fresh interpreter, then lists what got imported.
_PROBE = """
import json, sys
from rtml.cli import app
try:
    app(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
heavy = sorted(m for m in sys.modules
               if m.split(".")[0] in {"feast", "bentoml", "bytewax", "pandas", "pyarrow"})
print(json.dumps(heavy))
"""


def test_edge_run_never_imports_feast_bentoml_or_bytewax(sample, tmp_path) -> None:
    rows, spiked = sample
    model = detector().save(tmp_path / "model.zip")
    source = _jsonl(rows, tmp_path / "in.jsonl")
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, "edge", "run", "--model", str(model), "--input",
         str(source), "--alerts", str(tmp_path / "a.jsonl"), "--outbox",
         str(tmp_path / "o.sqlite"), "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary, heavy = (json.loads(line) for line in proc.stdout.strip().splitlines()[-2:])
    assert heavy == []
    # And it did the work: the model file from disk, every reading, an alert per spike
    # (the CLI's default latches re-arm slower than the spikes' gap: at least one per channel).
    assert summary["readings"] == len(rows) and summary["bad"] == 0
    assert len(MACHINES) * len(CHANNELS) <= summary["alerts"] <= len(spiked)
