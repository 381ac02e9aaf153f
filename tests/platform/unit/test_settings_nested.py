"""Settings nested per scenario: `RTML_<SCENARIO>__<KNOB>`; platform settings stay `RTML_<NAME>`.

What a user relies on: the fraud service's budget is not the recommendations service's; a knob set
in the old flat spelling is refused with the name to use, never silently ignored.
"""

from __future__ import annotations

import pytest

from rtml.settings import SCENARIO_KNOBS, FlatScenarioKnobError, Settings


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("RTML_"):
            monkeypatch.delenv(name)


def test_each_scenario_reads_its_own_nested_knobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTML_FRAUD__MODEL_TIMEOUT_MS", "12")
    monkeypatch.setenv("RTML_RECS__MODEL_TIMEOUT_MS", "70")
    monkeypatch.setenv("RTML_FRAUD__BATCHING", "false")
    fraud, recs = Settings(scenario="fraud"), Settings(scenario="recs")
    assert (fraud.model_timeout_ms, fraud.batching) == (12.0, False)
    assert (recs.model_timeout_ms, recs.batching) == (70.0, True)
    assert Settings().model_timeout_ms == 30.0  # no scenario: the defaults


def test_platform_settings_stay_flat_for_every_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTML_REDIS_ADDRESS", "10.0.0.5:7000")
    monkeypatch.setenv("RTML_STREAM_SNAPSHOT_S", "5")
    for s in (Settings(), Settings(scenario="fraud")):
        assert (s.redis_address, s.stream_snapshot_s) == ("10.0.0.5:7000", 5.0)
    # A platform setting under a scenario's prefix is not a scenario knob: not read there.
    monkeypatch.setenv("RTML_FRAUD__REDIS_ADDRESS", "10.9.9.9:1")
    assert Settings(scenario="fraud").redis_address == "10.0.0.5:7000"


def test_a_flat_scenario_knob_is_refused_with_the_nested_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTML_MODEL_TIMEOUT_MS", "5")
    with pytest.raises(FlatScenarioKnobError) as err:
        Settings(scenario="fraud")
    assert "RTML_MODEL_TIMEOUT_MS" in str(err.value)
    assert "RTML_<SCENARIO>__MODEL_TIMEOUT_MS" in str(err.value)


def test_model_tag_and_prediction_stream_default_to_the_scenario_name() -> None:
    s = Settings(scenario="recs")
    assert (s.model_tag, s.prediction_stream) == ("recs_model:latest", "rtml:predictions:recs")
    assert Settings(scenario="fraud", prediction_stream="x").prediction_stream == "x"


def test_init_values_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTML_FRAUD__MAX_INFLIGHT", "3")
    assert Settings(scenario="fraud", max_inflight=9).max_inflight == 9
    assert Settings(scenario="fraud").max_inflight == 3


def test_every_scenario_knob_is_a_setting_and_no_platform_one_is() -> None:
    assert SCENARIO_KNOBS <= set(Settings.model_fields)
    assert not {"redis_address", "repo_root", "stream_snapshot_s", "monitor_webhook_url",
                "scenario"} & SCENARIO_KNOBS
