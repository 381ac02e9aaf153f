"""Nightly batch features: the offline sources of the ``customer_stats``/``terminal_stats`` views.

A row stamped ``D 00:00 UTC`` aggregates only transactions strictly before D (point-in-time
correct). There is one row per entity per day D = first day + 1 ... last day + 1 for every
entity (a dense grid: entities without transactions get zero counts), so the last snapshot
covers all the data. Windows are whole days, so they are computed from per-(entity, day) sums
and their cumulative sums over days on a dense numpy grid.

* customers: window w at D covers [D - w days, D): transaction count and mean amount.
* terminals: fraud labels arrive ``delay_days`` late, so window w at D covers
  [D - delay - w days, D - delay): transaction count and the share of them that are fraud.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

WINDOWS_DAYS = (1, 7, 30)
LABEL_DELAY_DAYS = 7
DAY_NS = 86_400 * 1_000_000_000


def _day_index(transactions: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Day of each transaction relative to the first UTC day in the data, and that day."""
    ts = pd.to_datetime(transactions["event_timestamp"], utc=True)
    ns = ts.dt.tz_localize(None).to_numpy().astype("datetime64[ns]").astype(np.int64)
    day = ns // DAY_NS
    base = int(day.min())
    return day - base, base


def _entities(ids: pd.Series, n: int | None, name: str) -> tuple[np.ndarray, int]:
    ids = ids.to_numpy().astype(np.int64)
    if n is None:
        n = int(ids.max()) + 1 if ids.size else 0
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise ValueError(f"{name} outside [0, {n})")
    return ids, n


def _cumulative(flat: np.ndarray, n_cells: int, shape: tuple[int, int], weights=None):
    """(E, T + 1) cumulative sums over days: column j sums days < j."""
    daily = np.bincount(flat, weights=weights, minlength=n_cells).reshape(shape)
    out = np.zeros((shape[0], shape[1] + 1), dtype=daily.dtype)
    np.cumsum(daily, axis=1, out=out[:, 1:])
    return out


def _window(cum: np.ndarray, w: int, shift: int = 0) -> np.ndarray:
    """(E, T) sums over days [k - shift - w, k - shift) for snapshots k = 1..T."""
    k = np.arange(1, cum.shape[1])
    return cum[:, np.maximum(k - shift, 0)] - cum[:, np.maximum(k - shift - w, 0)]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(num.shape, dtype=np.float64), where=den > 0)


def _frame(id_col: str, n: int, base: int, n_days: int, columns: dict[str, np.ndarray]):
    """Long frame ordered by (event_timestamp, id) from (E, T) grids."""
    stamp_ns = (base + np.arange(1, n_days + 1, dtype=np.int64)) * DAY_NS
    ts = pd.Series(np.repeat(stamp_ns, n).view("datetime64[ns]")).dt.tz_localize("UTC")
    data = {
        id_col: np.tile(np.arange(n, dtype=np.int64), n_days),
        "event_timestamp": ts,
        "created": ts.copy(),
    }
    data.update({name: grid.ravel(order="F") for name, grid in columns.items()})
    return pd.DataFrame(data)


def _empty(id_col: str, columns: dict[str, str]) -> pd.DataFrame:
    ts = pd.Series([], dtype="datetime64[ns, UTC]")
    data = {id_col: pd.Series([], dtype=np.int64), "event_timestamp": ts, "created": ts}
    data.update({name: pd.Series([], dtype=dtype) for name, dtype in columns.items()})
    return pd.DataFrame(data)


