"""The recommendation scenario's streamed views, declared once (definitions only, no Feast objects).

The Bytewax flow (`pipelines/recs/flow.py`) fills them from shop events; `streamed.py` builds the
Feast views from these specs; the service reads them and falls back to `STREAMED_DEFAULTS`.

- `user_session`: the user's current session as of their last event: the last `SESSION_ITEMS`
  distinct items (most recent first), the last `SESSION_CATEGORIES` distinct categories, the
  number of events, and the last event's time (unix seconds). Empty once the session has been
  quiet for `SESSION_GAP_S`.
- `item_trending`: an item's events over the last hour (kit tile windows), in all and per type.
- `item_stock`: the units in stock, moved by orders (down, never below zero) and restocks (up).
"""

from __future__ import annotations

from rtml.features.specs import ViewSpec, push_join_keys, serving_defaults, window_view
from rtml.features.windows import WindowSpec

SESSION_ITEMS = 20
SESSION_CATEGORIES = 5
# OTTO and most shops cut a session after 30 quiet minutes.
SESSION_GAP_S = 1800

USER_SESSION = ViewSpec(
    name="user_session", join_key="user_id",
    features={"session_id": "int64", "session_items": "int64_list",
              "session_categories": "int64_list", "session_length": "int64",
              "session_last_ts": "float64"},
    push_source="user_session_push", offline_file="user_session.parquet",
    defaults={"session_id": -1.0})

TRENDING_WINDOWS = WindowSpec(
    windows={"1h": 3600},
    features={"trend_events_1h": ("count", "1h"),
              "trend_clicks_1h": ("sum", "1h", "click"),
              "trend_carts_1h": ("sum", "1h", "cart"),
              "trend_orders_1h": ("sum", "1h", "order")},
    values=("click", "cart", "order"))
ITEM_TRENDING = window_view("item_trending", "item_id", TRENDING_WINDOWS,
                            push_source="item_trending_push",
                            offline_file="item_trending.parquet")

ITEM_STOCK = ViewSpec(
    name="item_stock", join_key="item_id", features={"stock_level": "int64"},
    push_source="item_stock_push", offline_file="item_stock.parquet")

STREAMED = (USER_SESSION, ITEM_TRENDING, ITEM_STOCK)
STREAMED_DEFAULTS = serving_defaults(STREAMED)
STREAMED_JOIN_KEYS = push_join_keys(STREAMED)
