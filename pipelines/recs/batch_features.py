"""Nightly recommendation features: user profiles and item stats, one snapshot per day.

The row stamped D 00:00 UTC aggregates the events before D (the nightly job runs just after
midnight), so a request at any instant of day D sees exactly what serving would have
materialized that night: training joins these rows "latest at or before the request, within the
view's TTL" (`training.recs.dataset`). Co-visitation neighbours are `pipelines.recs.covisit`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feature_repo.recs.specs import (
    ITEM_COVISIT,
    ITEM_STATS,
    NIGHTLY,
    RECENT_ITEMS,
    TOP_CATEGORIES,
    USER_PROFILE,
)
from pipelines.recs import covisit
from rtml.features.specs import ViewSpec, parquet_schema, write_empty_sources

DAY = pd.Timedelta(days=1)
PROFILE_DAYS = 30
# How much one event says about a taste: a cart or an order means more than a click (OTTO).
TYPE_WEIGHT = {"click": 1.0, "cart": 6.0, "order": 3.0}


def user_events(events: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """User events (no restocks) with the item's category and the type weight, sorted by ts."""
    ev = events[events["type"] != "restock"]
    category = np.full(int(items["item_id"].max()) + 1, -1, dtype=np.int64)
    category[items["item_id"].to_numpy()] = items["category"].to_numpy()
    out = ev[["user_id", "item_id", "session_id", "type", "ts"]].copy()
    out["category"] = category[out["item_id"].to_numpy()]
    out["weight"] = out["type"].map(TYPE_WEIGHT).astype(np.float64)
    return out.sort_values("ts", kind="stable").reset_index(drop=True)


