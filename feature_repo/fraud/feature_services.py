"""Versioned feature services: the contract between training and serving.

A model records the service name and its ordered feature list; a new feature set is a new
version, never an edit of a served one.
"""

from feast import FeatureService

from feature_repo.fraud.terminals import terminal_fresh, terminal_stats
from feature_repo.fraud.transactions import (
    customer_fresh,
    customer_stats,
    transaction_request_features,
)

fraud_model_v1 = FeatureService(
    name="fraud_model_v1",
    features=[customer_stats, terminal_stats, transaction_request_features],
    description="Fraud scoring from nightly customer and terminal windows plus the request amount.",
    tags={"model": "fraud", "version": "1"},
)

fraud_model_v2 = FeatureService(
    name="fraud_model_v2",
    features=[customer_stats, terminal_stats, customer_fresh, terminal_fresh,
              transaction_request_features],
    description="v1 plus the streamed last-10-minutes / last-hour windows (hybrid freshness).",
    tags={"model": "fraud", "version": "2"},
)
