"""One request's ranking, free of I/O: candidate contexts, the L2 merge, scorers, re-rank.

The service (`service.py`) does the reads and times the stages; everything here is plain data in,
plain data out, so it is tested without servers.

- `full_context` / `session_context`: what `pipelines.recs.candidates.candidates` reads. With an
  L2 entry the user's own sources (history, categories, popular) come precomputed and only the
  session's sources (re-visits, co-visit neighbours of its items) and the current trending list
  are built now; `merge` puts the session's first, so an in-session click is never stale.
- Scorers: `HeuristicScorer` (source scores and trending; what serves until a ranker is in the
  model store) and `ModelScorer` (the trained booster over `training.recs` features).
- `rerank`: MMR over the best `MMR_POOL` by score, then the stock check picks the first `k`
  in stock, refilling from the rest of the pool in score order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from pipelines.recs.candidates import (
    COVISIT_ANCHORS,
    SOURCES,
    Candidate,
    CandidateContext,
    candidates,
)
from pipelines.recs.rerank import mmr
from rtml.features.online import FeatureRow

CANDIDATES = 200  # ranked per request
STOCK_SLACK = 40  # generated beyond CANDIDATES: sold-out ones are dropped before ranking
MMR_POOL = 50  # the best-scored candidates MMR picks from (the issue: >= 50 to pick 10)
TRENDING_N = 50
HEURISTIC_WEIGHTS = {"revisit": 3.0, "covisit": 2.0, "popular": 1.0, "trending": 1.0}
DEFAULT_LAMBDA = 0.7


def full_context(*, session: Sequence[int], history: Sequence[int], categories: Sequence[int],
                 covisit: Mapping[int, FeatureRow], popular_by_category: Mapping[int, list[int]],
                 popular: Sequence[int], trending: Sequence[int]) -> CandidateContext:
    """Every source, for a user without an L2 entry (or a cold one: all lists empty)."""
    items, weights = _covisit_lists(covisit)
    return CandidateContext(session_items=session, history_items=history,
                            top_categories=categories, covisit=items, covisit_weights=weights,
                            popular_by_category=popular_by_category, popular=popular,
                            trending=trending)


def session_context(*, session: Sequence[int], covisit: Mapping[int, FeatureRow],
                    trending: Sequence[int]) -> CandidateContext:
    """Only what changes within the hour: the session's sources and the trending list."""
    items, weights = _covisit_lists(covisit)
    return CandidateContext(session_items=session, covisit=items, covisit_weights=weights,
                            trending=trending)


def _covisit_lists(rows: Mapping[int, FeatureRow]
                   ) -> tuple[dict[int, list[int]], dict[int, list[float]]]:
    items = {i: [int(x) for x in r.values.get("covisit_items") or ()] for i, r in rows.items()}
    weights = {i: [float(x) for x in r.values.get("covisit_weights") or ()]
               for i, r in rows.items()}
    return items, {i: w for i, w in weights.items() if w and len(w) == len(items[i])}


def anchors(session: Sequence[int], history: Sequence[int]) -> list[int]:
    """Items whose co-visit neighbours the generator follows (its rule: session, else history)."""
    return (list(dict.fromkeys(session))[:COVISIT_ANCHORS]
            or list(dict.fromkeys(history))[:COVISIT_ANCHORS])


def merge(fresh: Sequence[Candidate], cached: Sequence[Candidate], limit: int) -> list[Candidate]:
    """The session's candidates first, then the L2 entry's, at most `limit`.

    An item in both keeps each source's best score and the fresh source.
    """
    out: dict[int, Candidate] = {c.item_id: c for c in fresh}
    for c in cached:
        if c.item_id in out:
            f = out[c.item_id]
            scores = tuple(max(a, b) for a, b in zip(f.scores, c.scores, strict=True))
            out[c.item_id] = Candidate(f.item_id, f.source, f.source_score, scores)  # type: ignore[arg-type]
        elif len(out) < limit:
            out[c.item_id] = c
    return list(out.values())[:limit]


