"""Customer spending features: nightly batch windows, fresh streamed windows, request-time ratio."""

from datetime import timedelta

import pandas as pd
from feast import FeatureView, Field, PushSource, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64

from feature_repo.fraud.entities import customer
from feature_repo.fraud.specs import CUSTOMER_FRESH, CUSTOMER_STATS
from rtml.features.sources import batch_source
from rtml.features.specs import feast_fields

# Nightly snapshots (pipelines/fraud/batch_features.py): the row stamped D 00:00 UTC aggregates the
# customer's transactions in [D - w, D).
customer_stats_source = batch_source(
    name="customer_stats_source",
    path=f"data/features/{CUSTOMER_STATS.offline_file}",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

customer_stats = FeatureView(
    name="customer_stats",
    entities=[customer],
    # Two nightly runs: a value older than that is missing, not silently stale.
    ttl=timedelta(days=2),
    schema=feast_fields(CUSTOMER_STATS),
    source=customer_stats_source,
    online=True,
    tags={"refresh": "daily"},
)

# Fresh windows pushed by the streaming flow (pipelines/, the streaming issue). The batch source
# is where a backfill of the same aggregates lands for training.
customer_fresh_push = PushSource(
    name="customer_fresh_push",
    batch_source=batch_source(
        name="customer_fresh_source",
        path=f"data/features/{CUSTOMER_FRESH.offline_file}",
        timestamp_field="event_timestamp",
    ),
)

customer_fresh = FeatureView(
    name="customer_fresh",
    entities=[customer],
    ttl=timedelta(hours=1),
    schema=feast_fields(CUSTOMER_FRESH),
    source=customer_fresh_push,
    online=True,
    tags={"refresh": "stream"},
)

transaction_request = RequestSource(
    name="transaction_request",
    schema=[Field(name="amount", dtype=Float64)],
)


@on_demand_feature_view(
    sources=[customer_stats, transaction_request],
    schema=[
        Field(name="tx_amount", dtype=Float64),
        Field(name="amount_vs_cust_mean_30d", dtype=Float64),
    ],
    mode="pandas",
)
def transaction_request_features(inputs: pd.DataFrame) -> pd.DataFrame:
    """The amount and its ratio to the customer's 30-day mean (0.0 when there is no history).

    Serving computes the same values with `request_features.request_features`; a unit test keeps the
    two equal.
    """
    out = pd.DataFrame()
    amount = inputs["amount"].astype("float64")
    mean = inputs["cust_mean_amount_30d"].astype("float64").fillna(0.0)
    out["tx_amount"] = amount
    out["amount_vs_cust_mean_30d"] = (amount / mean.where(mean > 0)).fillna(0.0)
    return out
