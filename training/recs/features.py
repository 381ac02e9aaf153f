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
    col = {name: j for j, name in enumerate(FEATURE_NAMES)}
    src_col = [col[f"src_{s}"] for s in SOURCES]
    for r, cand in enumerate(candidates):
        row = out[r]
        row[src_col[SOURCES.index(cand.source)]] = 1.0
        row[col["score_revisit"]:col["score_revisit"] + len(SOURCES)] = cand.scores
        row[col["session_pos"]] = s_pos.get(cand.item_id, ABSENT)
        row[col["history_pos"]] = h_pos.get(cand.item_id, ABSENT)
        row[col["candidate_rank"]] = r
        feats = item_feats.get(cand.item_id)
        for name in ITEM_NUMBERS:
            row[col[name]] = float(_get(feats, name))
        price = row[col["item_price"]]
        row[col["item_price_vs_session"]] = price / session_price if session_price > 0 else 1.0
        row[col["trend_events_1h"]] = float(_get(feats, "trend_events_1h"))
        row[col["stock_level"]] = float(_get(feats, "stock_level"))
        cat = int(_get(feats, "item_category"))
        rank = u_rank.get(cat)
        row[col["user_cat_rank"]] = ABSENT if rank is None else rank
        row[col["user_cat_share"]] = 0.0 if rank is None or rank >= len(shares) else shares[rank]
        row[col["session_cat_rank"]] = s_rank.get(cat, ABSENT)
    row_all = out
    row_all[:, col["session_cat_count"]] = 0.0
    if session_items:
        cats_of_session = [int(_get(item_feats.get(i), "item_category")) for i in session_items]
        counts: dict[int, int] = {}
        for c in cats_of_session:
            counts[c] = counts.get(c, 0) + 1
        for r, cand in enumerate(candidates):
            cat = int(_get(item_feats.get(cand.item_id), "item_category"))
            row_all[r, col["session_cat_count"]] = counts.get(cat, 0)
    row_all[:, col["user_events_7d"]] = float(_get(user_feats, "user_events_7d"))
    row_all[:, col["user_orders_30d"]] = float(_get(user_feats, "user_orders_30d"))
    hours = user_feats.get("user_hours_since_last") if user_feats else None
    row_all[:, col["user_hours_since_last"]] = NEVER_SEEN_HOURS if hours is None else hours
    row_all[:, col["session_length"]] = float(session.get("session_length") or 0) \
        if session else 0.0
    return out


def _get_list(feats: Mapping[str, Any] | None, name: str) -> Sequence[Any]:
    value = feats.get(name) if feats else None
    return () if value is None else value
