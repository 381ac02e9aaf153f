"""The recommendation flow in process (Bytewax's testing source and sinks) against plain pandas.

Seeded shop events with at-least-once duplicates and one malformed entry go through
`build_flow`; each key's last row must equal an independent recomputation: the session's
distinct items and categories (most recent first) and its length, an item's last-hour counts by
type, and stock moved by orders (never below zero) and restocks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from feature_repo.recs.stream_specs import SESSION_CATEGORIES, SESSION_ITEMS
from pipelines.recs.events import encode
from pipelines.recs.flow import build_flow
from pipelines.recs.stream_state import SessionState

CATEGORY = {i: i % 7 for i in range(60)}
CAPACITY = {i: 3 + i % 4 for i in range(60)}


def _events(seed: int, now: datetime) -> pd.DataFrame:
    """User events over the last 40 minutes, restocks among them, 3% sent twice (in order)."""
    rng = np.random.default_rng(seed)
    rows = []
    t = now - timedelta(minutes=40)
    for n in range(600):
        t += timedelta(seconds=float(rng.exponential(3.5)))
        user = int(rng.integers(0, 25))
        kind = str(rng.choice(["click", "cart", "order", "restock"], p=[0.8, 0.08, 0.07, 0.05]))
        shop = kind == "restock"
        rows.append({"event_id": f"e{n}", "user_id": -1 if shop else user,
                     "item_id": int(rng.integers(0, 60)),
                     "session_id": -1 if shop else user * 10 + (n > 400),
                     "type": kind, "ts": min(t, now),
                     "quantity": int(rng.integers(1, 4)) if kind in ("order", "restock") else 1})
    events = pd.DataFrame(rows)
    dupes = events.sample(frac=0.03, random_state=seed)
    out = pd.concat([events, dupes]).sort_values(["ts", "event_id"], kind="stable")
    return out.reset_index(drop=True)


def _run(events: pd.DataFrame, bad: dict[str, str] | None = None) -> tuple[list, list, list]:
    entries = [(f"{1_700_000_000_000 + i}-0", encode(r._asdict()))
               for i, r in enumerate(events.itertuples(index=False))]
    if bad is not None:
        entries.insert(5, ("1700000000004-1", bad))
    rows: list = []
    dead: list = []
    index: list = []
    run_main(build_flow(TestingSource(entries), TestingSink(rows), TestingSink(dead),
                        TestingSink(index), category_of=CATEGORY.__getitem__,
                        initial_stock=CAPACITY.__getitem__))
    return rows, dead, index


def _last(rows: list, source: str) -> dict[int, dict]:
    return {entity: values for src, entity, values, _, _ in rows if src == source}


def _distinct_recent(values: list[int], limit: int) -> list[int]:
    out: list[int] = []
    for v in reversed(values):
        if v not in out:
            out.append(v)
    return out[:limit]


def test_each_key_ends_at_the_recomputed_session_trending_and_stock():
    now = datetime.now(UTC)
    events = _events(3, now)
    rows, dead, index = _run(events)
    assert dead == []
    unique = events.drop_duplicates("event_id")
    user = unique[unique["type"] != "restock"]

    sessions = _last(rows, "user_session_push")
    assert set(sessions) == set(user["user_id"])
    for uid, got in sessions.items():
        mine = user[user["user_id"] == uid]
        current = mine[mine["session_id"] == mine["session_id"].iloc[-1]]
        assert got["session_id"] == current["session_id"].iloc[-1]
        assert got["session_items"] == _distinct_recent(current["item_id"].tolist(),
                                                        SESSION_ITEMS)
        assert got["session_categories"] == _distinct_recent(
            [CATEGORY[i] for i in current["item_id"]], SESSION_CATEGORIES)
        assert got["session_length"] == len(current)
        assert got["session_last_ts"] == pytest.approx(current["ts"].max().timestamp())

    trending = _last(rows, "item_trending_push")
    assert set(trending) == set(user["item_id"])
    for item, got in trending.items():
        mine = user[user["item_id"] == item]  # all inside the hour
        assert got["trend_events_1h"] == len(mine)
        for kind in ("click", "cart", "order"):
            assert got[f"trend_{kind}s_1h"] == (mine["type"] == kind).sum()
    # The sorted set's feed carries the same rows.
    assert _last(index, "item_trending_push") == trending

    stock = _last(rows, "item_stock_push")
    moves = unique[unique["type"].isin(["order", "restock"])]
    assert set(stock) == set(moves["item_id"])
    for item, got in stock.items():
        level = CAPACITY[item]
        for r in moves[moves["item_id"] == item].itertuples():
            level = level + r.quantity if r.type == "restock" else max(0, level - r.quantity)
        assert got == {"stock_level": level}


def test_rows_are_stamped_strictly_increasing_per_key_with_the_wall_clock():
    now = datetime.now(UTC)
    rows, _, _ = _run(_events(5, now))
    last: dict[tuple[str, int], datetime] = {}
    for source, entity, _, at, _ in rows:
        assert at >= now
        assert (source, entity) not in last or at > last[(source, entity)]
        last[(source, entity)] = at


def test_a_malformed_event_is_dead_lettered_naming_the_field_and_the_rest_flows():
    now = datetime.now(UTC)
    events = _events(7, now).head(50)
    bad = {"event_id": "bad-1", "user_id": "seven", "item_id": "3", "session_id": "1",
           "type": "click", "ts": now.isoformat(), "quantity": "1"}
    rows, dead, _ = _run(events, bad)
    assert len(dead) == 1
    fields, reason, entry_id = dead[0]
    assert fields["event_id"] == "bad-1" and entry_id == "1700000000004-1"
    assert reason.startswith("user_id:")
    assert rows


def test_a_session_restarts_on_a_new_id_or_after_a_quiet_gap_and_ignores_stale_events():
    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def ev(n: int, sid: int, item: int, minutes: float) -> dict:
        return {"event_id": f"s{n}", "session_id": sid, "item_id": item,
                "ts": t0 + timedelta(minutes=minutes)}

    s = SessionState()
    assert s.add(ev(1, 1, 10, 0), 1) and s.add(ev(2, 1, 11, 5), 2) and s.add(ev(3, 1, 10, 6), 1)
    assert not s.add(ev(3, 1, 10, 6), 1)  # the same event again
    assert s.values()["session_items"] == [10, 11] and s.values()["session_length"] == 3
    assert s.add(ev(4, 2, 12, 7), 3)  # a new session id
    assert s.values()["session_items"] == [12] and s.values()["session_length"] == 1
    assert not s.add(ev(5, 1, 13, 6.5), 4)  # late event of the session left behind
    assert s.add(ev(6, 2, 14, 7 + 31), 4)  # same id, but quiet for more than 30 minutes
    assert s.values()["session_items"] == [14] and s.values()["session_length"] == 1
