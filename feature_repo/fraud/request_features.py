"""Serving's in-process twin of the `transaction_request_features` on-demand view.

Feast computes the view offline (`transactions.py`); the service computes the same values per
request without Feast's transformation machinery, handing `ON_DEMAND` to the kit's online reader.
`tests/fraud/unit/test_request_features.py` keeps the two equal row by row. Plain functions, no
Feast objects: `feast apply` imports this file too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def request_features(amount: float, cust_mean_amount_30d: float | None) -> dict[str, float]:
    """The amount and its ratio to the customer's 30-day mean (0.0 with no usable history)."""
    mean = cust_mean_amount_30d or 0.0
    ratio = amount / mean if mean > 0 else 0.0
    return {"tx_amount": float(amount), "amount_vs_cust_mean_30d": float(ratio)}


def _transaction_request_features(request: Mapping[str, Any], features: Mapping[str, Any]
                                  ) -> dict[str, float]:
    return request_features(request["amount"], features.get("cust_mean_amount_30d"))


# On-demand view name -> (request fields, feature values read) -> its output features.
ON_DEMAND = {"transaction_request_features": _transaction_request_features}
