"""Latching: one incident is one alert; a channel re-arms only after calm; ids are stable."""

from __future__ import annotations

from types import SimpleNamespace

from pipelines.sensors.alerts import Alert, Latches, alert_id


def _feed(latches: Latches, flags: str, *, machine: str = "m1", channel: str = "temperature",
          t0: float = 1000.0, dt: float = 1.0) -> list[int]:
    """Feed a string of `x` (anomalous) / `.` (normal) readings; indices that raised an alert."""
    raised = []
    for i, flag in enumerate(flags):
        alert = latches.update(machine_id=machine, channel=channel, ts=t0 + i * dt,
                               anomalous=flag == "x", reading_id=f"{machine}-{channel}-{i}",
                               score=9.0, severity="high", drivers={"value-mean_1m": 12.5})
        if alert is not None:
            raised.append(i)
    return raised


def test_a_flickering_incident_is_one_alert() -> None:
    latches = Latches(rearm_after=5, quiet_s=4.0)
    #                 0123456789012345678
    assert _feed(latches, "..xx.x..x.xxx..x...") == [2]


def test_rearms_after_n_normal_readings_and_the_quiet_period() -> None:
    # Hand-computed: the incident's last anomalous reading is i=3; 5 normal readings (i=4..8)
    # re-arm at i=8 (ts 8 - 3 = 5 s >= 4 s), so the anomaly at i=9 is a second incident.
    latches = Latches(rearm_after=5, quiet_s=4.0)
    assert _feed(latches, "..xx.....x") == [2, 9]
    # Four normals are not enough: still the first incident.
    latches = Latches(rearm_after=5, quiet_s=4.0)
    assert _feed(latches, "..xx....x") == [2]


def test_the_quiet_period_is_event_time_not_a_count() -> None:
    # Readings 0.5 s apart: 5 normals after i=3 span only 2.5 s < 4 s, so i=9 is the same
    # incident; the re-arm comes at i=11 (4 s after i=3), so i=12 opens a new one.
    latches = Latches(rearm_after=5, quiet_s=4.0)
    assert _feed(latches, "..xx.....x..x", dt=0.5) == [2]
    latches = Latches(rearm_after=5, quiet_s=4.0)
    assert _feed(latches, "..xx........x", dt=0.5) == [2, 12]


def test_channels_and_machines_latch_apart() -> None:
    latches = Latches(rearm_after=3, quiet_s=0.0)
    assert _feed(latches, "xxx", machine="m1", channel="temperature") == [0]
    assert _feed(latches, "xxx", machine="m1", channel="pressure") == [0]
    assert _feed(latches, "xxx", machine="m2", channel="temperature") == [0]
    assert set(latches.of_machine("m1")) == {"temperature", "pressure"}


def test_warm_up_never_alerts_and_the_alert_carries_the_reading() -> None:
    latches = Latches()
    reading = SimpleNamespace(machine_id="m7", channel="vibration", ts=1234.5, value=9.75,
                              reading_id="r-42")
    warming = SimpleNamespace(score=99.0, anomalous=True, severity="high",
                              drivers={"value-mean_1m": 30.0}, warming_up=True)
    assert latches.judge(reading, warming) is None
    verdict = SimpleNamespace(score=11.0, anomalous=True, severity="medium",
                              drivers={"value-mean_1m": 14.0, "roc_10s": 3.5}, warming_up=False)
    alert = latches.judge(reading, verdict)
    assert alert is not None
    assert (alert.machine_id, alert.channel, alert.reading_id, alert.ts, alert.value) == (
        "m7", "vibration", "r-42", 1234.5, 9.75)
    assert (alert.severity, alert.score) == ("medium", 11.0)
    assert alert.drivers == {"value-mean_1m": 14.0, "roc_10s": 3.5}
    assert alert.alert_id == alert_id("r-42")


def test_alert_ids_are_deterministic_from_the_reading() -> None:
    # The same reading replayed (a flow restart) raises the same id; another reading another.
    a = _one_alert("r-1")
    assert a.alert_id == _one_alert("r-1").alert_id
    assert a.alert_id != _one_alert("r-2").alert_id
    # A reading without an id is named by machine, channel and time.
    anon = Latches().update(machine_id="m1", channel="current", ts=5.25, anomalous=True)
    assert anon is not None and anon.reading_id == "m1/current/5.25"
    assert anon.alert_id == alert_id("m1/current/5.25")


def test_record_and_stream_fields_round_trip() -> None:
    a = _one_alert("r-9")
    assert Alert.from_record(a.record()) == a
    fields = a.fields()
    assert set(fields) == {"alert_id", "machine_id", "channel", "severity", "score", "drivers",
                           "reading_id", "ts", "raised_at", "value"}
    assert all(isinstance(v, str) for v in fields.values())
    assert fields["drivers"] == '{"value-mean_1m": 12.5}'


def _one_alert(reading_id: str) -> Alert:
    alert = Latches().update(machine_id="m1", channel="temperature", ts=10.0, anomalous=True,
                             reading_id=reading_id, drivers={"value-mean_1m": 12.5})
    assert alert is not None
    return alert