def customer_features(
    transactions: pd.DataFrame,
    *,
    n_customers: int | None = None,
    windows: Sequence[int] = WINDOWS_DAYS,
) -> pd.DataFrame:
    """Daily customer snapshots: ``cust_tx_count_{w}d`` and ``cust_mean_amount_{w}d``."""
    ids, n = _entities(transactions["customer_id"], n_customers, "customer_id")
    if not ids.size:
        cols = {}
        for w in windows:
            cols[f"cust_tx_count_{w}d"] = "int64"
            cols[f"cust_mean_amount_{w}d"] = "float64"
        return _empty("customer_id", cols)
    day, base = _day_index(transactions)
    n_days = int(day.max()) + 1
    flat = ids * n_days + day
    count = _cumulative(flat, n * n_days, (n, n_days))
    amount = transactions["amount"].to_numpy(dtype=np.float64)
    total = _cumulative(flat, n * n_days, (n, n_days), weights=amount)
    columns = {}
    for w in windows:
        c = _window(count, w)
        columns[f"cust_tx_count_{w}d"] = c.astype(np.int64)
        columns[f"cust_mean_amount_{w}d"] = _ratio(_window(total, w), c)
    return _frame("customer_id", n, base, n_days, columns)


def terminal_features(
    transactions: pd.DataFrame,
    *,
    n_terminals: int | None = None,
    windows: Sequence[int] = WINDOWS_DAYS,
    delay_days: int = LABEL_DELAY_DAYS,
) -> pd.DataFrame:
    """Daily terminal snapshots: ``term_tx_count_{w}d`` and ``term_fraud_rate_{w}d``.

    Both use the delayed window [D - delay - w, D - delay): labels of the last `delay_days`
    days are not known yet at D.
    """
    ids, n = _entities(transactions["terminal_id"], n_terminals, "terminal_id")
    if not ids.size:
        cols = {}
        for w in windows:
            cols[f"term_tx_count_{w}d"] = "int64"
            cols[f"term_fraud_rate_{w}d"] = "float64"
        return _empty("terminal_id", cols)
    day, base = _day_index(transactions)
    n_days = int(day.max()) + 1
    flat = ids * n_days + day
    fraud = transactions["is_fraud"].to_numpy().astype(bool)
    count = _cumulative(flat, n * n_days, (n, n_days))
    frauds = _cumulative(flat[fraud], n * n_days, (n, n_days))
    columns = {}
    for w in windows:
        c = _window(count, w, delay_days)
        columns[f"term_tx_count_{w}d"] = c.astype(np.int64)
        columns[f"term_fraud_rate_{w}d"] = _ratio(_window(frauds, w, delay_days), c)
    return _frame("terminal_id", n, base, n_days, columns)


def _count_from(path: Path, column: str) -> int | None:
    """Entity count from a sibling simulator table, so entities never seen still get rows."""
    if not path.exists():
        return None
    ids = pd.read_parquet(path, columns=[column])[column]
    return int(ids.max()) + 1 if len(ids) else None


def build(transactions_path: Path, out_dir: Path) -> dict[str, Path]:
    """Read transactions.parquet, write customer_stats.parquet and terminal_stats.parquet.

    When customers.parquet / terminals.parquet sit next to the transactions, the grids cover
    every simulated entity; otherwise max id + 1 from the transactions.
    """
    transactions_path, out_dir = Path(transactions_path), Path(out_dir)
    cols = ["event_timestamp", "customer_id", "terminal_id", "amount", "is_fraud"]
    tx = pd.read_parquet(transactions_path, columns=cols)
    src = transactions_path.parent
    n_cust = _count_from(src / "customers.parquet", "customer_id")
    n_term = _count_from(src / "terminals.parquet", "terminal_id")
    if n_cust is not None and len(tx):
        n_cust = max(n_cust, int(tx["customer_id"].max()) + 1)
    if n_term is not None and len(tx):
        n_term = max(n_term, int(tx["terminal_id"].max()) + 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "customer_stats": out_dir / "customer_stats.parquet",
        "terminal_stats": out_dir / "terminal_stats.parquet",
    }
    customer_features(tx, n_customers=n_cust).to_parquet(
        paths["customer_stats"], engine="pyarrow", index=False
    )
    terminal_features(tx, n_terminals=n_term).to_parquet(
        paths["terminal_stats"], engine="pyarrow", index=False
    )
    return paths
