"""One sensor reading, and the parser every entry point (stream, service, edge, CSV) shares.

Pure Python: the edge process imports this without Redis, Feast or BentoML. A reading that cannot
be scored raises `BadReading` naming the field, so a stream can dead-letter it with that reason
and a service can answer 4xx naming it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

CHANNELS = ("temperature", "pressure", "vibration", "current")

# Epoch numbers above this are milliseconds: 1e11 s is the year 5138, 1e11 ms is 1973.
_MS_ABOVE = 1e11
# Timestamps outside [1970, 2200) are typos (a value in the timestamp column, µs, ...).
_TS_MAX = 7_258_118_400.0


@dataclass(frozen=True)
class Reading:
    """One value of one channel of one machine at one instant (epoch seconds, UTC)."""

    machine_id: str
    channel: str
    ts: float  # epoch seconds
    value: float
    reading_id: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """The detector's state key: one learned normal per machine and channel."""
        return (self.machine_id, self.channel)


class BadReading(ValueError):
    """A reading that cannot be scored: `field` names what is wrong, `reason` says how."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def parse_reading(obj: Mapping[str, Any]) -> Reading:
    """A `Reading` from a JSON object / CSV row / stream entry, or `BadReading` naming the field.

    Accepts `timestamp` (or `ts`) as epoch seconds, epoch milliseconds or ISO-8601 (a naive ISO
    time is UTC), `value` as a number or numeric string, optional `reading_id` (or `id`).
    Channels are free-form (a plant may have more than the four simulated ones).
    """
    if not isinstance(obj, Mapping):
        raise BadReading("reading", f"expected an object, got {type(obj).__name__}")
    machine = _text(obj, "machine_id")
    channel = _text(obj, "channel")
    if "timestamp" in obj:
        ts = parse_timestamp(obj["timestamp"], field="timestamp")
    elif "ts" in obj:
        ts = parse_timestamp(obj["ts"], field="ts")
    else:
        raise BadReading("timestamp", "missing")
    value = _number(obj.get("value"), "value")
    rid = obj.get("reading_id", obj.get("id", ""))
    rid = "" if rid is None else _decode(rid)
    return Reading(machine_id=machine, channel=channel, ts=ts, value=value, reading_id=rid)


def parse_timestamp(raw: Any, *, field: str = "timestamp") -> float:
    """Epoch seconds from epoch s / ms (number or numeric string) or ISO-8601 text."""
    if raw is None or isinstance(raw, bool):
        raise BadReading(field, "missing" if raw is None else "not a time")
    if isinstance(raw, bytes):
        raw = _decode(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            raise BadReading(field, "missing")
        try:
            number = float(text)
        except ValueError:
            try:
                when = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise BadReading(field, f"not epoch seconds/ms or ISO-8601: {text[:40]!r}") \
                    from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return when.timestamp()
        raw = number
    if not isinstance(raw, int | float):
        raise BadReading(field, f"not a time: {type(raw).__name__}")
    ts = float(raw)
    if not math.isfinite(ts):
        raise BadReading(field, "not finite")
    if ts > _MS_ABOVE:
        ts /= 1000.0
    if not 0 <= ts < _TS_MAX:
        raise BadReading(field, f"out of range: {raw!r}")
    return ts


def _decode(raw: Any) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _text(obj: Mapping[str, Any], field: str) -> str:
    raw = obj.get(field)
    if raw is None:
        raise BadReading(field, "missing")
    if not isinstance(raw, str | bytes | int):
        raise BadReading(field, f"expected text, got {type(raw).__name__}")
    text = _decode(raw).strip()
    if not text:
        raise BadReading(field, "empty")
    return text


def _number(raw: Any, field: str) -> float:
    if raw is None:
        raise BadReading(field, "missing")
    if isinstance(raw, bool):
        raise BadReading(field, "not a number: a boolean")
    if isinstance(raw, bytes | str):
        text = _decode(raw).strip()
        try:
            raw = float(text)
        except ValueError:
            raise BadReading(field, f"not a number: {text[:40]!r}") from None
    if not isinstance(raw, int | float):
        raise BadReading(field, f"not a number: {type(raw).__name__}")
    x = float(raw)
    if not math.isfinite(x):
        raise BadReading(field, "not finite (NaN or infinity)")
    return x
