"""The shop simulator: OTTO calibration, determinism, stock that never goes negative, skew."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from pipelines.recs import simulate as sim
from pipelines.recs.events import COLUMNS, parse_event

START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def shop() -> sim.Catalogue:
    return sim.simulate(seed=3, n_users=4000, n_items=3000, days=10, sessions_per_day=1500,
                        start=START, write=False)


def test_sessions_and_event_types_match_ottos_published_statistics(shop):
    ev = shop.events
    users = ev[ev["type"] != "restock"]
    lengths = users.groupby("session_id").size()
    assert 5 <= lengths.median() <= 7  # OTTO: median ~6
    assert 55 <= lengths.quantile(0.95) <= 82  # OTTO: p95 ~68
    assert lengths.max() <= sim.SESSION_CAP
    counts = users["type"].value_counts()
    assert counts["click"] / counts["order"] == pytest.approx(38.0, rel=0.15)
    assert counts["cart"] / counts["order"] == pytest.approx(3.3, rel=0.15)


def test_schema_times_and_every_row_parses(shop):
    ev = shop.events
    assert tuple(ev.columns) == COLUMNS
    assert ev["ts"].is_monotonic_increasing
    assert ev["ts"].min() >= pd.Timestamp(START)
    assert ev["ts"].max() < pd.Timestamp(START) + pd.Timedelta(days=10)
    assert ev["event_id"].is_unique
    for row in ev.sample(300, random_state=0).to_dict("records"):
        assert parse_event(row)["item_id"] == row["item_id"]


def test_stock_replayed_event_by_event_never_goes_negative_and_some_items_run_out(shop):
    level = dict(zip(shop.items["item_id"], shop.items["capacity"], strict=True))
    emptied = set()
    moves = shop.events[shop.events["type"].isin(["order", "restock"])]
    for item, kind, qty in zip(moves["item_id"], moves["type"], moves["quantity"], strict=True):
        level[item] += qty if kind == "restock" else -qty
        assert level[item] >= 0, f"item {item} oversold"
        if level[item] == 0:
            emptied.add(item)
    assert len(emptied) >= 20
    assert (moves["type"] == "restock").any()


def test_same_seed_same_data_other_seed_differs():
    kw = dict(n_users=300, n_items=200, days=3, sessions_per_day=100, start=START, write=False)
    a, b, c = sim.simulate(seed=1, **kw), sim.simulate(seed=1, **kw), sim.simulate(seed=2, **kw)
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.items, b.items)
    assert not a.events.equals(c.events)


def test_user_skew_concentrates_sessions_on_the_busiest_users():
    def top_share(skew: float) -> float:
        cat = sim.simulate(seed=0, n_users=5000, n_items=500, days=2, sessions_per_day=5000,
                           user_skew=skew, start=START, write=False)
        per_user = cat.events[cat.events["user_id"] > 0].groupby("user_id")["session_id"] \
            .nunique().sort_values(ascending=False)
        return per_user.head(50).sum() / per_user.sum()  # the top 1% of users

    low, mid, high = top_share(0.8), top_share(1.0), top_share(1.2)
    assert low < mid < high


def test_sessions_revisit_items_and_follow_the_latent_co_visit_graph(shop):
    ev = shop.events[shop.events["type"] != "restock"].sort_values(["session_id", "ts"])
    same = ev["session_id"].to_numpy()[1:] == ev["session_id"].to_numpy()[:-1]
    prev, nxt = ev["item_id"].to_numpy()[:-1][same], ev["item_id"].to_numpy()[1:][same]
    edge = (shop.neighbours[prev] == nxt[:, None]).any(axis=1)
    assert 0.25 < edge.mean() < 0.6  # P_COVISIT of the steps (plus chance)
    repeats = ev.duplicated(["session_id", "item_id"]).mean()
    assert repeats > 0.2


def test_drift_launches_new_items_only_from_its_day():
    cat = sim.simulate(seed=0, n_users=500, n_items=1000, days=6, sessions_per_day=400,
                       drift_from_day=3, start=START, write=False)
    new = set(cat.items.loc[cat.items["launch_day"] == 3, "item_id"])
    ev = cat.events[cat.events["type"] != "restock"]
    day = (ev["ts"] - pd.Timestamp(START)).dt.days
    seen_new = ev["item_id"].isin(new)
    assert not seen_new[day < 3].any()
    assert seen_new[day >= 3].mean() > 0.05


def test_writes_the_three_frames_under_data_recs(tmp_path):
    from rtml.settings import Settings

    cat = sim.simulate(Settings(repo_root=tmp_path), seed=0, n_users=50, n_items=40, days=2,
                       sessions_per_day=20, start=START)
    for name in ("items", "users", "events"):
        got = pd.read_parquet(tmp_path / "data" / "recs" / f"{name}.parquet")
        pd.testing.assert_frame_equal(got, getattr(cat, name))
    assert np.array_equal(np.load(tmp_path / "data" / "recs" / "neighbours.npy"), cat.neighbours)
