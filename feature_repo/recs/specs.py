"""The recommendation scenario's nightly views, declared once (definitions only, no Feast objects).

`users.py` / `items.py` build the Feast views from these, `pipelines/recs/batch_features.py`
writes files of `parquet_schema(...)`, and the ranker's inputs (`training/recs/features.py`) read
them by these names. A row stamped D 00:00 UTC aggregates the events before D. The streamed views
(session, trending, stock) are declared beside the stream flow that fills them.

- `user_profile`: activity counts, hours since the last event, the top categories with their
  shares of the last 30 days (type-weighted), and the most recent distinct items (the re-visit
  source's history).
- `item_stats`: category, brand, price, clicks / carts / orders over 1 and 7 days, the 7-day
  click -> cart and click -> order rates.
- `item_covisit`: the item's top co-visitation neighbours and their weights (OTTO-style: pairs of
  nearby events in a session, weighted by the later event's type and by recency).
"""

from __future__ import annotations

from rtml.features.specs import ViewSpec, serving_defaults

TOP_CATEGORIES = 5
RECENT_ITEMS = 20
COVISIT_TOP = 20
# An unknown user has never been seen: as long ago as the profile looks back.
NEVER_SEEN_HOURS = 30 * 24.0

USER_PROFILE = ViewSpec(
    name="user_profile", join_key="user_id",
    features={"user_events_1d": "int64", "user_events_7d": "int64", "user_carts_7d": "int64",
              "user_orders_30d": "int64", "user_sessions_7d": "int64",
              "user_hours_since_last": "float64",
              "user_top_categories": "int64_list", "user_category_shares": "float64_list",
              "user_recent_items": "int64_list"},
    offline_file="user_profile.parquet", created=True,
    defaults={"user_hours_since_last": NEVER_SEEN_HOURS})

ITEM_STATS = ViewSpec(
    name="item_stats", join_key="item_id",
    features={"item_category": "int64", "item_brand": "int64", "item_price": "float64",
              "item_clicks_1d": "int64", "item_clicks_7d": "int64", "item_carts_7d": "int64",
              "item_orders_7d": "int64", "item_cart_rate_7d": "float64",
              "item_order_rate_7d": "float64"},
    offline_file="item_stats.parquet", created=True,
    defaults={"item_category": -1.0, "item_brand": -1.0})

ITEM_COVISIT = ViewSpec(
    name="item_covisit", join_key="item_id",
    features={"covisit_items": "int64_list", "covisit_weights": "float64_list"},
    offline_file="item_covisit.parquet", created=True)

NIGHTLY = (USER_PROFILE, ITEM_STATS, ITEM_COVISIT)
NIGHTLY_DEFAULTS = serving_defaults(NIGHTLY)
