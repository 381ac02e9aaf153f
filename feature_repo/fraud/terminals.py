"""Terminal risk features: nightly windows with the label delay, fresh streamed counts."""

from datetime import timedelta

from feast import FeatureView, Field, FileSource, PushSource
from feast.types import Float64, Int64

from feature_repo.fraud.entities import terminal

# Fraud is known only days later (chargebacks): the row stamped D covers [D - 7d - w, D - 7d).
terminal_stats_source = FileSource(
    name="terminal_stats_source",
    path="data/features/terminal_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

terminal_stats = FeatureView(
    name="terminal_stats",
    entities=[terminal],
    ttl=timedelta(days=2),
    schema=[
        Field(name="term_tx_count_1d", dtype=Int64),
        Field(name="term_fraud_rate_1d", dtype=Float64),
        Field(name="term_tx_count_7d", dtype=Int64),
        Field(name="term_fraud_rate_7d", dtype=Float64),
        Field(name="term_tx_count_30d", dtype=Int64),
        Field(name="term_fraud_rate_30d", dtype=Float64),
    ],
    source=terminal_stats_source,
    online=True,
    tags={"refresh": "daily"},
)

terminal_fresh_push = PushSource(
    name="terminal_fresh_push",
    batch_source=FileSource(
        name="terminal_fresh_source",
        path="data/features/terminal_fresh.parquet",
        timestamp_field="event_timestamp",
    ),
)

terminal_fresh = FeatureView(
    name="terminal_fresh",
    entities=[terminal],
    ttl=timedelta(hours=1),
    schema=[Field(name="term_tx_count_1h", dtype=Int64)],
    source=terminal_fresh_push,
    online=True,
    tags={"refresh": "stream"},
)
