"""Deterministic, vectorized credit-card transaction simulator.

The model follows the simulator described in the public handbook "Reproducible Machine Learning
for Credit Card Fraud Detection". That handbook's code is GPL; this module is an independent
re-implementation written from the prose description only (vectorized numpy, no shared code).

* Customers sit uniformly on a 100x100 grid with a spending profile: mean amount ~ U(5, 100),
  std = mean / 2, mean number of transactions per day ~ U(0, 4).
* Terminals sit uniformly on the same grid. A customer uses the terminals within radius 5
  (the nearest one when none is that close).
* Each day a customer makes Poisson(mean_nb_tx_per_day) transactions: time of day ~ N(12h, 20000s)
  redrawn until it falls in [0, 86400) s, amount ~ N(mean, std) with negative draws replaced by
  U(0, 2 * mean), rounded to cents (at least 0.01), terminal uniform among the customer's
  available terminals.
* Fraud (``fraud_scenario``; later scenarios override earlier ones):
  1. every transaction above 220 is fraud;
  2. each day 2 random terminals are compromised: all their transactions on that day and the
     next 27 days are fraud;
  3. each day 3 random customers are compromised: over that day and the next 13 days, a random
     third (rounded down) of their transactions are fraud and their amount is multiplied by 5
     (a transaction picked by several overlapping compromises is inflated once).

One ``np.random.default_rng(seed)`` drives every draw, so the same seed and arguments give
byte-identical frames.

Drift for monitoring (``drift_from_day``, ``drift_amount``): from that day on every base amount is
multiplied by ``drift_amount`` before the fraud scenarios run (so more payments cross the
scenario-1 limit: a shifted amount distribution *and* more fraud). It uses no random draw, so the
days before ``drift_from_day`` are identical to an undrifted run with the same seed. A fractional
day starts the drift at that time of its day (the demo drifts "from now on").

``start`` is a date (days begin at 00:00 UTC) or an aware datetime: the simulated days then begin
at its time of day, which places the daily cycle (busiest at noon of a simulated day) anywhere
against UTC, as customers in another time zone would. The draws do not depend on ``start``.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

GRID_SIZE = 100.0
RADIUS = 5.0
DAY_S = 86_400
TIME_MEAN_S = 43_200.0
TIME_STD_S = 20_000.0
SC1_AMOUNT = 220.0
SC2_TERMINALS_PER_DAY = 2
SC2_DAYS = 28
SC3_CUSTOMERS_PER_DAY = 3
SC3_DAYS = 14
SC3_SHARE_DIVISOR = 3
SC3_FACTOR = 5.0


@dataclass(frozen=True)
class SimulatedData:
    """The three simulated tables."""

    customers: pd.DataFrame
    terminals: pd.DataFrame
    transactions: pd.DataFrame


def default_start(days: int, today: dt.date | None = None) -> dt.date:
    """First day of a `days`-long run that ends yesterday (UTC)."""
    if today is None:
        today = dt.datetime.now(dt.UTC).date()
    return today - dt.timedelta(days=days)


def available_terminals(
    cust_xy: np.ndarray, term_xy: np.ndarray, radius: float = RADIUS
) -> tuple[np.ndarray, np.ndarray]:
    """CSR lists of the terminals each customer may use: (offsets[n + 1], terminal ids).

    Customer i uses ``ids[offsets[i]:offsets[i + 1]]`` (ascending): the terminals within
    `radius`, or the single nearest terminal when none is within it.
    """
    n, m = len(cust_xy), len(term_xy)
    chunk = max(1, 4_000_000 // max(m, 1))
    rows, cols = [], []
    for lo in range(0, n, chunk):
        c = cust_xy[lo : lo + chunk]
        dx = c[:, 0, None] - term_xy[None, :, 0]
        dy = c[:, 1, None] - term_xy[None, :, 1]
        d2 = dx * dx + dy * dy
        near = d2 <= radius * radius
        empty = np.flatnonzero(~near.any(axis=1))
        near[empty, d2[empty].argmin(axis=1)] = True
        r, t = np.nonzero(near)
        rows.append(r + lo)
        cols.append(t)
    rows_a = np.concatenate(rows)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows_a, minlength=n), out=offsets[1:])
    return offsets, np.concatenate(cols).astype(np.int64)


def _time_of_day(rng: np.random.Generator, k: int) -> np.ndarray:
    t = rng.normal(TIME_MEAN_S, TIME_STD_S, k)
    bad = np.flatnonzero((t < 0) | (t >= DAY_S))
    while bad.size:
        t[bad] = rng.normal(TIME_MEAN_S, TIME_STD_S, bad.size)
        bad = bad[(t[bad] < 0) | (t[bad] >= DAY_S)]
    return t.astype(np.int64)  # whole seconds in [0, 86399]


def _daily_choices(rng: np.random.Generator, days: int, population: int, k: int) -> np.ndarray:
    """(days, k) ids: k distinct ids drawn each day."""
    k = min(k, population)
    return np.stack([rng.choice(population, k, replace=False) for _ in range(days)]).reshape(
        days, k
    )


def terminal_fraud_mask(
    terminal: np.ndarray,
    day: np.ndarray,
    compromised: np.ndarray,
    n_terminals: int,
    window: int = SC2_DAYS,
) -> np.ndarray:
    """Scenario 2: terminal ``compromised[d, j]`` is compromised on days [d, d + window)."""
    n_days = compromised.shape[0]
    diff = np.zeros((n_terminals, n_days + 1), dtype=np.int32)
    start = np.repeat(np.arange(n_days), compromised.shape[1])
    ids = compromised.ravel()
    np.add.at(diff, (ids, start), 1)
    np.add.at(diff, (ids, np.minimum(start + window, n_days)), -1)
    active = np.cumsum(diff, axis=1)[:, :n_days] > 0
    return active[terminal, day]


def customer_fraud_index(
    rng: np.random.Generator,
    customer: np.ndarray,
    day: np.ndarray,
    compromised: np.ndarray,
    window: int = SC3_DAYS,
    divisor: int = SC3_SHARE_DIVISOR,
) -> np.ndarray:
    """Scenario 3: indices of the transactions picked by the compromises (sorted, unique).

    Customer ``compromised[d, j]`` has ``len // divisor`` of its transactions on days
    [d, d + window) picked at random.
    """
    n_days = compromised.shape[0]
    key = customer.astype(np.int64) * n_days + day
    order = np.argsort(key, kind="stable")
    skey = key[order]
    start = np.repeat(np.arange(n_days, dtype=np.int64), compromised.shape[1])
    cust = compromised.ravel().astype(np.int64)
    lo = np.searchsorted(skey, cust * n_days + start)
    hi = np.searchsorted(skey, cust * n_days + np.minimum(start + window, n_days))
    size = hi - lo
    first = np.cumsum(size) - size
    rank = np.arange(size.sum()) - np.repeat(first, size)  # position within its event
    event = np.repeat(np.arange(size.size), size)
    shuffled = np.lexsort((rng.random(rank.size), event))  # events stay contiguous
    keep = shuffled[rank < np.repeat(size // divisor, size)]
    return np.unique(order[np.repeat(lo, size)[keep] + rank[keep]])


def _start_ns(start: dt.date | dt.datetime) -> int:
    """Nanoseconds since the epoch of the first simulated day's start."""
    if isinstance(start, dt.datetime):
        if start.tzinfo is None:
            raise ValueError(f"start: a datetime needs a timezone, got naive {start}")
        return int(pd.Timestamp(start).tz_convert("UTC").value)
    return int(np.datetime64(start, "D").astype("datetime64[ns]").astype(np.int64))


