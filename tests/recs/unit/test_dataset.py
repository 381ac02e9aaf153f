"""The point-in-time training set: no feature sees the future, checked two independent ways.

1. Rebuild everything (nightly rows, timelines, candidates, the model rows) from the history
   cut at the request instant: the rows must be identical to those built from full history.
2. Recompute the values with plain loops over the raw events (a brute force that shares no code
   with the builders) and compare.
"""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipelines.recs import batch_features as bf
from pipelines.recs.simulate import simulate
from pipelines.recs.timeline import instant
from training.recs import train as tr
from training.recs.dataset import context, item_features, sample_requests

START = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def shop():
    cat = simulate(seed=5, n_users=250, n_items=150, days=6, sessions_per_day=160, start=START,
                   write=False)
    events, items = cat.events, cat.items
    base = pd.Timestamp(START)
    days = list(pd.date_range(base + DAY, base + 6 * DAY, freq="D"))
    frames = bf.nightly(events, items, days)
    world = tr._world(events, items, frames, base)
    ev = bf.user_events(events, items)
    reqs = sample_requests(ev, base, start=base + 3 * DAY, end=base + 5 * DAY,
                           cut=base + 5 * DAY, rng=np.random.default_rng(1), limit=60)
    return cat, base, days, world, reqs


def _rows(world, req):
    built = tr.build(world, [req])[0]
    return [c.item_id for c in built.cands], built.x


def test_rows_built_from_history_cut_at_the_request_equal_those_from_full_history(shop):
    cat, base, days, world, reqs = shop
    for req in reqs[::15]:
        at = instant(base, req.t)
        past = cat.events[cat.events["ts"] <= at]
        cut_days = [d for d in days if d <= at]
        cut_world = tr._world(past, cat.items, bf.nightly(past, cat.items, cut_days), base)
        items_full, x_full = _rows(world, req)
        items_cut, x_cut = _rows(cut_world, req)
        assert items_full == items_cut
        np.testing.assert_array_equal(x_full, x_cut)


def test_session_labels_and_features_equal_a_brute_force_over_raw_events(shop):
    cat, base, _, world, reqs = shop
    rows = cat.events.to_dict("records")
    item_category = dict(zip(cat.items["item_id"], cat.items["category"], strict=True))
    capacity = dict(zip(cat.items["item_id"], cat.items["capacity"], strict=True))
    cut = base + 5 * DAY
    by_session, by_user, by_item = {}, {}, {}
    for r in rows:
        by_session.setdefault(r["session_id"], []).append(r)
        by_user.setdefault(r["user_id"], []).append(r)
        by_item.setdefault(r["item_id"], []).append(r)
    checked_profiles = 0
    for req in reqs:
        at = instant(base, req.t)
        day = at.floor("D")
        mine = by_session[req.session_id]
        seen = [r for r in mine if r["ts"] <= at]
        recent = []
        for r in reversed(seen):
            if r["item_id"] not in recent:
                recent.append(r["item_id"])
        assert req.session["session_items"] == recent[:20]
        assert req.session["session_length"] == len(seen)
        assert req.truth == {r["item_id"] for r in mine if at < r["ts"] < cut}
        assert req.truth  # every request has something to predict

        user_rows = [r for r in by_user[req.user_id] if r["ts"] < day]
        ctx, profile = context(world, req)
        if not user_rows:
            assert profile is None and ctx.history_items == []
        else:
            checked_profiles += 1
            week = [r for r in user_rows if r["ts"] >= day - 7 * DAY]
            assert profile["user_events_7d"] == len(week)
            assert profile["user_events_1d"] == sum(r["ts"] >= day - DAY for r in user_rows)
            assert profile["user_orders_30d"] == sum(r["type"] == "order" for r in user_rows)
            last = max(r["ts"] for r in user_rows)
            assert profile["user_hours_since_last"] == pytest.approx(
                (day - last).total_seconds() / 3600)
            weight = {}
            for r in user_rows:
                c = item_category[r["item_id"]]
                weight[c] = weight.get(c, 0) + {"click": 1, "cart": 6, "order": 3}[r["type"]]
            top = sorted(weight, key=lambda c: (-weight[c], c))[:5]
            assert list(profile["user_top_categories"]) == top
            history = []
            for r in reversed(user_rows):
                if r["item_id"] not in history:
                    history.append(r["item_id"])
            assert list(profile["user_recent_items"]) == history[:20]

        probe = sorted({c.item_id for c in tr.build(world, [req])[0].cands})[:25]
        feats = item_features(world, probe, req.t)
        for item in probe:
            mine_item = by_item.get(item, [])
            trend = sum(1 for r in mine_item if r["type"] != "restock"
                        and at - pd.Timedelta(hours=1) < r["ts"] <= at)
            stock = capacity[item] + sum(
                r["quantity"] * (1 if r["type"] == "restock" else -1)
                for r in mine_item if r["type"] in ("order", "restock") and r["ts"] <= at)
            clicks = sum(1 for r in mine_item if r["type"] == "click"
                         and day - 7 * DAY <= r["ts"] < day)
            assert feats[item]["trend_events_1h"] == trend
            assert feats[item]["stock_level"] == stock
            assert stock > 0  # candidates are in stock at the request instant
            assert feats[item]["item_clicks_7d"] == clicks
    assert checked_profiles >= 10


def test_a_request_reads_the_snapshot_of_its_day_never_the_next(shop):
    _, base, _, world, reqs = shop
    req = reqs[0]
    at = instant(base, req.t)
    stamps = world.nightly._stamps(req.t)
    assert stamps[0] == at.floor("D") and all(s <= at for s in stamps)
