"""The history a stream would have served, computed offline: the training twin of a window flow.

A point-in-time join ("latest row at or before t") over these rows is what the stream serves at
t, because they hold a row at every event and at every instant a tile leaves a window, each
computed by the same `WindowState` the stream runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from rtml.features.windows import Values, WindowSpec, WindowState, decays, on_event

Event = tuple[str, datetime, Mapping[str, float]]  # (event id, event time, values)


def history(spec: WindowSpec, events: Iterable[tuple[Any, Event]], *, until: datetime
            ) -> tuple[list[Any], list[datetime], dict[str, list]]:
    """What a stream keeping up serves, as rows: one per counted event and one per decay.

    `events`: (key, event) in event-time order. Per key, a row at each event (its windows as of
    that instant) and a row at each instant a tile leaves a window before the key's next event or
    `until`. Returns (keys, timestamps, {feature: values}), grouped by key; a timestamp is bumped
    by 1 µs where a key's instants tie, so it is strictly increasing per key (Feast keeps a row
    only if it is newer than the stored one).
    """
    by_key: dict[Any, list[Event]] = {}
    for key, event in events:
        by_key.setdefault(key, []).append(event)
    keys: list[Any] = []
    stamps: list[datetime] = []
    columns: dict[str, list] = {name: [] for name in spec.features}
    step = timedelta(microseconds=1)

    def emit(key: Any, values: Values, at: datetime) -> None:
        stamp = at if not stamps or keys[-1] != key or at > stamps[-1] else stamps[-1] + step
        keys.append(key)
        stamps.append(stamp)
        for name, value in values.items():
            columns[name].append(value)

    for key, key_events in by_key.items():
        state = WindowState(spec)
        for event_id, event_time, values in key_events:
            for row, at in decays(state, event_time):
                emit(key, row, at)
            counted = on_event(state, event_id, event_time, values, event_time)
            if counted is not None:
                emit(key, *counted)
        for row, at in decays(state, until):
            emit(key, row, at)
    return keys, stamps, columns
