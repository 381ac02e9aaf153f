"""Diversity re-ranking: maximal marginal relevance over categories, then a last stock check.

MMR picks, one at a time, the item maximising `lam * relevance - (1 - lam) * redundancy`, where
relevance is the ranker's score min-max scaled over the list (so `lam` means the same for any
score scale) and redundancy is 1 when an already-picked item shares the category, else 0.
`lam = 1` is the ranker's order; lower trades NDCG for intra-list diversity. The training job
chooses `lam` offline (`training.recs.train`) and stores it in the model card
(`thresholds["mmr_lambda"]`). Give it the ranker's top >= 50 to pick 10 from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def mmr(items: Sequence[int], scores: Sequence[float], categories: Sequence[int], k: int,
        lam: float) -> list[int]:
    """The `k` items MMR picks, in pick order (ties: the higher score, then the earlier item)."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam: {lam} not in [0, 1]")
    n = len(items)
    if not (n == len(scores) == len(categories)):
        raise ValueError("items, scores and categories differ in length")
    if n == 0 or k <= 0:
        return []
    s = np.asarray(scores, dtype=np.float64)
    spread = s.max() - s.min()
    rel = (s - s.min()) / spread if spread > 0 else np.ones(n)
    cats = np.asarray(categories)
    penalty = np.zeros(n)
    free = np.ones(n, dtype=bool)
    order = np.lexsort((np.arange(n), -s))  # tie-break: higher score, then earlier
    rank_of = np.empty(n, dtype=np.int64)
    rank_of[order] = np.arange(n)
    picked: list[int] = []
    for _ in range(min(k, n)):
        value = np.where(free, lam * rel - (1.0 - lam) * penalty, -np.inf)
        best = np.flatnonzero(value == value.max())
        j = int(best[np.argmin(rank_of[best])])
        picked.append(int(items[j]))
        free[j] = False
        penalty[cats == cats[j]] = 1.0
    return picked


def final_in_stock(items: Sequence[int], in_stock: Callable[[int], bool], *,
                   backup: Sequence[int] = (), k: int | None = None) -> list[int]:
    """Drop what sold out since the candidates were built; refill from `backup` (in order)."""
    k = len(items) if k is None else k
    out = [i for i in items if in_stock(i)][:k]
    seen = set(out)
    for i in backup:
        if len(out) >= k:
            break
        if i not in seen and in_stock(i):
            out.append(i)
            seen.add(i)
    return out


def intra_list_diversity(categories: Sequence[int]) -> float:
    """Share of pairs in the list from different categories (0: one category; 1: all differ)."""
    n = len(categories)
    if n < 2:
        return 0.0
    _, counts = np.unique(np.asarray(categories), return_counts=True)
    same = float((counts * (counts - 1)).sum()) / 2.0
    return 1.0 - same / (n * (n - 1) / 2.0)
