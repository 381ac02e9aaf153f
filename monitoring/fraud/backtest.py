"""Feature drift between two periods of generated data, without serving anything.

`rtml data generate --drift-from-day N` shifts amounts from day N; this module rebuilds what the
service would have read for each payment (the nightly customer and terminal snapshots of its day,
and the request-time features) from the raw transactions with the same functions the batch job
uses, so the drift report can compare a clean period with a drifted one in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from feature_repo.fraud.feature_services import fraud_model_v1
from feature_repo.fraud.request_features import request_features
from pipelines.fraud.batch_features import customer_features, terminal_features
from rtml.monitor.reports import Section, feature_drift

# What fraud_model_v1 reads (the nightly views and the request-time features), in its order.
FEATURES = [f.name for p in fraud_model_v1.feature_view_projections for f in p.features]


def offline_features(transactions: pd.DataFrame) -> pd.DataFrame:
    """Transactions with the batch-view and request-time features as served on their day."""
    tx = transactions.copy()
    tx["snapshot"] = tx["event_timestamp"].dt.floor("D")
    for frame, key in ((customer_features(transactions), "customer_id"),
                       (terminal_features(transactions), "terminal_id")):
        snap = frame.drop(columns=[c for c in ("created",) if c in frame])
        snap = snap.rename(columns={"event_timestamp": "snapshot"})
        tx = tx.merge(snap, on=[key, "snapshot"], how="left")
    req = [request_features(a, m) for a, m in zip(tx["amount"], tx["cust_mean_amount_30d"],
                                                  strict=True)]
    tx["tx_amount"] = [r["tx_amount"] for r in req]
    tx["amount_vs_cust_mean_30d"] = [r["amount_vs_cust_mean_30d"] for r in req]
    return tx


def period_drift(transactions: pd.DataFrame, *, reference_days: tuple[int, int],
                 current_days: tuple[int, int], features: list[str], drift_share: float,
                 out_dir: Path, sample_rows: int = 50_000, seed: int = 0) -> Section:
    """The feature-drift report of `current_days` against `reference_days` (half-open ranges)."""
    served = offline_features(transactions)

    def period(days: tuple[int, int]) -> pd.DataFrame:
        part = served[(served["day"] >= days[0]) & (served["day"] < days[1])]
        if part.empty:
            raise ValueError(f"days {days[0]}:{days[1]}: no transactions in that range")
        n = min(sample_rows, len(part))
        return part.iloc[np.sort(np.random.default_rng(seed).choice(len(part), n,
                                                                    replace=False))]

    out_dir.mkdir(parents=True, exist_ok=True)
    return feature_drift(current=period(current_days), reference=period(reference_days),
                         features=features, drift_share=drift_share, out_dir=out_dir)
