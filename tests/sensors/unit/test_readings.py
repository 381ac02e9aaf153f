"""parse_reading: what every entry point accepts, and the field named when it refuses."""

import math

import pytest

from pipelines.sensors.readings import BadReading, Reading, parse_reading

GOOD = {"machine_id": "m1", "channel": "temperature", "timestamp": 1767225600, "value": 41.5}


@pytest.mark.parametrize("stamp", [1767225600, 1767225600.0, 1767225600000, "1767225600",
                                   "2026-01-01T00:00:00Z", "2026-01-01T00:00:00+00:00",
                                   "2026-01-01 00:00:00", "2026-01-01T01:00:00+01:00"])
def test_every_time_format_is_the_same_instant(stamp):
    r = parse_reading({**GOOD, "timestamp": stamp})
    assert r == Reading("m1", "temperature", 1767225600.0, 41.5)


def test_numeric_strings_bytes_and_ids_are_read():
    r = parse_reading({b"machine_id": "x", "machine_id": b"m7", "channel": "current",
                       "ts": b"1767225600.5", "value": " -3.25 ", "reading_id": b"r-1"})
    assert r == Reading("m7", "current", 1767225600.5, -3.25, "r-1")
    assert r.key == ("m7", "current")


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"machine_id": None}, "machine_id", "missing"),
    ({"machine_id": "  "}, "machine_id", "empty"),
    ({"channel": None}, "channel", "missing"),
    ({"channel": 1.5}, "channel", "expected text"),
    ({"value": None}, "value", "missing"),
    ({"value": "hot"}, "value", "not a number"),
    ({"value": True}, "value", "not a number"),
    ({"value": math.nan}, "value", "not finite"),
    ({"value": "nan"}, "value", "not finite"),
    ({"value": math.inf}, "value", "not finite"),
    ({"value": [1]}, "value", "not a number"),
    ({"timestamp": None}, "timestamp", "missing"),
    ({"timestamp": "yesterday"}, "timestamp", "not epoch"),
    ({"timestamp": math.nan}, "timestamp", "not finite"),
    ({"timestamp": -5}, "timestamp", "out of range"),
    ({"timestamp": 1e16}, "timestamp", "out of range"),
    ({"timestamp": {}}, "timestamp", "not a time"),
])
def test_a_bad_reading_names_its_field(change, field, reason):
    obj = {**GOOD, **change}
    with pytest.raises(BadReading) as err:
        parse_reading(obj)
    assert err.value.field == field and reason in err.value.reason
    assert str(err.value).startswith(f"{field}: ")


def test_a_missing_key_and_a_non_object():
    obj = dict(GOOD)
    del obj["timestamp"]
    with pytest.raises(BadReading) as err:
        parse_reading(obj)
    assert (err.value.field, err.value.reason) == ("timestamp", "missing")
    with pytest.raises(BadReading) as err:
        parse_reading([1, 2])  # type: ignore[arg-type]
    assert err.value.field == "reading"
    assert isinstance(err.value, ValueError)
