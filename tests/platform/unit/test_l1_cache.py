"""The L1 request cache: hits, TTL expiry (injected clock), model-version keys, LRU bound."""

from __future__ import annotations

import numpy as np
import pytest

from rtml.serving.cache import L1Cache, row_key

ROW = np.array([3.0, 120.5, 0.25, 40.0], dtype=np.float32)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_repeated_vector_is_a_hit_and_counted():
    cache: L1Cache[float] = L1Cache(ttl_s=10, max_entries=10)
    key = row_key("fraud_model:v1", ROW)
    assert cache.get(key) is None
    cache.put(key, 0.42)
    assert cache.get(row_key("fraud_model:v1", ROW.copy())) == 0.42  # equal bytes, other array
    assert (cache.hits, cache.misses) == (1, 1)


def test_any_change_in_the_vector_is_a_miss():
    cache: L1Cache[float] = L1Cache()
    cache.put(row_key("m:v1", ROW), 0.42)
    nudged = ROW.copy()
    nudged[1] = np.nextafter(nudged[1], np.float32(1e9))  # one float32 ulp of the amount
    assert cache.get(row_key("m:v1", nudged)) is None
    # float64 input is keyed as the float32 the model sees
    assert cache.get(row_key("m:v1", ROW.astype(np.float64))) == 0.42


def test_entries_expire_after_the_ttl():
    clock = Clock()
    cache: L1Cache[float] = L1Cache(ttl_s=10, max_entries=10, clock=clock)
    key = row_key("m:v1", ROW)
    cache.put(key, 0.42)
    clock.now += 9.999
    assert cache.get(key) == 0.42
    clock.now += 0.001
    assert cache.get(key) is None
    assert len(cache) == 0  # the expired entry was dropped, not kept
    cache.put(key, 0.5)  # and a fresh answer starts a new TTL
    clock.now += 5
    assert cache.get(key) == 0.5


def test_a_new_model_version_never_answers_from_the_old_ones_entries():
    cache: L1Cache[float] = L1Cache()
    cache.put(row_key("fraud_model:old", ROW), 0.9)
    assert cache.get(row_key("fraud_model:new", ROW)) is None
    cache.put(row_key("fraud_model:new", ROW), 0.1)
    assert cache.get(row_key("fraud_model:new", ROW)) == 0.1
    assert cache.get(row_key("fraud_model:old", ROW)) == 0.9


def test_the_bound_holds_and_evicts_the_least_recently_used():
    cache: L1Cache[int] = L1Cache(max_entries=3)
    keys = [row_key("m:v1", ROW + i) for i in range(5)]
    for i, key in enumerate(keys[:3]):
        cache.put(key, i)
    assert cache.get(keys[0]) == 0  # now the most recently used
    cache.put(keys[3], 3)
    cache.put(keys[4], 4)
    assert len(cache) == 3 and cache.evictions == 2
    assert cache.get(keys[1]) is None and cache.get(keys[2]) is None
    assert [cache.get(k) for k in (keys[0], keys[3], keys[4])] == [0, 3, 4]


def test_the_bound_holds_under_many_distinct_vectors():
    cache: L1Cache[int] = L1Cache(max_entries=100)
    rng = np.random.default_rng(5)
    for i, row in enumerate(rng.random((5000, 14), dtype=np.float32)):
        cache.put(row_key("m:v1", row), i)
        assert len(cache) <= 100
    assert cache.evictions == 4900


@pytest.mark.parametrize(("ttl", "entries"), [(0, 10), (-1, 10), (10, 0)])
def test_nonsense_bounds_are_refused(ttl, entries):
    with pytest.raises(ValueError, match="ttl_s and max_entries"):
        L1Cache(ttl_s=ttl, max_entries=entries)
