"""`rtml sensors nab-score` and `rtml data generate --scenario sensors`, in process."""

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from pipelines.sensors.detect import Detector, Params
from rtml.cli import app


def nab_file(tmp_path):
    """A NAB-format file: 5-minute readings of a daily cycle; a level shift at row 1500."""
    rng = np.random.default_rng(0)
    n = 2000
    ts = pd.date_range("2024-01-01", periods=n, freq="5min")
    x = 70 + 3 * np.sin(np.arange(n) * 2 * np.pi / 288) + rng.normal(0, 0.3, n)
    x[1500:1530] += 6.0
    csv = tmp_path / "plant_pump.csv"
    pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": x}).to_csv(
        csv, index=False)
    windows = tmp_path / "windows.json"
    windows.write_text(json.dumps({"realKnownCause/plant_pump.csv": [
        [str(ts[1450]), str(ts[1550])]]}))
    return csv, windows


def test_nab_score_json_has_the_documented_fields(tmp_path):
    csv, windows = nab_file(tmp_path)
    model = Detector(Params(threshold=8.0)).save(tmp_path / "m.zip")
    out = CliRunner().invoke(app, ["sensors", "nab-score", str(csv), "--windows", str(windows),
                                   "--model", str(model), "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.output)
    assert (got["windows"], got["windows_detected"]) == (1, 1)
    assert got["threshold"] == 8.0 and 0 < got["score"] <= 100
    assert got["false_positives"] == got["files"][0]["false_positives"] >= 0
    assert got["per_file_optimised_score"] >= got["score"]
    detected = pd.Timestamp(got["files"][0]["detections_in_windows_at"][0])
    assert pd.Timestamp("2024-01-06 05:00", tz="UTC") <= detected  # row 1500 or later
    text = CliRunner().invoke(app, ["sensors", "nab-score", str(csv), "--windows",
                                    str(windows), "--model", str(model)])
    assert "NAB standard score" in text.output and "per-file-optimised" in text.output


def test_nab_score_errors_are_one_line(tmp_path):
    csv, windows = nab_file(tmp_path)
    model = Detector().save(tmp_path / "m.zip")
    other = tmp_path / "other.csv"
    other.write_text(csv.read_text())
    out = CliRunner().invoke(app, ["sensors", "nab-score", str(other), "--windows",
                                   str(windows), "--model", str(model)])
    assert out.exit_code == 2 and out.output.strip().startswith("rtml: other.csv: not in")
    out = CliRunner().invoke(app, ["sensors", "nab-score", str(tmp_path / "gone.csv"),
                                   "--windows", str(windows), "--model", str(model)])
    assert out.exit_code == 2 and "gone.csv: no such file" in out.output


def test_data_generate_writes_a_plant(tmp_path, monkeypatch):
    monkeypatch.setenv("RTML_REPO_ROOT", str(tmp_path))
    out = CliRunner().invoke(app, ["data", "generate", "--scenario", "sensors", "--machines",
                                   "1", "--hours", "0.3", "--rate-hz", "1", "--seed", "2"])
    assert out.exit_code == 0, out.output
    raw = tmp_path / "data" / "raw" / "sensors"
    frame = pd.read_parquet(raw / "readings.parquet")
    assert len(frame) == 4 * 1080 and "4,320 readings" in out.output
    assert json.loads((raw / "windows.json").read_text())["rates_hz"] == {"m000": 1.0}