def simulate(
    *,
    customers: int = 5000,
    terminals: int = 10000,
    days: int = 90,
    start: dt.date | dt.datetime,
    seed: int = 0,
    progress: bool = False,
    drift_from_day: float | None = None,
    drift_amount: float = 1.0,
    tx_scale: float = 1.0,
) -> SimulatedData:
    """Simulate `days` days of transactions from `start` (a date: 00:00 UTC).

    `tx_scale` multiplies every customer's mean number of payments a day: the history depth that
    `rtml bench depth` grows (x10 is ten times the payments per customer, same customers).
    """
    if customers < 1 or terminals < 1 or days < 1:
        raise ValueError("customers, terminals and days must be >= 1")
    if tx_scale <= 0:
        raise ValueError(f"tx_scale must be > 0, got {tx_scale}")
    if drift_amount <= 0:
        raise ValueError(f"drift_amount must be > 0, got {drift_amount}")
    if drift_from_day is not None and not 0 <= drift_from_day < days:
        raise ValueError(f"drift_from_day must be in [0, {days}), got {drift_from_day}")
    rng = np.random.default_rng(seed)
    bar = tqdm(total=days + 4, desc="simulate", unit="step", disable=not progress, file=sys.stderr)

    cust_xy = rng.uniform(0, GRID_SIZE, (customers, 2))
    mean_amount = rng.uniform(5, 100, customers)
    std_amount = mean_amount / 2
    mean_nb = rng.uniform(0, 4, customers) * tx_scale
    term_xy = rng.uniform(0, GRID_SIZE, (terminals, 2))
    offsets, flat = available_terminals(cust_xy, term_xy)
    n_avail = np.diff(offsets)
    bar.update(1)

    parts: list[tuple[np.ndarray, ...]] = []
    all_customers = np.arange(customers, dtype=np.int64)
    for d in range(days):
        cust = np.repeat(all_customers, rng.poisson(mean_nb))
        secs = _time_of_day(rng, cust.size)
        amount = rng.normal(mean_amount[cust], std_amount[cust])
        neg = np.flatnonzero(amount < 0)
        amount[neg] = rng.uniform(0, 2 * mean_amount[cust[neg]])
        term = flat[offsets[cust] + rng.integers(0, n_avail[cust])]
        parts.append((cust, term, np.full(cust.size, d, np.int32), secs, amount))
        bar.update(1)
    cust, term, day, secs, amount = (np.concatenate(p) for p in zip(*parts, strict=True))
    t = day.astype(np.int64) * DAY_S + secs
    if drift_from_day is not None and drift_amount != 1.0:
        amount[t >= drift_from_day * DAY_S] *= drift_amount
    # Cents, and at least one: the API and the event stream refuse a zero amount.
    amount = np.maximum(np.round(amount, 2), 0.01)

    scenario = np.where(amount > SC1_AMOUNT, 1, 0).astype(np.int8)
    comp_t = _daily_choices(rng, days, terminals, SC2_TERMINALS_PER_DAY)
    scenario[terminal_fraud_mask(term, day, comp_t, terminals)] = 2
    bar.update(1)
    comp_c = _daily_choices(rng, days, customers, SC3_CUSTOMERS_PER_DAY)
    picked = customer_fraud_index(rng, cust, day, comp_c)
    amount[picked] = np.round(amount[picked] * SC3_FACTOR, 2)
    scenario[picked] = 3
    bar.update(1)

    order = np.argsort(t, kind="stable")
    stamps = (_start_ns(start) + t[order] * 1_000_000_000).view("datetime64[ns]")
    transactions = pd.DataFrame(
        {
            "transaction_id": np.arange(order.size, dtype=np.int64),
            "event_timestamp": pd.Series(stamps).dt.tz_localize("UTC"),
            "customer_id": cust[order],
            "terminal_id": term[order],
            "amount": amount[order],
            "is_fraud": (scenario[order] > 0).astype(np.int8),
            "fraud_scenario": scenario[order],
            "day": day[order],
        }
    )
    bar.update(1)
    bar.close()
    customers_df = pd.DataFrame(
        {
            "customer_id": all_customers,
            "x": cust_xy[:, 0],
            "y": cust_xy[:, 1],
            "mean_amount": mean_amount,
            "std_amount": std_amount,
            "mean_nb_tx_per_day": mean_nb,
        }
    )
    terminals_df = pd.DataFrame(
        {
            "terminal_id": np.arange(terminals, dtype=np.int64),
            "x": term_xy[:, 0],
            "y": term_xy[:, 1],
        }
    )
    return SimulatedData(customers_df, terminals_df, transactions)


def write(data: SimulatedData, out_dir: Path) -> dict[str, Path]:
    """Write the three tables as parquet files into `out_dir` (created); return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("customers", "terminals", "transactions"):
        paths[name] = out_dir / f"{name}.parquet"
        getattr(data, name).to_parquet(paths[name], engine="pyarrow", index=False)
    return paths
