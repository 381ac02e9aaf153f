"""The flow's per-machine logic without the engine.

Parsing, throttled feature rows, latches that survive a restart from a snapshot.
"""

from __future__ import annotations

import pickle

from pipelines.sensors.alerts import Latches
from pipelines.sensors.flow import MachineLogic, parse
from pipelines.sensors.readings import Reading
from pipelines.sensors.streams import encode
from tests.sensors.sample import detector, readings


def _items(rows: list[dict]) -> list[tuple[Reading, int]]:
    out = []
    for i, r in enumerate(rows):
        entry = (f"{1_764_590_400_000 + i}-0", encode(
            machine_id=r["machine_id"], channel=r["channel"], ts=r["timestamp"],
            value=r["value"], reading_id=r["reading_id"]))
        item = parse(entry)
        assert isinstance(item[0], Reading)
        out.append(item)  # type: ignore[arg-type]
    return out


def test_parse_names_the_field_and_ids_anonymous_readings_by_entry() -> None:
    bad = parse(("5-0", {"machine_id": "m1", "channel": "current", "ts": "1.7e9",
                         "value": "nan"}))
    assert bad == ({"machine_id": "m1", "channel": "current", "ts": "1.7e9", "value": "nan"},
                   "value: not finite (NaN or infinity)", "5-0")
    good, xadd = parse(("1764590400123-7", {"machine_id": "m1", "channel": "current",
                                            "ts": "1764590400.0", "value": "2.5"}))
    assert isinstance(good, Reading)
    assert (good.reading_id, good.value, xadd) == ("m1@1764590400123-7", 2.5, 1764590400123)


def test_feature_rows_are_throttled_per_channel_and_held_rows_wait_for_the_timer() -> None:
    rows, _ = readings(machines=["m1"], channels=["temperature", "current"], seconds=5)
    logic = MachineLogic(detector=detector(), latches=Latches(), push_every_s=3600.0,
                         resume=None)
    pushed = []
    for item in _items(rows):
        out, keep = logic.on_item(item)
        assert keep is MachineLogic.RETAIN
        pushed += [row for kind, row in out if kind == "features"]
    # The first reading of each channel is pushed at once; the newest of the rest is held.
    first = {}
    for r in rows:
        first.setdefault(f"m1:{r['channel']}", r["timestamp"])
    assert len(pushed) == 2
    assert {row[1]: row[3].timestamp() for row in pushed} == first
    assert {ch: row[3].timestamp() for ch, row in logic.held.items()} == {
        ch: max(r["timestamp"] for r in rows if r["channel"] == ch)
        for ch in ("temperature", "current")}
    assert logic.notify_at() is not None
    assert logic.on_notify()[0] == []  # not due for an hour


def test_every_row_is_pushed_without_a_throttle_with_strictly_increasing_stamps() -> None:
    rows, _ = readings(machines=["m1"], channels=["vibration"], seconds=3)
    logic = MachineLogic(detector=detector(), latches=Latches(), push_every_s=0.0, resume=None)
    stamps = []
    for item in _items(rows + rows[-1:]):  # the last reading again: same event time
        stamps += [row[3] for kind, row in logic.on_item(item)[0] if kind == "features"]
    assert len(stamps) == len(rows) + 1
    assert all(a < b for a, b in zip(stamps, stamps[1:], strict=False))


def test_a_latched_channel_stays_latched_across_a_snapshot_and_restart() -> None:
    rows, spiked = readings(machines=["m1"], channels=["pressure"], seconds=60, spikes=1)
    spike_ts = next(iter(spiked))[2]
    items = _items(rows)
    cut = next(i for i, (r, _) in enumerate(items) if r.ts > spike_ts)
    logic = MachineLogic(detector=detector(), latches=Latches(), push_every_s=1.0, resume=None)
    alerts = []
    for item in items[:cut]:
        alerts += [a for kind, a in logic.on_item(item)[0] if kind == "alert"]
    assert [a.ts for a in alerts] == [spike_ts]
    snap = pickle.loads(pickle.dumps(logic.snapshot()))
    # A restart: a fresh detector (its history is not snapshotted) and the resumed latches. The
    # replayed spike (the readings after the snapshot are read again) raises nothing new.
    det = detector()
    for r, _ in items[:cut - 1]:
        det.update(r)
    resumed = MachineLogic(detector=det, latches=Latches(), push_every_s=1.0, resume=snap)
    again = [a for item in items[cut - 1:cut + 5]
             for kind, a in resumed.on_item(item)[0] if kind == "alert"]
    assert again == []
    assert resumed.latches.channels[("m1", "pressure")].latched
