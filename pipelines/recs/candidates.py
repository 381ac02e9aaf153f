"""Candidate generation: at most `limit` in-stock items worth ranking for one request.

Four sources, each scored on its own scale (the ranker sees every source's score as a feature):

* revisit: items of the current session (recent first, repeated items count again) and the
  user's recent history — OTTO's strongest single signal;
* covisit: nightly co-visitation neighbours of the session's most recent items, weighted by the
  neighbour's weight and the anchor's recency;
* popular: popular items of the user's top categories (cold users: the global popular list);
* trending: the last hour's most active items.

Each source fills up to its quota in score order; an item found by several sources is listed
once, under the first source in that order, with all its scores. Out-of-stock items are dropped
here, before ranking, so the ranker never spends its budget on what cannot be sold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Source = Literal["revisit", "covisit", "popular", "trending"]
SOURCES: tuple[Source, ...] = ("revisit", "covisit", "popular", "trending")
# Share of `limit` each source may fill (the rest goes to whoever has more).
QUOTAS: dict[Source, float] = {"revisit": 0.25, "covisit": 0.45, "popular": 0.2, "trending": 0.1}
COVISIT_ANCHORS = 5  # the session's most recent distinct items whose neighbours we follow
HISTORY_WEIGHT = 0.3  # a history item counts this much of a session item at the same position


@dataclass(frozen=True, slots=True)
class Candidate:
    """One item to rank: the source that found it, its score there, and every source's score."""

    item_id: int
    source: Source
    source_score: float
    scores: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # in SOURCES order


@dataclass(kw_only=True)
class CandidateContext:
    """Everything candidate generation reads for one request (all lists best/recent first).

    `covisit` maps an item to its neighbour ids, `covisit_weights` to their weights (same order;
    absent: rank-decayed). `popular_by_category` holds each category's popular items;
    `popular` is the global list for cold users. `stock` maps item -> units (missing: unknown,
    treated as in stock unless `in_stock` says otherwise).
    """

    session_items: Sequence[int] = ()
    history_items: Sequence[int] = ()
    top_categories: Sequence[int] = ()
    covisit: Mapping[int, Sequence[int]] = field(default_factory=dict)
    covisit_weights: Mapping[int, Sequence[float]] = field(default_factory=dict)
    popular_by_category: Mapping[int, Sequence[int]] = field(default_factory=dict)
    popular: Sequence[int] = ()
    trending: Sequence[int] = ()
    stock: Mapping[int, float] | None = None
    in_stock_fn: Callable[[int], bool] | None = None

    def in_stock(self, item_id: int) -> bool:
        """Whether the item can be sold now (unknown stock counts as in stock)."""
        if self.in_stock_fn is not None:
            return self.in_stock_fn(item_id)
        if self.stock is None:
            return True
        return self.stock.get(item_id, 1.0) > 0

    @property
    def cold(self) -> bool:
        """No session, no history: nothing personal to start from."""
        return not self.session_items and not self.history_items


def source_scores(ctx: CandidateContext) -> dict[Source, dict[int, float]]:
    """Every source's items with their scores (before stock filtering and quotas)."""
    revisit: dict[int, float] = {}
    for pos, item in enumerate(ctx.session_items):
        revisit[item] = revisit.get(item, 0.0) + 1.0 / (1.0 + pos)
    for pos, item in enumerate(ctx.history_items):
        revisit[item] = revisit.get(item, 0.0) + HISTORY_WEIGHT / (1.0 + pos)
    covisit: dict[int, float] = {}
    anchors = list(dict.fromkeys(ctx.session_items))[:COVISIT_ANCHORS] \
        or list(dict.fromkeys(ctx.history_items))[:COVISIT_ANCHORS]
    for rank, anchor in enumerate(anchors):
        recency = 1.0 / (1.0 + rank)
        neighbours = ctx.covisit.get(anchor, ())
        weights = ctx.covisit_weights.get(anchor)
        top = max(weights[0], 1e-12) if weights else 1.0
        for j, item in enumerate(neighbours):
            w = weights[j] / top if weights else 1.0 / (1.0 + j)
            covisit[item] = covisit.get(item, 0.0) + recency * w
    popular: dict[int, float] = {}
    if ctx.top_categories:
        for crank, cat in enumerate(ctx.top_categories):
            for j, item in enumerate(ctx.popular_by_category.get(cat, ())):
                score = 1.0 / (1.0 + crank) / (1.0 + 0.1 * j)
                popular[item] = max(popular.get(item, 0.0), score)
    else:
        for j, item in enumerate(ctx.popular):
            popular[item] = 1.0 / (1.0 + 0.1 * j)
    trending = {item: 1.0 / (1.0 + 0.1 * j) for j, item in enumerate(ctx.trending)}
    return {"revisit": revisit, "covisit": covisit, "popular": popular, "trending": trending}


def candidates(ctx: CandidateContext, limit: int = 200) -> list[Candidate]:
    """Up to `limit` distinct in-stock candidates, source by source (see the module docstring).

    A cold user (no session, no history) gets popular and trending items only. If the global
    popular list is given it also pads a short list, so a request always has something to rank.
    """
    scored = source_scores(ctx)
    every = ctx.stock is None and ctx.in_stock_fn is None  # stock unknown: all can be sold
    # Best score first, ties by item id (a stable sort by score over the ids in order).
    ranked = {src: sorted(sorted(items if every else filter(ctx.in_stock, items)),
                          key=items.__getitem__, reverse=True)
              for src, items in scored.items()}
    chosen: dict[int, Source] = {}
    quota = {src: int(round(QUOTAS[src] * limit)) for src in SOURCES}
    leftovers: list[tuple[Source, int]] = []
    for src in SOURCES:
        taken = 0
        for item in ranked[src]:
            if item in chosen:
                continue
            if taken < quota[src]:
                chosen[item] = src
                taken += 1
            else:
                leftovers.append((src, item))
    for src, item in leftovers:  # unused quota goes to the remaining items, in source order
        if len(chosen) >= limit:
            break
        chosen.setdefault(item, src)
    if len(chosen) < limit:  # a short list: pad with the global popular items
        for j, item in enumerate(ctx.popular):
            if len(chosen) >= limit:
                break
            if item not in chosen and ctx.in_stock(item):
                scored["popular"].setdefault(item, 1.0 / (1.0 + 0.1 * j))
                chosen[item] = "popular"
    out = []
    rv, cv, pp, tr = (scored[s] for s in SOURCES)
    for item, src in list(chosen.items())[:limit]:
        scores = (rv.get(item, 0.0), cv.get(item, 0.0), pp.get(item, 0.0), tr.get(item, 0.0))
        out.append(Candidate(item, src, scored[src][item], scores))  # type: ignore[arg-type]
    return out
