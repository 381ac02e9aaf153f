"""The demo's clock: history before now, the stream since the snapshot, the next payments scored."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from monitoring.fraud.labels import label_key
from pipelines.fraud import simulate as sim
from rtml.demo.plan import (
    LOCAL_NOW,
    history,
    replay_split,
    score_requests,
    stream_start,
    timeline,
)
from rtml.streams.stop import CleanStop, excuses

NOW = dt.datetime(2026, 3, 10, 14, 5, 30, 123456, tzinfo=dt.UTC)


def test_now_falls_local_now_into_the_last_simulated_day():
    plan = timeline(NOW, days=90)
    assert plan.now == NOW.replace(microsecond=0)
    assert plan.now - plan.start == dt.timedelta(days=89) + LOCAL_NOW
    assert plan.now_day == pytest.approx(89 + LOCAL_NOW.total_seconds() / 86400)
    data = sim.simulate(customers=300, terminals=300, days=3,
                        start=timeline(NOW, days=3).start, seed=2)
    last = data.transactions[data.transactions["day"] == 2]["event_timestamp"]
    # The last simulated day began LOCAL_NOW before now: its payments straddle now.
    assert last.min() >= NOW.replace(microsecond=0) - LOCAL_NOW
    assert last.min() < NOW < last.max()


def test_timeline_refuses_naive_times_and_empty_runs():
    with pytest.raises(ValueError, match="timezone"):
        timeline(dt.datetime(2026, 3, 10), days=3)  # noqa: DTZ001 - naive on purpose
    with pytest.raises(ValueError, match="days"):
        timeline(NOW, days=0)
    with pytest.raises(ValueError, match="local_now"):
        timeline(NOW, days=3, local_now=dt.timedelta(hours=25))


def test_at_local_now_both_windows_hold_what_an_average_payment_sees():
    """Independently, by numeric integration of the simulator's truncated-normal time of day."""
    lo, hi = -sim.TIME_MEAN_S / sim.TIME_STD_S, (86400 - sim.TIME_MEAN_S) / sim.TIME_STD_S
    tod = stats.truncnorm(lo, hi, loc=sim.TIME_MEAN_S, scale=sim.TIME_STD_S)
    for window in (600.0, 3600.0):
        def trailing(t: float, w: float = window) -> float:  # share of a day's payments in it
            return tod.cdf(t) - tod.cdf(t - w)

        average, _ = integrate.quad(lambda t, f=trailing: f(t) * tod.pdf(t), 0, 86400,
                                    limit=200)
        assert trailing(LOCAL_NOW.total_seconds()) == pytest.approx(average, rel=0.04)
        assert trailing(3 * 3600) < 0.5 * average  # 3 a.m. would be another population


@pytest.mark.parametrize(("at", "first"), [
    ("2026-03-10T14:05:00Z", "2026-03-10T00:00:00Z"),  # since the nightly snapshot
    ("2026-03-10T00:20:00Z", "2026-03-09T23:20:00Z"),  # at least the longest window (1 h)
])
def test_the_stream_starts_at_the_snapshot_or_one_window_back(at, first):
    assert stream_start(pd.Timestamp(at).to_pydatetime()) == pd.Timestamp(first).to_pydatetime()


def _tx() -> pd.DataFrame:
    stamps = pd.to_datetime(["2026-03-09T22:00Z", "2026-03-09T23:59Z", "2026-03-10T00:00Z",
                             "2026-03-10T13:59Z", "2026-03-10T14:05Z", "2026-03-10T14:06Z",
                             "2026-03-10T15:00Z"], utc=True)
    return pd.DataFrame({"transaction_id": np.arange(7) + 100, "event_timestamp": stamps,
                         "customer_id": [1, 2, 3, 1, 2, 3, 1], "terminal_id": [9] * 7,
                         "amount": [10.0] * 7, "is_fraud": [0, 0, 0, 0, 1, 0, 0]})


def test_history_stream_and_scored_payments_partition_time_at_now():
    at = dt.datetime(2026, 3, 10, 14, 5, tzinfo=dt.UTC)
    tx = _tx()
    assert history(tx, before=at)["transaction_id"].tolist() == [100, 101, 102, 103]
    streamed, upcoming = replay_split(tx, at=at, scored=2)
    assert streamed["transaction_id"].tolist() == [102, 103]  # since 00:00, before now
    assert upcoming["transaction_id"].tolist() == [104, 105]  # the next two, from now on
    _, everything = replay_split(tx, at=at, scored=10)
    assert everything["transaction_id"].tolist() == [104, 105, 106]


def test_scored_requests_carry_ids_the_labels_join_on_and_the_scoring_instant():
    at = dt.datetime(2026, 3, 10, 14, 5, 1, tzinfo=dt.UTC)
    _, upcoming = replay_split(_tx(), at=at, scored=3)
    reqs = score_requests(upcoming, at=at)
    assert label_key(pd.Series([r["transaction_id"] for r in reqs])).tolist() == [105, 106]
    assert {r["timestamp"] for r in reqs} == {"2026-03-10T14:05:01+00:00"}
    assert [r["_is_fraud"] for r in reqs] == [0, 0]
    assert reqs[0] | {"transaction_id": "x"} == {
        "transaction_id": "x", "customer_id": 3, "terminal_id": 9, "amount": 10.0,
        "timestamp": "2026-03-10T14:05:01+00:00", "_is_fraud": 0}


def test_a_clean_stop_excuses_only_the_silence_after_the_newest_value():
    stop = CleanStop(at_s=1000.0, by="rtml demo")
    assert excuses(stop, newest_value_s=990.0)
    assert excuses(stop, newest_value_s=1000.0)
    assert not excuses(stop, newest_value_s=1010.0)  # a flow wrote after it: it ran again
    assert not excuses(None, newest_value_s=990.0)
    assert not excuses(stop, newest_value_s=None)