def generate(ctx: CandidateContext) -> list[Candidate]:
    """The generator, asked for `STOCK_SLACK` more than are ranked (stock is read afterwards).

    Training's generator knows the stock and fills each source's quota with items in stock; here
    the stock comes with the candidates' features, one read for both, and the sold-out ones are
    dropped before ranking: the same items reach the ranker unless more than `STOCK_SLACK` of the
    first `CANDIDATES + STOCK_SLACK` are sold out (reading every offered item's stock first cost
    more than the rest of the request: see docs/recs-serving.md).
    """
    return candidates(ctx, limit=CANDIDATES + STOCK_SLACK)


def categories_of(session: Sequence[int], rows: Mapping[int, FeatureRow]) -> list[int]:
    """Distinct categories of the session's items, most recent first (the ones read)."""
    cats = [int(rows[i].values.get("item_category", -1)) for i in session if i in rows]
    return list(dict.fromkeys(c for c in cats if c >= 0))


class Scorer(Protocol):
    """Scores candidates for one request; `version` goes into answers and logs."""

    version: str
    mmr_lambda: float

    def score(self, cands: Sequence[Candidate], user: Mapping[str, Any] | None,
              items: Mapping[int, FeatureRow], session: Mapping[str, Any]) -> np.ndarray:
        """One score per candidate, higher is better (`user` None: an unknown user)."""
        ...


@dataclass
class HeuristicScorer:
    """Weighted source scores plus a little of the last hour's activity: no model needed."""

    version: str = "heuristic-v1"
    mmr_lambda: float = DEFAULT_LAMBDA

    def score(self, cands: Sequence[Candidate], user: Mapping[str, Any] | None,
              items: Mapping[int, FeatureRow], session: Mapping[str, Any]) -> np.ndarray:
        """Σ weight x source score + 0.1 log(1 + last-hour events)."""
        w = np.array([HEURISTIC_WEIGHTS[s] for s in SOURCES])
        base = np.array([c.scores for c in cands], dtype=np.float64).reshape(-1, len(SOURCES))
        trend = np.array([math.log1p(float(items[c.item_id].values.get("trend_events_1h", 0)))
                          for c in cands])
        return base @ w + 0.1 * trend


@dataclass
class ModelScorer:
    """The trained ranker: `features(...)` builds its columns, `predict` scores them."""

    version: str
    mmr_lambda: float
    features: Callable[..., np.ndarray]
    predict: Callable[[np.ndarray], np.ndarray]

    def score(self, cands: Sequence[Candidate], user: Mapping[str, Any] | None,
              items: Mapping[int, FeatureRow], session: Mapping[str, Any]) -> np.ndarray:
        """The booster's scores over the features training used."""
        x = self.features(cands, user, {i: r.values for i, r in items.items()}, session)
        return self.predict(np.asarray(x, dtype=np.float32))


@dataclass
class Ranked:
    """A request's ranked list, longer than `k` (the stock check refills from it)."""

    order: list[int]  # MMR's picks, then the rest of the pool by score
    scores: dict[int, float]
    sources: dict[int, str]


def rerank(cands: Sequence[Candidate], scores: np.ndarray, categories: Mapping[int, int],
           *, k: int, lam: float) -> Ranked:
    """MMR picks `k` (+ the pool's rest as refill) from the best `max(MMR_POOL, 2k)` by score."""
    order = np.lexsort((np.arange(len(cands)), -scores))
    pool = [cands[int(i)] for i in order[:max(MMR_POOL, 2 * k)]]
    ids = [c.item_id for c in pool]
    pool_scores = {c.item_id: float(scores[int(i)]) for c, i in zip(pool, order, strict=False)}
    picked = mmr(ids, [pool_scores[i] for i in ids], [categories.get(i, -1) for i in ids],
                 k, lam)
    rest = [i for i in ids if i not in set(picked)]
    return Ranked(order=picked + rest, scores=pool_scores,
                  sources={c.item_id: c.source for c in pool})


def pick_in_stock(ranked: Ranked, stock: Mapping[int, float], k: int) -> list[int]:
    """The first `k` of the ranked order whose stock is above zero right now."""
    return [i for i in ranked.order if stock.get(i, 0.0) > 0][:k]
