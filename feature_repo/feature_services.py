"""Versioned feature services: the contract between training and serving.

A model records the service name and its ordered feature list; a new feature set is a new
version, never an edit of a served one.
"""

from feast import FeatureService

from feature_repo.terminals import terminal_stats
from feature_repo.transactions import customer_stats, transaction_request_features

fraud_model_v1 = FeatureService(
    name="fraud_model_v1",
    features=[customer_stats, terminal_stats, transaction_request_features],
    description="Fraud scoring from nightly customer and terminal windows plus the request amount.",
    tags={"model": "fraud", "version": "1"},
)
