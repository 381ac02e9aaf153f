"""The fraud scenario's monitor spec: what `rtml monitor run --model fraud` needs to know.

The runner (`rtml.monitor.run`) is the kit's; this says which log columns are fraud's
(the transaction id the labels join on, the amount), how chargebacks join, and which threshold
flags a payment (`review`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from monitoring.fraud.labels import join_labels
from rtml.monitor.run import MonitorSpec


def _join(predictions: pd.DataFrame, labels: pd.DataFrame, *, now: datetime
          ) -> tuple[pd.DataFrame, dict[str, Any]]:
    joined, counts = join_labels(predictions, labels, now=now)
    return joined, counts.as_dict()


MONITOR = MonitorSpec(
    name="fraud",
    log_columns=("transaction_id", "amount"),
    numeric_columns=("amount",),
    join_labels=_join,
    reference_label="is_fraud",
    quality_threshold="review",
    positives="frauds",
)
