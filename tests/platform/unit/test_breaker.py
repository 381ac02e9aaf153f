"""The feature-read circuit breaker: opens after consecutive errors, probes every `open_s`."""

from __future__ import annotations

import pytest

from rtml.serving import core
from rtml.serving.core import Breaker


@pytest.fixture
def clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(core.time, "monotonic", lambda: now[0])
    return now


def test_opens_after_three_errors_in_a_row_and_closes_after_open_s(clock):
    b = Breaker(failures=3, open_s=1.0)
    for _ in range(2):
        b.record(False)
        assert b.allow()
    b.record(False)
    assert not b.allow()  # requests now fall back without waiting on the store
    clock[0] += 0.999
    assert not b.allow()
    clock[0] += 0.002
    assert b.allow()


def test_a_success_resets_the_count(clock):
    b = Breaker(failures=3, open_s=1.0)
    b.record(False)
    b.record(False)
    b.record(True)
    b.record(False)
    b.record(False)
    assert b.allow()


def test_open_it_lets_one_probe_through_per_interval_and_a_success_closes_it(clock):
    b = Breaker(failures=3, open_s=0.1)
    for _ in range(3):
        b.record(False)
    assert not b.allow()
    clock[0] += 0.1
    assert b.allow()  # the probe
    assert not b.allow() and not b.allow()  # the others still fall back at once
    b.record(False)  # the store is still down: open, next probe one interval on
    clock[0] += 0.05
    assert not b.allow()
    clock[0] += 0.05
    assert b.allow()
    b.record(True)  # back: closed, every request reads again
    assert all(b.allow() for _ in range(5))
    assert not b.open
