"""Top-k metrics over the full catalogue: every relevant item counts, nothing is sampled.

`truth` is the set of items the user touched in the rest of the session. Definitions:

* NDCG@k: binary gains, DCG = sum over hits at rank r (0-based) of 1 / log2(r + 2), divided by
  the DCG of a perfect list (min(k, |truth|) hits on top);
* HitRate@k: 1 when any of the top k is relevant;
* Recall@k as OTTO scores it: hits in the top k / min(k, |truth|) (a short truth is not
  penalised for k being larger).

A request with an empty truth has no defined value and is left out of the averages.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence


def ndcg_at(ranked: Sequence[int], truth: Collection[int], k: int) -> float:
    """NDCG@k with binary relevance (see the module docstring)."""
    if not truth:
        raise ValueError("empty truth")
    dcg = sum(1.0 / math.log2(r + 2) for r, item in enumerate(ranked[:k]) if item in truth)
    ideal = sum(1.0 / math.log2(r + 2) for r in range(min(k, len(truth))))
    return dcg / ideal


def hitrate_at(ranked: Sequence[int], truth: Collection[int], k: int) -> float:
    """1.0 when any of the top k is in `truth`."""
    return 1.0 if any(item in truth for item in ranked[:k]) else 0.0


def recall_at(ranked: Sequence[int], truth: Collection[int], k: int) -> float:
    """OTTO's recall: hits in the top k over min(k, |truth|)."""
    if not truth:
        raise ValueError("empty truth")
    hits = len(set(ranked[:k]) & set(truth))
    return hits / min(k, len(truth))


def summarize(lists: Sequence[Sequence[int]], truths: Sequence[Collection[int]],
              ) -> dict[str, float]:
    """Mean `ndcg@10`, `hitrate@10`, `recall@20` over requests with a non-empty truth."""
    pairs = [(r, t) for r, t in zip(lists, truths, strict=True) if t]
    if not pairs:
        raise ValueError("no request with a non-empty truth")
    n = len(pairs)
    return {"ndcg@10": sum(ndcg_at(r, t, 10) for r, t in pairs) / n,
            "hitrate@10": sum(hitrate_at(r, t, 10) for r, t in pairs) / n,
            "recall@20": sum(recall_at(r, t, 20) for r, t in pairs) / n,
            "requests": float(n)}
