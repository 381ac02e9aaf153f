"""L1 request cache: the model's answer for an exact feature vector, for a few seconds.

Keyed by the model version and the bytes of the float32 row, so a new model never answers from
an old one's entries and any feature change (a new payment counted, another amount) is a miss.
It pays only where identical vectors repeat within the TTL (retries, duplicate submissions,
polling clients); fraud traffic rarely does, since the amount is a feature. Hence a setting.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np

V = TypeVar("V")
Key = tuple[str, bytes]


def row_key(version: str, row: np.ndarray) -> Key:
    """Model version + the exact bytes of one float32 feature row."""
    return version, np.ascontiguousarray(row, dtype=np.float32).tobytes()


class L1Cache(Generic[V]):
    """Bounded LRU with a TTL: at most `max_entries`, each valid `ttl_s` seconds after `put`.

    Single-threaded by design (the service's event loop is its only user). `clock` is injectable
    so expiry is tested without sleeping.
    """

    def __init__(self, *, ttl_s: float = 10.0, max_entries: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_s <= 0 or max_entries <= 0:
            raise ValueError(f"cache: ttl_s and max_entries must be positive, got {ttl_s}, "
                             f"{max_entries}")
        self.ttl_s, self.max_entries, self.clock = ttl_s, max_entries, clock
        self._entries: OrderedDict[Key, tuple[float, V]] = OrderedDict()
        self.hits = self.misses = self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> V | None:
        """The stored value while fresh (and mark it recently used); None on a miss."""
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] > self.clock():
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[1]
            del self._entries[key]
        self.misses += 1
        return None

    def put(self, key: Key, value: V) -> None:
        """Store `value` for `ttl_s`; evicts the least recently used entries beyond the bound."""
        self._entries[key] = (self.clock() + self.ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evictions += 1

    def clear(self) -> None:
        """Forget everything (counters kept)."""
        self._entries.clear()
