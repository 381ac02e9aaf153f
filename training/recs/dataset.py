"""Point-in-time requests: what serving knew at each request instant, and what came next.

A request is a session cut after a random event: the instant `t` is that event's time; the
label set is the distinct items of the rest of the session (before `cut`: training sessions
are trimmed at the split, so no label comes from the test period). At `t` the features are:

* nightly views (`user_profile`, `item_stats`, `item_covisit`): the latest row stamped at or
  before `t` within the view's TTL, as Feast's point-in-time join and the online store give
  (rows are stamped at midnight and cover only the events before it);
* the session view: the session's events up to `t` (last distinct items, recent first);
* trending: each item's user events in the hour up to `t`; stock: its level at `t`.

Nothing at or after the next event is read: `tests/recs/unit/test_dataset.py` rebuilds
requests from history cut at `t` and from a brute force over the raw events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from feature_repo.recs.specs import ITEM_COVISIT, ITEM_STATS, USER_PROFILE
from pipelines.recs.candidates import CandidateContext
from pipelines.recs.timeline import ItemTimeline, instant, seconds

SESSION_ITEMS = 20  # the streamed session view's lengths
SESSION_CATEGORIES = 5
TRENDING_S = 3600.0
TRENDING_TOP = 50
POPULAR_PER_CATEGORY = 30
POPULAR_TOP = 200
TTL = pd.Timedelta(days=2)  # the nightly views' TTL (feature_repo/recs)


@dataclass
class Request:
    """One request: who, when (`t`: seconds since the data's base), what they did next."""

    user_id: int
    session_id: int
    t: float
    session: dict[str, Any]
    truth: frozenset[int]
    truth_weight: dict[int, float] = field(default_factory=dict)


def sample_requests(ev: pd.DataFrame, base: pd.Timestamp, *, start: pd.Timestamp,
                    end: pd.Timestamp, cut: pd.Timestamp, rng: np.random.Generator,
                    limit: int) -> list[Request]:
    """Up to `limit` sessions starting in [start, end), each cut after a random event.

    `ev`: user events with `category` (`pipelines.recs.batch_features.user_events`), by ts.
    Events at or after `cut` are dropped first; a session needs two events left.
    """
    ev = ev[ev["ts"] < cut]
    first = ev.groupby("session_id", sort=True)["ts"].min()
    size = ev.groupby("session_id", sort=True).size()
    ok = first.index[(first >= start) & (first < end) & (size >= 2)].to_numpy()
    chosen = np.sort(rng.choice(ok, size=min(limit, len(ok)), replace=False))
    sub = ev[ev["session_id"].isin(chosen)]
    sub = sub.sort_values(["session_id", "ts"], kind="stable")
    t_all = seconds(sub["ts"], base)
    out = []
    starts = np.concatenate([[0], np.flatnonzero(np.diff(sub["session_id"].to_numpy())) + 1,
                             [len(sub)]])
    cuts = rng.random(len(starts) - 1)
    items, cats, kinds = (sub[c].to_numpy() for c in ("item_id", "category", "type"))
    users = sub["user_id"].to_numpy()
    sessions = sub["session_id"].to_numpy()
    for s in range(len(starts) - 1):
        lo, hi = starts[s], starts[s + 1]
        p = lo + 1 + int(cuts[s] * (hi - lo - 1))  # events lo..p-1 seen, p..hi-1 to predict
        weight: dict[int, float] = {}
        for i in range(p, hi):
            w = 1.0 if kinds[i] == "click" else 3.0
            weight[int(items[i])] = max(weight.get(int(items[i]), 0.0), w)
        out.append(Request(user_id=int(users[lo]), session_id=int(sessions[lo]),
                           t=float(t_all[p - 1]),
                           session=session_view(items[lo:p], cats[lo:p]),
                           truth=frozenset(weight), truth_weight=weight))
    return out


def session_view(items: np.ndarray, categories: np.ndarray) -> dict[str, Any]:
    """The streamed `user_session` value after these events (oldest first)."""
    recent_items = list(dict.fromkeys(int(i) for i in items[::-1]))[:SESSION_ITEMS]
    recent_cats = list(dict.fromkeys(int(c) for c in categories[::-1]))[:SESSION_CATEGORIES]
    return {"session_items": recent_items, "session_categories": recent_cats,
            "session_length": len(items)}


class NightlyRows:
    """The nightly views' rows, looked up "latest at or before t, within the TTL" like Feast."""

    def __init__(self, frames: Mapping[str, pd.DataFrame], base: pd.Timestamp) -> None:
        self.base = base
        self.frames = {name: f.sort_values("event_timestamp", kind="stable")
                       for name, f in frames.items()}
        self._by_day: dict[tuple[str, pd.Timestamp], dict[int, dict[str, Any]]] = {}

    def _day(self, view: str, key: str, day: pd.Timestamp) -> dict[int, dict[str, Any]]:
        cached = self._by_day.get((view, day))
        if cached is None:
            f = self.frames[view]
            f = f[f["event_timestamp"] == day]
            cols = [c for c in f.columns if c not in (key, "event_timestamp", "created")]
            cached = dict(zip(f[key].to_numpy().tolist(),
                              (dict(zip(cols, vals, strict=True))
                               for vals in zip(*(f[c].to_numpy().tolist() for c in cols),
                                               strict=True)), strict=True))
            self._by_day[(view, day)] = cached
        return cached

    def _stamps(self, t: float) -> list[pd.Timestamp]:
        """The snapshot days a read at `t` may use, newest first (within the TTL)."""
        at = instant(self.base, t)
        day = at.floor("D")
        return [stamp for stamp in (day - pd.Timedelta(days=d) for d in range(3))
                if at - stamp <= TTL]

    def row(self, view: str, key: str, entity: int, t: float) -> dict[str, Any] | None:
        """The row serving reads at `t` (None: no row within the TTL: an unknown entity)."""
        return self.rows(view, key, [entity], t).get(entity)

    def rows(self, view: str, key: str, entities: list[int], t: float,
             ) -> dict[int, dict[str, Any]]:
        """`row` for several entities (those without one are left out)."""
        tables = [self._day(view, key, stamp) for stamp in self._stamps(t)]
        out = {}
        for e in entities:
            for table in tables:
                found = table.get(e)
                if found is not None:
                    out[e] = found
                    break
        return out


@dataclass
class World:
    """Everything a request's context and features are read from, as of any instant."""

    nightly: NightlyRows
    stock: ItemTimeline
    activity: ItemTimeline
    act_t: np.ndarray  # user events' times (s since base), sorted
    act_item: np.ndarray
    n_items: int
    _popular: dict[pd.Timestamp, tuple[list[int], dict[int, list[int]]]] = field(
        default_factory=dict)

    def popular(self, t: float) -> tuple[list[int], dict[int, list[int]]]:
        """Global and per-category popular lists from the `item_stats` rows serving has at t."""
        day = instant(self.nightly.base, t).floor("D")
        cached = self._popular.get(day)
        if cached is None:
            f = self.nightly.frames[ITEM_STATS.name]
            f = f[f["event_timestamp"] == day]
            score = (f["item_clicks_7d"] + 3 * f["item_carts_7d"] + 3 * f["item_orders_7d"])
            f = f.assign(score=score).sort_values(["score", "item_id"], ascending=[False, True])
            top = f["item_id"].head(POPULAR_TOP).tolist()
            per = {int(c): g["item_id"].head(POPULAR_PER_CATEGORY).tolist()
                   for c, g in f.groupby("item_category", sort=False)}
            cached = (top, per)
            self._popular[day] = cached
        return cached

    def trending(self, t: float) -> list[int]:
        """The items with the most user events in the hour up to t (ties: smaller id)."""
        lo, hi = np.searchsorted(self.act_t, [t - TRENDING_S, t], side="right")
        counts = np.bincount(self.act_item[lo:hi], minlength=self.n_items)
        top = np.lexsort((np.arange(self.n_items), -counts))[:TRENDING_TOP]
        return [int(i) for i in top if counts[i] > 0]

    def trend_counts(self, items: np.ndarray, t: float) -> np.ndarray:
        """Each item's user events in (t - 1 h, t]."""
        return self.activity.total(items, t) - self.activity.total(items, t - TRENDING_S)


def context(world: World, req: Request) -> tuple[CandidateContext, dict[str, Any] | None]:
    """The candidate context serving would build for `req`, and the user's profile row."""
    profile = world.nightly.row(USER_PROFILE.name, "user_id", req.user_id, req.t)
    session_items = req.session["session_items"]
    history = list(profile["user_recent_items"]) if profile else []
    anchors = list(dict.fromkeys(session_items))[:5] or history[:5]
    cov = world.nightly.rows(ITEM_COVISIT.name, "item_id", anchors, req.t)
    popular, per_category = world.popular(req.t)
    levels = world.stock.total(np.arange(world.n_items), req.t)
    ctx = CandidateContext(
        session_items=session_items, history_items=history,
        top_categories=list(profile["user_top_categories"]) if profile else [],
        covisit={a: list(r["covisit_items"]) for a, r in cov.items()},
        covisit_weights={a: list(r["covisit_weights"]) for a, r in cov.items()},
        popular_by_category=per_category, popular=popular, trending=world.trending(req.t),
        in_stock_fn=lambda i: bool(levels[i] > 0) if 0 <= i < len(levels) else False)
    return ctx, profile


def item_features(world: World, items: list[int], t: float) -> dict[int, dict[str, Any]]:
    """Per candidate item: its `item_stats` row at t plus the streamed trending and stock."""
    rows = world.nightly.rows(ITEM_STATS.name, "item_id", items, t)
    arr = np.asarray(items, dtype=np.int64)
    trend = world.trend_counts(arr, t)
    stock = world.stock.total(arr, t)
    out = {}
    for j, i in enumerate(items):
        out[i] = {**rows.get(i, {}), "trend_events_1h": float(trend[j]),
                  "stock_level": float(stock[j])}
    return out