def user_profile(ev: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    """The `user_profile` rows stamped `day`: users with an event in the 30 days before it."""
    w = ev[(ev["ts"] >= day - PROFILE_DAYS * DAY) & (ev["ts"] < day)]
    if w.empty:
        return _empty(USER_PROFILE)
    g = w.groupby("user_id", sort=True)
    out = pd.DataFrame(index=g.size().index)
    last1, last7 = w["ts"] >= day - DAY, w["ts"] >= day - 7 * DAY
    out["user_events_1d"] = w[last1].groupby("user_id").size()
    out["user_events_7d"] = w[last7].groupby("user_id").size()
    out["user_carts_7d"] = w[last7 & (w["type"] == "cart")].groupby("user_id").size()
    out["user_orders_30d"] = w[w["type"] == "order"].groupby("user_id").size()
    out["user_sessions_7d"] = w[last7].groupby("user_id")["session_id"].nunique()
    out = out.fillna(0).astype(np.int64)
    out["user_hours_since_last"] = (day - g["ts"].max()).dt.total_seconds() / 3600.0
    cats = w.groupby(["user_id", "category"], sort=False)["weight"].sum().reset_index()
    cats["share"] = cats["weight"] / cats.groupby("user_id")["weight"].transform("sum")
    cats = cats.sort_values(["user_id", "share", "category"], ascending=[True, False, True])
    top = cats.groupby("user_id", sort=False).head(TOP_CATEGORIES)
    keys, lists = covisit.grouped_lists(top["user_id"].to_numpy(), top["category"].to_numpy())
    out["user_top_categories"] = pd.Series(lists, index=keys)
    keys, lists = covisit.grouped_lists(top["user_id"].to_numpy(), top["share"].to_numpy())
    out["user_category_shares"] = pd.Series(lists, index=keys)
    recent = w.iloc[::-1].drop_duplicates(["user_id", "item_id"])
    recent = recent.sort_values("user_id", kind="stable").groupby("user_id", sort=False).head(
        RECENT_ITEMS)
    keys, lists = covisit.grouped_lists(recent["user_id"].to_numpy(), recent["item_id"].to_numpy())
    out["user_recent_items"] = pd.Series(lists, index=keys)
    return _stamp(out.reset_index(), day)


def item_stats(ev: pd.DataFrame, items: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    """The `item_stats` rows stamped `day`: every catalogue item (zero counts when unseen)."""
    n = int(items["item_id"].max()) + 1
    ids = items["item_id"].to_numpy()

    def count(since: pd.Timestamp, kind: str) -> np.ndarray:
        sel = ev[(ev["ts"] >= since) & (ev["ts"] < day) & (ev["type"] == kind)]
        return np.bincount(sel["item_id"].to_numpy(), minlength=n)[ids]

    clicks7, carts7, orders7 = (count(day - 7 * DAY, k) for k in ("click", "cart", "order"))
    out = pd.DataFrame({
        "item_id": ids,
        "item_category": items["category"].to_numpy(np.int64),
        "item_brand": items["brand"].to_numpy(np.int64),
        "item_price": items["price"].to_numpy(np.float64),
        "item_clicks_1d": count(day - DAY, "click"),
        "item_clicks_7d": clicks7, "item_carts_7d": carts7, "item_orders_7d": orders7,
        # Smoothed rates: an item with 2 clicks and 1 cart is not a 50% item.
        "item_cart_rate_7d": (carts7 + 0.1) / (clicks7 + 3.0),
        "item_order_rate_7d": (orders7 + 0.03) / (clicks7 + 3.0),
    })
    return _stamp(out, day)


def _stamp(frame: pd.DataFrame, day: pd.Timestamp) -> pd.DataFrame:
    frame.insert(1, "event_timestamp", day)
    frame.insert(2, "created", day)
    return frame


def _empty(view: ViewSpec) -> pd.DataFrame:
    return parquet_schema(view).empty_table().to_pandas()


def snapshot_days(events: pd.DataFrame, last: int | None = None) -> list[pd.Timestamp]:
    """Every day boundary after the first event up to the day after the last (`last`: newest)."""
    first = events["ts"].min().floor("D") + DAY
    end = events["ts"].max().floor("D") + DAY
    days = list(pd.date_range(first, end, freq="D"))
    return days[-last:] if last else days


def nightly(events: pd.DataFrame, items: pd.DataFrame, days: Iterable[pd.Timestamp],
            ) -> dict[str, pd.DataFrame]:
    """The three nightly views' rows for each of `days`, by view name."""
    days = list(days)
    ev = user_events(events, items)
    pairs = covisit.pairs(ev)
    frames: dict[str, list[pd.DataFrame]] = {v.name: [] for v in NIGHTLY}
    for day in days:
        frames[USER_PROFILE.name].append(user_profile(ev, day))
        frames[ITEM_STATS.name].append(item_stats(ev, items, day))
        frames[ITEM_COVISIT.name].append(_stamp(covisit.snapshot(pairs, day), day))
    return {name: pd.concat(parts, ignore_index=True) for name, parts in frames.items()}


def write(frames: dict[str, pd.DataFrame], features_dir: Path) -> dict[str, Path]:
    """Each view's rows as its Feast offline file (schema from its spec)."""
    features_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for view in NIGHTLY:
        schema = parquet_schema(view)
        table = pa.Table.from_pandas(frames[view.name][schema.names], schema=schema,
                                     preserve_index=False)
        paths[view.name] = features_dir / str(view.offline_file)
        pq.write_table(table, paths[view.name])
    return paths


def ensure_sources(features_dir: Path) -> list[Path]:
    """Empty typed files for the nightly views not built yet.

    `feast materialize` reads every view's source, so another scenario's materialize must not
    fail on these being absent.
    """
    return write_empty_sources(NIGHTLY, features_dir)


def build(raw_dir: Path, features_dir: Path, *, last_days: int = 3) -> dict[str, Path]:
    """`rtml features build --scenario recs`: the newest `last_days` snapshots of each view."""
    items = pd.read_parquet(raw_dir / "items.parquet")
    events = pd.read_parquet(raw_dir / "events.parquet")
    return write(nightly(events, items, snapshot_days(events, last_days)), features_dir)
