"""The ranker's input row per candidate: one function for training and serving.

`features_for` turns a request's candidates plus what the feature service returned (the user's
profile, each candidate item's stats / trending / stock, the live session) into the model matrix,
columns in `FEATURE_NAMES` order. Training calls it on point-in-time values
(`training.recs.dataset`), the service on online values: the same code, so the same numbers.
A missing value takes the view's serving default (`DEFAULTS`), as an unknown entity does online.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from feature_repo.recs.specs import NEVER_SEEN_HOURS, NIGHTLY_DEFAULTS
from pipelines.recs.candidates import SOURCES, Candidate

FEATURE_NAMES: list[str] = [
    *(f"src_{s}" for s in SOURCES),
    *(f"score_{s}" for s in SOURCES),
    "session_pos", "history_pos", "candidate_rank",
    "item_clicks_1d", "item_clicks_7d", "item_carts_7d", "item_orders_7d",
    "item_cart_rate_7d", "item_order_rate_7d", "item_price", "item_price_vs_session",
    "trend_events_1h", "stock_level",
    "user_cat_share", "user_cat_rank", "session_cat_rank", "session_cat_count",
    "user_events_7d", "user_orders_30d", "user_hours_since_last", "session_length",
]
ABSENT = 99.0  # position of an item / category not in the list
ITEM_NUMBERS = ("item_clicks_1d", "item_clicks_7d", "item_carts_7d", "item_orders_7d",
                "item_cart_rate_7d", "item_order_rate_7d", "item_price")
# Streamed values an unknown item gets online: no recent events, stock unknown (sellable).
STREAM_DEFAULTS: dict[str, float] = {"trend_events_1h": 0.0, "stock_level": 1.0}
DEFAULTS: dict[str, Any] = {**NIGHTLY_DEFAULTS, **STREAM_DEFAULTS}
_COL = {name: j for j, name in enumerate(FEATURE_NAMES)}
_SOURCE_INDEX = {s: _COL[f"src_{s}"] for s in SOURCES}


def _get(feats: Mapping[str, Any] | None, name: str) -> Any:
    value = feats.get(name) if feats else None
    return DEFAULTS[name] if value is None else value


def features_for(candidates: Sequence[Candidate], user_feats: Mapping[str, Any] | None,
                 item_feats: Mapping[int, Mapping[str, Any]],
                 session: Mapping[str, Any] | None) -> np.ndarray:
    """`[len(candidates), len(FEATURE_NAMES)]` float32, one row per candidate, in order.

    `user_feats`: the `user_profile` view's values (None: unknown user). `item_feats`: item id ->
    its `item_stats` values plus `trend_events_1h` and `stock_level`. `session`: the
    `user_session` view (`session_items` recent first, `session_categories`, `session_length`).
    Built a column at a time (a request ranks 200 candidates inside a few milliseconds).
    """
    n = len(candidates)
    out = np.zeros((n, len(FEATURE_NAMES)), dtype=np.float32)
    if n == 0:
        return out
    session_items = list(_get_list(session, "session_items"))
    session_cats = list(_get_list(session, "session_categories"))
    history = list(_get_list(user_feats, "user_recent_items"))
    top_cats = list(_get_list(user_feats, "user_top_categories"))
    shares = list(_get_list(user_feats, "user_category_shares"))
    s_pos = {item: i for i, item in reversed(list(enumerate(session_items)))}
    h_pos = {item: i for i, item in reversed(list(enumerate(history)))}
    u_rank = {c: i for i, c in reversed(list(enumerate(top_cats)))}
    s_rank = {c: i for i, c in reversed(list(enumerate(session_cats)))}
    prices = [float(_get(item_feats.get(i), "item_price")) for i in session_items]
    prices = [p for p in prices if p > 0]
    session_price = float(np.median(prices)) if prices else 0.0

    ids = [c.item_id for c in candidates]
    feats = [item_feats.get(i) for i in ids]
    out[np.arange(n), [_SOURCE_INDEX[c.source] for c in candidates]] = 1.0  # src_* one-hot
    out[:, _COL["score_revisit"]:_COL["score_revisit"] + len(SOURCES)] = [
        c.scores for c in candidates]
    out[:, _COL["session_pos"]] = [s_pos.get(i, ABSENT) for i in ids]
    out[:, _COL["history_pos"]] = [h_pos.get(i, ABSENT) for i in ids]
    out[:, _COL["candidate_rank"]] = np.arange(n)
    for name in (*ITEM_NUMBERS, "trend_events_1h", "stock_level"):
        out[:, _COL[name]] = _column(feats, name)
    price = out[:, _COL["item_price"]]
    out[:, _COL["item_price_vs_session"]] = (price / session_price if session_price > 0
                                             else 1.0)
    cats = [int(c) for c in _column(feats, "item_category")]
    u_ranks = [u_rank.get(c) for c in cats]
    out[:, _COL["user_cat_rank"]] = [ABSENT if r is None else r for r in u_ranks]
    out[:, _COL["user_cat_share"]] = [0.0 if r is None or r >= len(shares) else shares[r]
                                      for r in u_ranks]
    out[:, _COL["session_cat_rank"]] = [s_rank.get(c, ABSENT) for c in cats]
    if session_items:
        counts: dict[int, int] = {}
        for i in session_items:
            c = int(_get(item_feats.get(i), "item_category"))
            counts[c] = counts.get(c, 0) + 1
        out[:, _COL["session_cat_count"]] = [counts.get(c, 0) for c in cats]
    out[:, _COL["user_events_7d"]] = float(_get(user_feats, "user_events_7d"))
    out[:, _COL["user_orders_30d"]] = float(_get(user_feats, "user_orders_30d"))
    hours = user_feats.get("user_hours_since_last") if user_feats else None
    out[:, _COL["user_hours_since_last"]] = NEVER_SEEN_HOURS if hours is None else hours
    out[:, _COL["session_length"]] = float(session.get("session_length") or 0) \
        if session else 0.0
    return out


def _column(feats: Sequence[Mapping[str, Any] | None], name: str) -> list[float]:
    """One item feature over the candidates, the default where an item lacks it."""
    default = DEFAULTS[name]
    return [default if (v := (f.get(name) if f else None)) is None else float(v)
            for f in feats]


def _get_list(feats: Mapping[str, Any] | None, name: str) -> Sequence[Any]:
    value = feats.get(name) if feats else None
    return () if value is None else value
