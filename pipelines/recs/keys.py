"""Redis keys the recommendation jobs write and the service reads, beside Feast's own.

- `TRENDING_INDEX`: a sorted set, item id -> its events in the last hour (the flow keeps it; the
  service reads its top for trending candidates).
- `POPULAR_KEY`: JSON `{"global": [...], "by_category": {"<cat>": [...]}}`, the nightly popular
  lists (written by `rtml recs precompute`; cold starts and fallbacks read them).
- `l2_key(user)`: the per-user precomputed entry (candidates + user features), with a TTL.
"""

from __future__ import annotations

TRENDING_INDEX = "rtml:recs:trending"
POPULAR_KEY = "rtml:recs:popular"
L2_PREFIX = "rtml:recs:l2:"


def l2_key(user_id: int) -> str:
    """The L2 entry of one user."""
    return f"{L2_PREFIX}{int(user_id)}"
