"""`bentoml serve` of the sensors service: verdicts for a window, 400s that name the reading."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from rtml.runtime import process, serve_command
from rtml.settings import REPO_ROOT, Settings
from tests.sensors.sample import readings
from tests.support.procs import free_port

SPIKE = 55


@pytest.fixture(scope="module")
def url(sensors: Settings, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[str]:
    log = tmp_path_factory.mktemp("sensors_serve") / "serve.log"
    port = free_port()
    with process("bentoml serve", serve_command("bentos.sensors.service:SensorsService",
                                                port=port),
                 ready_url=f"http://127.0.0.1:{port}/readyz", log=log, cwd=REPO_ROOT, env=env,
                 timeout_s=180, refused=True):
        yield f"http://127.0.0.1:{port}"


def _window() -> list[dict]:
    """One channel at 4 Hz, seeded noise around a level, one spike of +20 at `SPIKE`."""
    rows, spiked = readings(machines=["w1"], channels=["pressure"], seconds=70 / 4, hz=4.0,
                            warm_s=SPIKE / 4, spikes=1)
    assert len(rows) == 70 and {ts for _, _, ts in spiked} == {rows[SPIKE]["timestamp"]}
    return rows


def test_a_window_gets_one_verdict_per_reading(url: str) -> None:
    window = _window()
    r = httpx.post(f"{url}/score", json={"readings": window}, timeout=30)
    assert r.status_code == 200, r.text
    assert "model;dur=" in r.headers["server-timing"]
    body = r.json()
    assert body["fallback"] is False and body["model_version"] == "test-model.zip"
    verdicts = body["verdicts"]
    assert [v["reading_id"] for v in verdicts] == [w["reading_id"] for w in window]
    # The test model warms up on 40 readings and 10 s (tests/sensors/sample.py): the first
    # readings only warm up; after that only the spike is anomalous.
    assert all(v["warming_up"] for v in verdicts[:40])
    assert [i for i, v in enumerate(verdicts) if v["anomalous"]] == [SPIKE]
    assert verdicts[SPIKE]["severity"] in {"low", "medium", "high"}
    # A window is scored on its own: the same window again, the same answer.
    again = httpx.post(f"{url}/score", json={"readings": window}, timeout=30).json()
    assert again["verdicts"] == verdicts


@pytest.mark.parametrize(("index", "change", "named"), [
    (2, {"value": "NaN"}, "readings[2].value"),
    (0, {"machine_id": None}, "readings[0].machine_id"),
    (5, {"timestamp": "soon"}, "readings[5].timestamp"),
    (7, {"value": "warm"}, "readings[7].value"),
])
def test_a_bad_reading_is_a_400_naming_it(url: str, index: int, change: dict,
                                          named: str) -> None:
    window = _window()
    window[index] = {**window[index], **change}
    r = httpx.post(f"{url}/score", content=json.dumps({"readings": window}),
                   headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text
    assert named in r.text


def test_a_body_that_is_not_a_window_is_a_400_naming_readings(url: str) -> None:
    r = httpx.post(f"{url}/score", json={"readings": {"machine_id": "w1"}}, timeout=30)
    assert r.status_code == 400 and "readings" in r.text
    r = httpx.post(f"{url}/score", json={}, timeout=30)
    assert r.status_code == 400 and "readings" in r.text


def test_readyz_answers_once_the_model_is_loaded(url: str) -> None:
    assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
