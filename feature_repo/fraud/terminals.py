"""Terminal risk features: nightly windows with the label delay, fresh streamed counts."""

from datetime import timedelta

from feast import FeatureView, PushSource

from feature_repo.fraud.entities import terminal
from feature_repo.fraud.specs import TERMINAL_FRESH, TERMINAL_STATS
from rtml.features.sources import batch_source
from rtml.features.specs import feast_fields

# Fraud is known only days later (chargebacks): the row stamped D covers [D - 7d - w, D - 7d).
terminal_stats_source = batch_source(
    name="terminal_stats_source",
    path=f"data/features/{TERMINAL_STATS.offline_file}",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

terminal_stats = FeatureView(
    name="terminal_stats",
    entities=[terminal],
    ttl=timedelta(days=2),
    schema=feast_fields(TERMINAL_STATS),
    source=terminal_stats_source,
    online=True,
    tags={"refresh": "daily"},
)

terminal_fresh_push = PushSource(
    name="terminal_fresh_push",
    batch_source=batch_source(
        name="terminal_fresh_source",
        path=f"data/features/{TERMINAL_FRESH.offline_file}",
        timestamp_field="event_timestamp",
    ),
)

terminal_fresh = FeatureView(
    name="terminal_fresh",
    entities=[terminal],
    ttl=timedelta(hours=1),
    schema=feast_fields(TERMINAL_FRESH),
    source=terminal_fresh_push,
    online=True,
    tags={"refresh": "stream"},
)
