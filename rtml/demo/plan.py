"""The demo's clock: which simulated payments are history, which are streamed, which are scored.

In production a payment meets the features in this order: the nightly snapshot stamped D 00:00
counts everything before D; the stream counts the day's payments as they happen; a new payment is
scored against both *before* the stream counts it. The demo keeps that order in a few minutes:

* the simulated history ends when the demo starts (its last day partial): the nightly features,
  the training set and its reference come from it;
* once the service is up (minutes later), the stream replays the payments since the last
  snapshot (and at least the longest window) up to that moment, with their own event times, so
  each customer's 10-minute and 1-hour windows hold what a real 10 minutes and hour held, as of
  now;
* the scored payments are the next ones the simulation holds after that, none of them streamed:
  each is scored against what is online now, as it would be on arrival. Sent within seconds,
  they see the windows as of now rather than as of their own minute in the next hour or two. The
  simulator draws every payment's time independently, so a customer's trailing-hour activity does
  not depend on when they pay next, except through the time of day:
* the daily cycle: payment times of day are N(12 h, 20000 s) in the customers' day (truncated to
  the day), so windows at 3 a.m. hold a fraction of what they hold at noon. The training
  reference spans every hour, a demo scores one. The demo places the simulated day so that now is
  the hour whose trailing 10 minutes and hour hold what they hold for an average payment: 07:50
  in the customers' day, where the expected activity of both windows is within 4% of the
  payment-weighted average (by integrating the simulator's time-of-day distribution; the unit
  test does it independently). At another hour the monitor would rightly see emptier or busier
  windows than the reference: a drift by time of day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

# The customers' time of day when the demo scores (see the module docstring).
LOCAL_NOW = timedelta(hours=7, minutes=50)
LONGEST_WINDOW = timedelta(hours=1)  # the streamed views' longest window (customer_fresh 1h)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Timeline:
    """Where the simulated days lie: aware UTC datetimes."""

    now: datetime  # the demo starts: history ends here (exclusive)
    start: datetime  # the first simulated day begins (the customers' midnight)
    days: int  # simulated days; the last one holds `now`

    @property
    def now_day(self) -> float:
        """`now` in simulated days since `start` (a fractional `drift_from_day`)."""
        return (self.now - self.start) / DAY


def timeline(now: datetime, *, days: int, local_now: timedelta = LOCAL_NOW) -> Timeline:
    """Place `days` simulated days so that `now` falls `local_now` into the last one."""
    if now.tzinfo is None:
        raise ValueError(f"now: needs a timezone, got naive {now}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if not timedelta(0) <= local_now < DAY:
        raise ValueError(f"local_now must be within a day, got {local_now}")
    now = now.astimezone(UTC).replace(microsecond=0)
    return Timeline(now=now, start=now - local_now - (days - 1) * DAY, days=days)


def history(transactions: pd.DataFrame, *, before: datetime) -> pd.DataFrame:
    """The payments that have happened by `before`: what training and the nightly job see."""
    return transactions[transactions["event_timestamp"] < before].reset_index(drop=True)


def stream_start(at: datetime, *, longest_window: timedelta = LONGEST_WINDOW) -> datetime:
    """The first event time to stream for scoring at `at`.

    The nightly snapshot the online store serves (00:00 UTC of `at`'s day), or `at` minus the
    longest window if that is earlier.
    """
    at = at.astimezone(UTC)
    return min(at.replace(hour=0, minute=0, second=0, microsecond=0), at - longest_window)


def replay_split(transactions: pd.DataFrame, *, at: datetime, scored: int
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the payments to stream before scoring at `at`, the first `scored` from `at` on)."""
    t = transactions["event_timestamp"]
    streamed = transactions[(t >= stream_start(at)) & (t < at)].reset_index(drop=True)
    upcoming = transactions[t >= at].head(scored).reset_index(drop=True)
    return streamed, upcoming


def score_requests(upcoming: pd.DataFrame, *, at: datetime) -> list[dict[str, Any]]:
    """`/score` bodies for the upcoming payments, arriving at `at`.

    Ids are `tx-<id>`, which the monitor joins with the delayed labels; `_is_fraud` is for the
    load generator and never sent.
    """
    stamp = at.astimezone(UTC).isoformat()
    return [{"transaction_id": f"tx-{r.transaction_id}", "customer_id": int(r.customer_id),
             "terminal_id": int(r.terminal_id), "amount": float(r.amount), "timestamp": stamp,
             "_is_fraud": int(r.is_fraud)}
            for r in upcoming.itertuples()]
