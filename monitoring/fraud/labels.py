"""Delayed labels: the truth about a payment arrives days after it was scored (chargebacks).

The simulator knows every transaction's truth at once; a real fraud team learns it late. The labels
file keeps that honest: each row carries `available_at = event_timestamp + delay`, and monitoring
only sees a label once `available_at <= now`. Labels join logged predictions by transaction id;
a prediction without a visible label is counted (pending or unknown), never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

# The replay tools send transaction ids as "tx-<simulator id>"; the labels know the bare id.
_ID_PREFIX = "tx-"


def publish_labels(transactions: pd.DataFrame, *, delay_s: float) -> pd.DataFrame:
    """Truth per transaction with the moment it becomes visible to monitoring."""
    for col in ("transaction_id", "event_timestamp", "is_fraud"):
        if col not in transactions:
            raise ValueError(f"transactions: missing column {col!r}")
    if delay_s < 0:
        raise ValueError(f"delay_s must not be negative, got {delay_s}")
    out = transactions[["transaction_id", "event_timestamp", "is_fraud"]].copy()
    out["transaction_id"] = out["transaction_id"].astype("int64")
    out["is_fraud"] = out["is_fraud"].astype("int8")
    out["available_at"] = out["event_timestamp"] + pd.Timedelta(seconds=delay_s)
    return out.reset_index(drop=True)


def write_labels(transactions: pd.DataFrame, path: Path, *, delay_s: float) -> Path:
    """Publish the labels file (`rtml data generate`, `rtml monitor labels`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    publish_labels(transactions, delay_s=delay_s).to_parquet(path, index=False)
    return path


def visible_labels(labels: pd.DataFrame, *, now: datetime) -> pd.DataFrame:
    """The labels a monitor running at `now` may use."""
    return labels[labels["available_at"] <= pd.Timestamp(now)]


def label_key(transaction_id: pd.Series) -> pd.Series:
    """Logged transaction ids ("tx-123" or "123") as the labels' integer id; <NA> otherwise."""
    text = transaction_id.astype("string").str.removeprefix(_ID_PREFIX)
    return pd.to_numeric(text, errors="coerce").astype("Int64")


@dataclass(frozen=True)
class LabelCounts:
    """What happened to each prediction in the join."""

    labelled: int
    pending: int  # the transaction is known, its label not visible yet
    unknown: int  # no such transaction in the labels (a request we cannot grade)

    def as_dict(self) -> dict[str, int]:
        """For summary.json."""
        return {"labelled": self.labelled, "pending": self.pending, "unknown": self.unknown}


def join_labels(predictions: pd.DataFrame, labels: pd.DataFrame, *, now: datetime
                ) -> tuple[pd.DataFrame, LabelCounts]:
    """Predictions with a nullable `label` column (1 fraud, 0 genuine, <NA> not visible yet)."""
    key = label_key(predictions["transaction_id"])
    truth = labels.set_index("transaction_id")
    truth = truth[~truth.index.duplicated(keep="last")]
    known = key.isin(truth.index)
    visible = visible_labels(truth, now=now)["is_fraud"]
    label = key.map(visible).astype("Int64")
    out = predictions.assign(label=label.to_numpy())
    labelled = int(label.notna().sum())
    counts = LabelCounts(labelled=labelled, pending=int(known.sum()) - labelled,
                         unknown=int((~known).sum()))
    return out, counts
