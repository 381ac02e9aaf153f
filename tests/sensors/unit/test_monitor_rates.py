"""Alert rate per machine and the spike rule, on a hand-computed case."""

from __future__ import annotations

import pandas as pd

from monitoring.sensors.checks import SpikeRule, alert_rates, machine_type

NOW, START = 10_000.0, 6_400.0  # one hour observed; the recent period is the last 600 s


def test_a_burst_of_alerts_is_a_spike_a_steady_rate_is_not() -> None:
    at = {"a": [9_500, 9_600, 9_700, 9_800],  # 4 recent, none before
          "b": [7_000, 7_200, 7_400, 7_600, 7_800, 8_000, 9_900],  # 6 before, 1 recent
          "d": [7_000, 8_000],  # 2 before
          "e": [9_500, 9_900]}  # 2 recent: fewer than min_alerts
    alerts = pd.DataFrame([{"machine_id": m, "at_s": float(t)} for m, ts in at.items()
                           for t in ts])
    rows = {r["machine"]: r for r in alert_rates(
        alerts=alerts, machines=["a", "b", "c", "d", "e"], start_s=START, now_s=NOW,
        rule=SpikeRule(recent_s=600, factor=3.0, min_alerts=3))}
    # Per hour over the hour: a 4, b 7, c 0, d 2, e 2 -> plant median 2/h.
    assert [rows[m]["per_hour"] for m in "abcde"] == [4, 7, 0, 2, 2]
    # a: 3 x max(0/h before, 2/h) x 1/6 h = 1 expected; 4 recent >= 3 -> spike.
    assert rows["a"]["status"] == "fail" and rows["a"]["spike_above"] == 2
    # b: earlier 6 in 3000 s = 7.2/h -> 3 x 7.2 / 6 = 3.6 expected; 1 recent -> no spike.
    assert rows["b"]["spike_above"] == 3.6 and rows["b"]["status"] == "pass"
    # e: 2 recent > 1 expected, but under min_alerts; c and d: nothing recent.
    assert {m: rows[m]["status"] for m in "cde"} == {"c": "pass", "d": "pass", "e": "pass"}
    assert rows["a"]["last 10 min"] == 4 and rows["c"]["alerts"] == 0


def test_machine_type_is_the_id_without_its_number() -> None:
    assert [machine_type(m) for m in ("press-07", "m003", "pump_2", "oven")] == [
        "press", "m", "pump", "oven"]
