"""Delayed labels of recommendations: the clicks that follow an answer.

An impression (one logged answer: `request_id`, `user_id`, `logged_at`, the ranked `items`) is
graded by what the same user clicked in the `horizon_s` after it was logged, read from the shop's
event stream (`rtml:recs:events`, each event with its own `ts`). An impression is *labelled* once
its horizon has passed (`logged_at + horizon_s <= now`), *pending* before; one with no click in
its horizon is labelled with no relevant item (it counts as a miss).

`ranking_rows` is the long table Evidently's recsys metrics read: one row per (impression, item),
the recommended items at their rank and every clicked item the answer missed after them, so the
ideal ranking (NDCG's denominator) and recall see every click.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from pipelines.recs.events import STREAM, BadEvent, parse_event

CLICK_TYPES = ("click", "cart", "order")  # a cart or an order of a shown item is a click too


def read_clicks(client: Any, *, since: datetime, stream: str = STREAM, chunk: int = 10_000
                ) -> pd.DataFrame:
    """User events on the stream with `ts >= since`: `user_id`, `item_id`, `type`, `ts` (UTC)."""
    rows: list[dict[str, Any]] = []
    start = "-"
    while True:
        entries = client.xrange(stream, min=start, count=chunk)
        for _, fields in entries:
            try:
                e = parse_event(fields)
            except BadEvent:
                continue  # the flow dead-letters these; they grade nothing
            if e["type"] in CLICK_TYPES and e["ts"] >= since:
                rows.append({"user_id": e["user_id"], "item_id": e["item_id"],
                             "type": e["type"], "ts": e["ts"]})
        if len(entries) < chunk:
            break
        start = "(" + (entries[-1][0].decode() if isinstance(entries[-1][0], bytes)
                       else entries[-1][0])
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "type", "ts"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.astype({"user_id": "int64", "item_id": "int64"})


def _ints(value: Any) -> list[int]:
    if isinstance(value, str):
        value = json.loads(value) if value else []
    return [int(v) for v in (value if value is not None else [])]


@dataclass(frozen=True)
class Graded:
    """Impressions with their clicks: `impressions` has `items`, `clicked`, `labelled`."""

    impressions: pd.DataFrame
    counts: dict[str, int]


def grade(impressions: pd.DataFrame, clicks: pd.DataFrame, *, now: datetime, horizon_s: float
          ) -> Graded:
    """Each impression's clicked items in (logged_at, logged_at + horizon]; labelled or pending."""
    imp = impressions.copy()
    imp["logged_at"] = pd.to_datetime(imp["logged_at"], utc=True)
    imp["items"] = imp["items"].map(_ints)
    imp["user_id"] = pd.to_numeric(imp["user_id"], errors="coerce").astype("Int64")
    horizon = pd.Timedelta(seconds=horizon_s)
    by_user = {u: g.sort_values("ts") for u, g in clicks.groupby("user_id")}
    clicked: list[list[int]] = []
    for user, at in zip(imp["user_id"], imp["logged_at"], strict=True):
        g = by_user.get(user) if user is not pd.NA else None
        if g is None:
            clicked.append([])
            continue
        hit = g[(g["ts"] > at) & (g["ts"] <= at + horizon)]["item_id"]
        clicked.append(list(dict.fromkeys(int(i) for i in hit)))  # first click order, no repeats
    imp["clicked"] = clicked
    imp["labelled"] = imp["logged_at"] + horizon <= pd.Timestamp(now)
    answered = imp["items"].map(len) > 0
    counts = {"labelled": int((imp["labelled"] & answered).sum()),
              "pending": int((~imp["labelled"] & answered).sum()),
              "unknown": int((~answered).sum()),
              "with_click": int((imp["labelled"] & answered
                                 & (imp["clicked"].map(len) > 0)).sum()),
              "horizon_s": int(horizon_s)}
    return Graded(imp, counts)


def ranking_rows(graded: pd.DataFrame, *, k: int) -> pd.DataFrame:
    """Evidently's recsys table: `user_id` (the impression), `item_id`, `score`, `target`.

    Impressions of `k` or more items: the top `k` score k, k-1, ... 1 (rank r scores k + 1 - r);
    clicked items the answer did not show follow below them (scores 0, -1, ...), target 1 where
    clicked. (A shorter answer would rank its missed clicks inside the top k: left out.)
    """
    rows = []
    for rid, items, clicked in zip(graded["request_id"], graded["items"], graded["clicked"],
                                   strict=True):
        if len(items) < k:
            continue
        shown = items[:k]
        hits = set(clicked)
        for r, item in enumerate(shown):
            rows.append((str(rid), item, float(k - r), int(item in hits)))
        missed = [i for i in clicked if i not in set(shown)]
        for j, item in enumerate(missed):
            rows.append((str(rid), item, float(-j), 1))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "score", "target"])
