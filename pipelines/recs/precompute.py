"""The L2 job: `rtml recs precompute --top N`, hourly (its entries live `entity_cache_ttl_s`).

For the `top` most active users (the nightly profile's last-7-day events) it builds what does
not change within a session: candidates from the user's history (re-visits, co-visit neighbours
of recent items), popular items of their top categories and the trending list, plus the profile
values the ranker reads; and writes them as one entry per user with a TTL. The service merges
the live session's candidates into an entry and re-scores everything at request time, so an
entry is never the answer itself. The job also writes the nightly popular lists (global and per
category) that cold starts and fallbacks use.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bentos.recs import ranking as rk
from bentos.recs.online import L2Entry, Popular, RecsOnline, as_ints, write_l2
from feature_repo.recs.specs import ITEM_STATS, USER_PROFILE
from pipelines.recs.keys import POPULAR_KEY, TRENDING_INDEX
from rtml.features.online import load_store
from rtml.redis import connect
from rtml.settings import Settings

BATCH = 500
POPULAR_N = 500  # global list length
POPULAR_PER_CATEGORY = 100


@dataclass
class Report:
    """What one run did."""

    users: int
    written: int
    seconds: float
    popular: int


def _latest(path: Any, key: str) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    return frame.sort_values("event_timestamp").drop_duplicates(key, keep="last")


def popular_lists(settings: Settings) -> Popular:
    """Global and per-category popular items from the latest nightly item stats."""
    path = settings.features_dir / str(ITEM_STATS.offline_file)
    if not path.exists():
        return Popular()
    stats = _latest(path, "item_id")
    stats = stats.assign(pop=stats["item_clicks_7d"] + 3 * stats["item_carts_7d"]
                         + 6 * stats["item_orders_7d"])
    stats = stats[stats["pop"] > 0].sort_values(["pop", "item_id"], ascending=[False, True])
    by_category = {int(c): g["item_id"].astype(int).head(POPULAR_PER_CATEGORY).tolist()
                   for c, g in stats.groupby("item_category")}
    return Popular(global_=stats["item_id"].astype(int).head(POPULAR_N).tolist(),
                   by_category=by_category)


def most_active(settings: Settings, top: int) -> list[int]:
    """The `top` users by last-7-day events in the latest nightly profile (ties: lower id)."""
    path = settings.features_dir / str(USER_PROFILE.offline_file)
    if not path.exists() or top <= 0:
        return []
    users = _latest(path, "user_id")
    users = users.sort_values(["user_events_7d", "user_id"], ascending=[False, True])
    return users["user_id"].astype(int).head(top).tolist()


def _batches(values: Sequence[int], n: int) -> Iterator[Sequence[int]]:
    for i in range(0, len(values), n):
        yield values[i:i + n]


def entries(online: RecsOnline, client: Any, users: Sequence[int], popular: Popular,
            trending: list[int], now: float) -> dict[int, L2Entry]:
    """One entry per user that has a profile online (an unknown user gets none: cold start)."""
    rows = online.users.read_sync(client, [{"user_id": u} for u in users])
    history = {u: as_ints(r.values.get("user_recent_items")) for u, r in zip(users, rows,
                                                                             strict=True)}
    anchors = sorted({i for h in history.values() for i in rk.anchors([], h)})
    covisit = dict(zip(anchors, online.anchors.read_sync(client, [{"item_id": i}
                                                                    for i in anchors]),
                       strict=True)) if anchors else {}
    out = {}
    names = list(online.users.feature_names)
    for user, row in zip(users, rows, strict=True):
        if "user_profile" in row.missing_views:
            continue
        mine = {i: covisit[i] for i in rk.anchors([], history[user])}
        cands = rk.generate(rk.full_context(
            session=[], history=history[user],
            categories=as_ints(row.values.get("user_top_categories")), covisit=mine,
            popular_by_category=popular.by_category, popular=popular.global_,
            trending=trending))
        profile = {n: row.values[n] for n in names if n in USER_PROFILE.features}
        out[user] = L2Entry(built_at=now, user=profile, candidates=cands)
    return out


def precompute(settings: Settings, *, top: int) -> Report:
    """Write the popular lists and the L2 entries of the `top` most active users."""
    t0 = time.perf_counter()
    client = connect(settings, role="cli")
    online = RecsOnline(load_store(settings))
    popular = popular_lists(settings)
    client.set(POPULAR_KEY, popular.encode())
    trending = [int(i) for i in client.zrevrange(TRENDING_INDEX, 0, rk.TRENDING_N - 1)]
    users = most_active(settings, top)
    written = 0
    for part in _batches(users, BATCH):
        built = entries(online, client, part, popular, trending, time.time())
        with client.pipeline(transaction=False) as pipe:
            for user, entry in built.items():
                write_l2(pipe, user, entry, settings.entity_cache_ttl_s)
            pipe.execute()
        written += len(built)
    return Report(users=len(users), written=written, seconds=time.perf_counter() - t0,
                  popular=len(popular.global_))
