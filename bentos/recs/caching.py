"""The service's cache keys and HTTP caching headers (L1 and L3; L2 is `online.L2Entry`).

L1 keys carry everything the ranked list depends on that changes within seconds: the model
version, the user, `k`, and the session as read (its items and length), so a click is a new key,
never a stale hit; trending drift is bounded by the L1 TTL. L3: a personal list is
`private, max-age=…` (a browser may reuse it, a shared cache may not); a list that is the same for
everyone (a fallback, a cold start) is `public`. The ETag is a digest of the answer's bytes, so
`If-None-Match` revalidates to 304 exactly when the answer would be identical.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def l1_key(version: str, user_id: int, k: int, session: Sequence[int], length: int
           ) -> tuple[str, bytes]:
    """The kit L1 cache's key for one request's ranked list."""
    text = f"{user_id}|{k}|{length}|{','.join(map(str, session))}"
    return version, text.encode()


def etag(body: bytes) -> str:
    """A strong validator of the exact answer bytes."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def cache_control(*, personal: bool, max_age_s: int) -> str:
    """`private` for a personal list, `public` for one that is everyone's."""
    return f"{'private' if personal else 'public'}, max-age={max_age_s}"


def not_modified(if_none_match: str | None, tag: str) -> bool:
    """Whether `If-None-Match` names `tag` (a list, `*`, or a weak form of it)."""
    if not if_none_match:
        return False
    wanted = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return "*" in wanted or tag in wanted
