"""Transaction events on Redis Streams: the wire format, partitioning and parsing.

An event is one `XADD` with flat string fields: `transaction_id`, `customer_id`, `terminal_id`,
`amount`, `event_time` (ISO 8601 with a timezone, UTC by convention). Events are partitioned by
customer over `partitions` streams (`<prefix>:<i>`), so one customer's events keep their order in
one partition and a partition is the unit a stream worker owns. What cannot be parsed goes to the
dead-letter stream with the reason, never silently dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from bentos.fraud.schemas import MAX_AMOUNT

STREAM_PREFIX = "rtml:tx"
DEAD_LETTER_STREAM = "rtml:tx:dead"
FIELDS = ("transaction_id", "customer_id", "terminal_id", "amount", "event_time")


@dataclass(frozen=True, slots=True)
class TxEvent:
    """A parsed transaction event; `event_time` is timezone-aware UTC."""

    transaction_id: str
    customer_id: int
    terminal_id: int
    amount: float
    event_time: datetime


class BadEventError(ValueError):
    """An event that cannot be used; the message is the dead-letter reason."""


def stream_key(partition: int, prefix: str = STREAM_PREFIX) -> str:
    """Redis key of one partition's stream."""
    return f"{prefix}:{partition}"


def partition_of(customer_id: int, partitions: int) -> int:
    """The partition a customer's events go to."""
    return customer_id % partitions


def encode(event: TxEvent) -> dict[str, str]:
    """Flat string fields for `XADD`."""
    return {
        "transaction_id": event.transaction_id,
        "customer_id": str(event.customer_id),
        "terminal_id": str(event.terminal_id),
        "amount": repr(float(event.amount)),
        "event_time": event.event_time.astimezone(UTC).isoformat(),
    }


def _text(fields: dict, name: str) -> str:
    raw = fields.get(name, fields.get(name.encode()))
    if raw is None:
        raise BadEventError(f"missing field {name!r}")
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _entity(fields: dict, name: str) -> int:
    text = _text(fields, name)
    try:
        value = int(text)
    except ValueError:
        raise BadEventError(f"{name}: not an integer: {text[:40]!r}") from None
    if value < 0:
        raise BadEventError(f"{name}: negative id {value}")
    return value


def decode(fields: dict) -> TxEvent:
    """Parse `XADD` fields (str or bytes keys/values); raises `BadEventError` with the reason."""
    amount_text = _text(fields, "amount")
    try:
        amount = float(amount_text)
    except ValueError:
        raise BadEventError(f"amount: not a number: {amount_text[:40]!r}") from None
    if not math.isfinite(amount) or amount <= 0 or amount > MAX_AMOUNT:
        raise BadEventError(f"amount: out of range: {amount_text[:40]!r}")
    time_text = _text(fields, "event_time")
    try:
        event_time = datetime.fromisoformat(time_text)
    except ValueError:
        raise BadEventError(f"event_time: not ISO 8601: {time_text[:40]!r}") from None
    if event_time.tzinfo is None:
        raise BadEventError(f"event_time: no timezone: {time_text[:40]!r}")
    transaction_id = _text(fields, "transaction_id")
    if not transaction_id:
        raise BadEventError("transaction_id: empty")
    return TxEvent(
        transaction_id=transaction_id,
        customer_id=_entity(fields, "customer_id"),
        terminal_id=_entity(fields, "terminal_id"),
        amount=amount,
        event_time=event_time.astimezone(UTC),
    )
