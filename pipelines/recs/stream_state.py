"""Per-key state of the recommendation stream, engine-free: a user's session and an item's stock.

The Bytewax flow (`pipelines/recs/flow.py`) holds one of these per key and emits what they return;
the stream backfill and the tests call them directly. An item's trending counts are the kit's tile
windows (`rtml.features.windows`) over `feature_repo/recs/stream_specs.TRENDING_WINDOWS`; the
values an event contributes are `trending_values`.

Both states remember the ids of their recent events (`REMEMBER_IDS`), so an at-least-once producer
that sends an event twice moves a stock level or a session length once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from feature_repo.recs.stream_specs import SESSION_CATEGORIES, SESSION_GAP_S, SESSION_ITEMS

REMEMBER_IDS = 256
Values = dict[str, Any]


def trending_values(kind: str) -> dict[str, float]:
    """What one user event adds to an item's trending windows (a 1 in its type's column)."""
    return {"click": float(kind == "click"), "cart": float(kind == "cart"),
            "order": float(kind == "order")}


def _push_front(items: list[int], value: int, limit: int) -> None:
    """Move (or insert) `value` to the front of a most-recent-first list of distinct values."""
    if items and items[0] == value:
        return
    if value in items:
        items.remove(value)
    items.insert(0, value)
    del items[limit:]


@dataclass
class SessionState:
    """One user's current session: distinct recent items and categories, its length."""

    session_id: int = -1
    items: list[int] = field(default_factory=list)  # most recent first, distinct
    categories: list[int] = field(default_factory=list)  # most recent first, distinct
    length: int = 0  # events counted in this session
    last_ts: datetime | None = None  # newest event time counted
    seen: deque[str] = field(default_factory=lambda: deque(maxlen=REMEMBER_IDS))
    duplicates: int = 0
    stale: int = 0  # events of an earlier session, arriving after a newer one began

    def add(self, event: Mapping[str, Any], category: int) -> bool:
        """Count a user event; False for a duplicate or an event of a session already left.

        A new session id, or an event more than `SESSION_GAP_S` after the last, starts afresh.
        """
        if event["event_id"] in self.seen:
            self.duplicates += 1
            return False
        sid, ts = int(event["session_id"]), event["ts"]
        quiet = (self.last_ts is not None and self.length
                 and ts - self.last_ts > timedelta(seconds=SESSION_GAP_S))
        if sid != self.session_id or quiet:
            if self.last_ts is not None and self.length and ts < self.last_ts:
                self.stale += 1  # a late event of a session the user has left
                return False
            self.session_id, self.items, self.categories, self.length = sid, [], [], 0
            self.last_ts = None
        self.seen.append(event["event_id"])
        _push_front(self.items, int(event["item_id"]), SESSION_ITEMS)
        if category >= 0:
            _push_front(self.categories, int(category), SESSION_CATEGORIES)
        self.length += 1
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts
        return True

    def values(self) -> Values:
        """The `user_session` row (see `stream_specs.USER_SESSION`)."""
        return {"session_id": self.session_id, "session_items": list(self.items),
                "session_categories": list(self.categories), "session_length": self.length,
                "session_last_ts": self.last_ts.timestamp() if self.last_ts else 0.0}

    def end(self) -> Values:
        """Close the session (quiet too long): the empty row that replaces it online."""
        self.items, self.categories, self.length = [], [], 0
        return {**self.values(), "session_id": self.session_id}


@dataclass
class StockState:
    """One item's units in stock: orders take (never below zero), restocks add."""

    level: int
    seen: deque[str] = field(default_factory=lambda: deque(maxlen=REMEMBER_IDS))
    duplicates: int = 0
    short: int = 0  # units ordered beyond what was in stock (clamped away)

    def add(self, event: Mapping[str, Any]) -> bool:
        """Apply an order or a restock; False for a duplicate or another event type."""
        kind = event["type"]
        if kind not in ("order", "restock"):
            return False
        if event["event_id"] in self.seen:
            self.duplicates += 1
            return False
        self.seen.append(event["event_id"])
        quantity = int(event["quantity"])
        if kind == "restock":
            self.level += quantity
        else:
            self.short += max(0, quantity - self.level)
            self.level = max(0, self.level - quantity)
        return True

    def values(self) -> Values:
        """The `item_stock` row."""
        return {"stock_level": self.level}
