"""The sensors demo's table: alerts vs injected faults, delays, false alarms, by hand."""

from __future__ import annotations

from pipelines.sensors.simulate import Window
from rtml.demo.sensors import detection_table, format_table


def _w(machine: str, channel: str, kind: str, start: float, end: float) -> Window:
    return Window(machine_id=machine, channel=channel, kind=kind, start=start, end=end,
                  level=0.5, magnitude=1.0)


def test_table_against_a_hand_computed_plant() -> None:
    windows = [
        _w("m1", "temperature", "spike", 1000, 1000),  # alerted at 1002 (inside the grace)
        _w("m1", "pressure", "spike", 2000, 2000),  # alert on another channel: missed
        _w("m2", "current", "drift", 1500, 1800),  # alerted at 1700 and again at 1820 (grace)
        _w("m2", "vibration", "stuck", 3000, 3100),  # alerted at 3010
        _w("m2", "current", "shift", 3300, 3400),  # alerted late: 3461 > 3400 + 60
    ]
    alerts = [("m1", "temperature", 1002.0), ("m1", "current", 2001.0),
              ("m2", "current", 1700.0), ("m2", "current", 1820.0),
              ("m2", "vibration", 3010.0), ("m2", "current", 3461.0),
              ("m1", "temperature", 500.0)]  # in the warm-up: not counted
    table = detection_table(windows, alerts, scored_from=900.0, scored_until=4500.0,
                            kinds=("spike", "shift", "drift", "stuck", "burst"), grace_s=60.0)
    rows = {r["kind"]: r for r in table["rows"]}
    assert [(k, rows[k]["injected"], rows[k]["alerted"], rows[k]["median_delay_s"])
            for k in ("spike", "shift", "drift", "stuck", "burst")] == [
        ("spike", 2, 1, 2.0), ("shift", 1, 0, None), ("drift", 1, 1, 200.0),
        ("stuck", 1, 1, 10.0), ("burst", 0, 0, None)]
    # False alarms: m1/current at 2001 and m2/current at 3461; 3600 s scored = 1 h.
    assert (table["injected"], table["alerted"], table["alerts"]) == (5, 3, 6)
    assert table["false_alarms"] == 2 and table["false_alarms_per_hour"] == 2.0
    lines = format_table(table, machines=2)
    assert "event recall 60%" in lines[-2]
    assert "2.0/h (1.00 per machine-hour)" in lines[-1]
