"""Shop events: the one schema the simulator writes, the stream carries and every job reads.

An event is one row (parquet) or one `XADD` with flat string fields (stream `rtml:recs:events`):
`event_id`, `user_id`, `item_id`, `session_id`, `type` (click | cart | order | restock), `ts`
(ISO 8601 with a timezone; UTC) and `quantity` (units ordered or restocked; 1 for click/cart).
A restock is the shop's event, not a user's: it carries `user_id = session_id = -1`. What cannot
be parsed raises `BadEvent` naming the field, so the flow can dead-letter it with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

STREAM: Final = "rtml:recs:events"
DEAD_LETTER_STREAM: Final = "rtml:recs:events:dead"
TYPES: Final = ("click", "cart", "order", "restock")
USER_TYPES: Final = ("click", "cart", "order")
NO_USER: Final = -1  # user_id / session_id of a restock
MAX_QUANTITY: Final = 100_000
COLUMNS: Final = ("event_id", "user_id", "item_id", "session_id", "type", "ts", "quantity")


class BadEvent(ValueError):  # noqa: N818 (the interface name other modules import)
    """An event that cannot be used: `.field` is the culprit, `.reason` what is wrong with it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _text(raw: Mapping[Any, Any], name: str) -> str:
    value = raw.get(name, raw.get(name.encode()))
    if value is None:
        raise BadEvent(name, "missing")
    return value.decode() if isinstance(value, bytes) else str(value)


def _int(raw: Mapping[Any, Any], name: str, *, low: int) -> int:
    text = _text(raw, name)
    try:
        value = int(text)
    except ValueError:
        raise BadEvent(name, f"not an integer: {text[:40]!r}") from None
    if value < low:
        raise BadEvent(name, f"below {low}: {value}")
    return value


def _ts(raw: Mapping[Any, Any]) -> datetime:
    value = raw.get("ts", raw.get(b"ts"))
    if isinstance(value, datetime):
        ts = value
    else:
        text = _text(raw, "ts")
        try:
            ts = datetime.fromisoformat(text)
        except ValueError:
            raise BadEvent("ts", f"not ISO 8601: {text[:40]!r}") from None
    if ts.tzinfo is None:
        raise BadEvent("ts", "no timezone")
    return ts.astimezone(UTC)


def parse_event(raw: Mapping[Any, Any]) -> dict[str, Any]:
    """A typed event from a row or `XADD` fields (str or bytes keys and values).

    Raises `BadEvent` for a missing field, a non-integer id, a negative item id, an unknown type,
    a naive timestamp, a quantity outside 1..100000, or a user event without a user/session.
    """
    kind = _text(raw, "type")
    if kind not in TYPES:
        raise BadEvent("type", f"not one of {'|'.join(TYPES)}: {kind[:40]!r}")
    event_id = _text(raw, "event_id")
    if not event_id:
        raise BadEvent("event_id", "empty")
    shop = kind == "restock"
    user_id = _int(raw, "user_id", low=NO_USER if shop else 0)
    session_id = _int(raw, "session_id", low=NO_USER if shop else 0)
    quantity = _int(raw, "quantity", low=1)
    if quantity > MAX_QUANTITY:
        raise BadEvent("quantity", f"above {MAX_QUANTITY}: {quantity}")
    return {"event_id": event_id, "user_id": user_id, "item_id": _int(raw, "item_id", low=0),
            "session_id": session_id, "type": kind, "ts": _ts(raw), "quantity": quantity}


def encode(event: Mapping[str, Any]) -> dict[str, str]:
    """Flat string fields for `XADD` (the inverse of `parse_event`)."""
    ts = event["ts"]
    return {"event_id": str(event["event_id"]), "user_id": str(int(event["user_id"])),
            "item_id": str(int(event["item_id"])), "session_id": str(int(event["session_id"])),
            "type": str(event["type"]),
            "ts": (ts.astimezone(UTC) if isinstance(ts, datetime) else ts).isoformat(),
            "quantity": str(int(event["quantity"]))}
