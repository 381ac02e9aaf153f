"""The stock backfill and the popular lists against hand-computed cases and the simulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow.parquet as pq

from feature_repo.recs.stream_specs import STREAMED
from pipelines.recs.precompute import popular_lists
from pipelines.recs.simulate import simulate
from pipelines.recs.stream_backfill import ensure_sources, stock_levels, write_stock
from rtml.features.specs import parquet_schema
from rtml.settings import Settings

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _ev(item: int, kind: str, quantity: int, minutes: int) -> dict:
    return {"item_id": item, "type": kind, "quantity": quantity,
            "ts": pd.Timestamp(T0 + timedelta(minutes=minutes))}


def test_stock_is_capacity_minus_orders_plus_restocks_up_to_the_cut_off():
    items = pd.DataFrame({"item_id": [1, 2, 3], "capacity": [5, 2, 0]})
    events = pd.DataFrame([_ev(1, "order", 2, 1), _ev(1, "click", 1, 2), _ev(2, "order", 3, 3),
                           _ev(1, "restock", 4, 4), _ev(2, "restock", 1, 5),
                           _ev(1, "order", 1, 60)])
    got = stock_levels(items, events, T0 + timedelta(minutes=30))
    # 1: 5 - 2 + 4 (the order at minute 60 is after the cut-off); 2: max(0, 2 - 3) + 1; 3: 0.
    assert got.to_dict() == {1: 7, 2: 1, 3: 0}


def test_the_backfill_matches_the_simulators_own_stock_at_the_end(tmp_path):
    cat = simulate(None, seed=4, n_users=300, n_items=200, days=2, sessions_per_day=200,
                   write=False)
    end = pd.Timestamp(cat.events["ts"].max()).to_pydatetime()
    path = write_stock(cat.items, cat.events, end, tmp_path)
    got = pd.read_parquet(path).set_index("item_id")["stock_level"]
    moves = cat.events[cat.events["type"].isin(["order", "restock"])]
    sign = moves["type"].map({"order": -1, "restock": 1})
    want = cat.items.set_index("item_id")["capacity"].add(
        (sign * moves["quantity"]).groupby(moves["item_id"]).sum(), fill_value=0)
    # The simulator never sells what is not there, so no clamp is needed to agree.
    assert (want >= 0).all()
    assert got.sort_index().tolist() == want.sort_index().astype(int).tolist()
    for view in STREAMED:  # every streamed view has a typed file for `materialize`
        assert pq.read_schema(tmp_path / str(view.offline_file)) == parquet_schema(view)


def test_ensure_sources_never_overwrites(tmp_path):
    first = ensure_sources(tmp_path)
    assert len(first) == len(STREAMED)
    assert ensure_sources(tmp_path) == []


def test_popular_lists_rank_by_weighted_events_in_the_latest_snapshot(tmp_path):
    day1, day2 = pd.Timestamp("2026-11-30", tz="UTC"), pd.Timestamp("2026-12-01", tz="UTC")
    rows = [  # item, day, category, clicks, carts, orders
        (1, day1, 0, 100, 0, 0), (1, day2, 0, 1, 0, 0), (2, day2, 0, 3, 1, 0),
        (3, day2, 1, 5, 0, 1), (4, day2, 1, 0, 0, 0)]
    frame = pd.DataFrame([{"item_id": i, "event_timestamp": d, "created": d,
                           "item_category": c, "item_brand": 0, "item_price": 1.0,
                           "item_clicks_1d": 0, "item_clicks_7d": k, "item_carts_7d": ca,
                           "item_orders_7d": o, "item_cart_rate_7d": 0.0,
                           "item_order_rate_7d": 0.0} for i, d, c, k, ca, o in rows])
    (tmp_path / "data" / "features").mkdir(parents=True)
    frame.to_parquet(tmp_path / "data" / "features" / "item_stats.parquet")
    got = popular_lists(Settings(scenario="recs", repo_root=tmp_path))
    # scores: 1 -> 1 (latest day only), 2 -> 3 + 3, 3 -> 5 + 6; 4 has none and is left out.
    assert got.global_ == [3, 2, 1]
    assert got.by_category == {0: [2, 1], 1: [3]}
