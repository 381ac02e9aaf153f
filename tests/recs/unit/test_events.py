"""Event parsing: what the stream accepts, and the field named when it does not."""

from datetime import UTC, datetime

import pytest

from pipelines.recs.events import BadEvent, encode, parse_event

GOOD = {"event_id": "e1", "user_id": "7", "item_id": "42", "session_id": "3", "type": "cart",
        "ts": "2024-03-01T10:00:00+00:00", "quantity": "1"}


def test_parses_xadd_fields_str_or_bytes_and_round_trips():
    ev = parse_event(GOOD)
    assert ev == {"event_id": "e1", "user_id": 7, "item_id": 42, "session_id": 3,
                  "type": "cart", "ts": datetime(2024, 3, 1, 10, tzinfo=UTC), "quantity": 1}
    assert parse_event({k.encode(): v.encode() for k, v in GOOD.items()}) == ev
    assert parse_event(encode(ev)) == ev


def test_restock_has_no_user_but_a_user_event_must():
    shop = {**GOOD, "type": "restock", "user_id": "-1", "session_id": "-1", "quantity": "40"}
    assert parse_event(shop)["quantity"] == 40
    with pytest.raises(BadEvent) as err:
        parse_event({**GOOD, "user_id": "-1"})
    assert err.value.field == "user_id"


@pytest.mark.parametrize(("change", "field"), [
    ({"type": "view"}, "type"),
    ({"item_id": "abc"}, "item_id"),
    ({"item_id": "-3"}, "item_id"),
    ({"ts": "2024-03-01T10:00:00"}, "ts"),
    ({"ts": "yesterday"}, "ts"),
    ({"quantity": "0"}, "quantity"),
    ({"quantity": "1000001"}, "quantity"),
    ({"event_id": ""}, "event_id"),
])
def test_bad_field_is_named(change, field):
    with pytest.raises(BadEvent) as err:
        parse_event({**GOOD, **change})
    assert err.value.field == field
    assert field in str(err.value)


def test_missing_field_is_named():
    fields = dict(GOOD)
    del fields["session_id"]
    with pytest.raises(BadEvent) as err:
        parse_event(fields)
    assert (err.value.field, err.value.reason) == ("session_id", "missing")
