"""The service's reads: a user's views, many items' views, stock, the L2 entry and global lists.

Every Feast read goes through the kit's `OnlineReader` (one pipelined HMGET per view and entity),
one FeatureService per use so a request reads the user's views once, the anchors' co-visit lists
once and each candidate's item views once (`feature_repo/recs/serving.py`). Beside Feast: the L2
entry, the trending index and the popular lists (`pipelines/recs/keys.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from feast import FeatureStore

from feature_repo.recs.specs import NIGHTLY_DEFAULTS
from feature_repo.recs.stream_specs import STREAMED_DEFAULTS
from pipelines.recs.candidates import SOURCES, Candidate
from pipelines.recs.keys import POPULAR_KEY, TRENDING_INDEX, l2_key
from rtml.features.online import FeatureRow, OnlineReader

USER_SERVICE = "recs_serving_user_v1"
ITEM_SERVICE = "recs_serving_items_v1"
ANCHOR_SERVICE = "recs_serving_anchors_v1"
STOCK_SERVICE = "recs_stock_v1"
DEFAULTS: dict[str, Any] = {**NIGHTLY_DEFAULTS, **STREAMED_DEFAULTS}
L2_VERSION = 1


@dataclass
class L2Entry:
    """A user's precomputed candidates (no session sources) and profile values."""

    built_at: float
    user: dict[str, Any]
    candidates: list[Candidate]

    def encode(self) -> bytes:
        """Compact JSON: `[item, source index, source score, *scores]` per candidate."""
        rows = [[c.item_id, SOURCES.index(c.source), round(c.source_score, 6),
                 *(round(s, 6) for s in c.scores)] for c in self.candidates]
        return json.dumps({"v": L2_VERSION, "t": self.built_at, "u": self.user, "c": rows},
                          separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes | str | None) -> L2Entry | None:
        """None for a missing entry or one of another layout (rebuilt by the next job run)."""
        if not raw:
            return None
        data = json.loads(raw)
        if data.get("v") != L2_VERSION:
            return None
        cands = [Candidate(int(r[0]), SOURCES[int(r[1])], float(r[2]),
                           tuple(float(x) for x in r[3:7]))  # type: ignore[arg-type]
                 for r in data["c"]]
        return cls(built_at=float(data["t"]), user=dict(data["u"]), candidates=cands)


@dataclass
class Popular:
    """Nightly popular lists: global and per category (item ids, most popular first)."""

    global_: list[int] = field(default_factory=list)
    by_category: dict[int, list[int]] = field(default_factory=dict)

    @classmethod
    def decode(cls, raw: bytes | str | None) -> Popular:
        """An empty list set when the job has not run yet."""
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(global_=[int(i) for i in data.get("global", [])],
                   by_category={int(c): [int(i) for i in items]
                                for c, items in data.get("by_category", {}).items()})

    def encode(self) -> bytes:
        """What `POPULAR_KEY` holds."""
        return json.dumps({"global": self.global_,
                           "by_category": {str(c): v for c, v in self.by_category.items()}},
                          separators=(",", ":")).encode()


class RecsOnline:
    """The readers of the three serving FeatureServices, resolved once against the registry."""

    def __init__(self, store: FeatureStore) -> None:
        self.users = OnlineReader(store=store, service_name=USER_SERVICE, defaults=DEFAULTS)
        self.items = OnlineReader(store=store, service_name=ITEM_SERVICE, defaults=DEFAULTS)
        self.anchors = OnlineReader(store=store, service_name=ANCHOR_SERVICE, defaults=DEFAULTS)
        self.stock = OnlineReader(store=store, service_name=STOCK_SERVICE, defaults=DEFAULTS)

    async def user(self, client: Any, user_id: int) -> FeatureRow:
        """The user's profile and session (`missing_views` says which the store lacks)."""
        (row,) = await self.users.read(client, [{"user_id": user_id}])
        return row

    async def item_rows(self, client: Any, items: Sequence[int]) -> dict[int, FeatureRow]:
        """The candidates' views (stats, trending, stock), in one pipeline."""
        rows = await self.items.read(client, [{"item_id": i} for i in items])
        return dict(zip(items, rows, strict=True))

    async def anchor_rows(self, client: Any, items: Sequence[int]) -> dict[int, FeatureRow]:
        """The anchors' co-visit lists and stats, in one pipeline."""
        rows = await self.anchors.read(client, [{"item_id": i} for i in items])
        return dict(zip(items, rows, strict=True))

    async def stock_levels(self, client: Any, items: Sequence[int]) -> dict[int, float]:
        """Units in stock now; 0 for an item the store has no level for (never sold blind)."""
        rows = await self.stock.read(client, [{"item_id": i} for i in items])
        return {i: (0.0 if "item_stock" in r.missing_views else float(r.values["stock_level"]))
                for i, r in zip(items, rows, strict=True)}

    def stock_levels_sync(self, client: Any, items: Sequence[int]) -> dict[int, float]:
        """Blocking twin of `stock_levels` for jobs."""
        rows = self.stock.read_sync(client, [{"item_id": i} for i in items])
        return {i: (0.0 if "item_stock" in r.missing_views else float(r.values["stock_level"]))
                for i, r in zip(items, rows, strict=True)}


async def read_l2(client: Any, user_id: int) -> L2Entry | None:
    """The user's L2 entry, if the job wrote one within its TTL."""
    return L2Entry.decode(await client.get(l2_key(user_id)))


async def read_lists(client: Any, trending_n: int) -> tuple[Popular, list[int]]:
    """The popular lists and the top `trending_n` trending items, in one round trip."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.get(POPULAR_KEY)
        pipe.zrevrange(TRENDING_INDEX, 0, trending_n - 1)
        raw, trending = await pipe.execute()
    return Popular.decode(raw), [int(i) for i in trending]


def write_l2(pipe: Any, user_id: int, entry: L2Entry, ttl_s: float) -> None:
    """Queue one user's entry with its TTL on a pipeline."""
    pipe.set(l2_key(user_id), entry.encode(), ex=max(1, int(ttl_s)))


def profile_values(row: FeatureRow, names: Iterable[str]) -> dict[str, Any]:
    """The named values of a read row (what an L2 entry keeps of the user)."""
    return {n: row.values[n] for n in names}


def known(row: FeatureRow, view: str) -> bool:
    """Whether the store has a row of `view` for this entity."""
    return view not in row.missing_views


def as_ints(values: Any) -> list[int]:
    """A list feature as item or category ids."""
    return [int(v) for v in values or ()]


def mapping(row: FeatureRow) -> Mapping[str, Any]:
    """The values of a row."""
    return row.values
