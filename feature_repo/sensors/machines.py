"""Rolling per-channel statistics of every machine, pushed by the sensors flow."""

from datetime import timedelta

from feast import FeatureView, PushSource

from feature_repo.sensors.entities import machine_channel
from feature_repo.sensors.specs import MACHINE_STATS
from rtml.features.sources import batch_source
from rtml.features.specs import feast_fields

# The flow pushes online only; the batch source is where an offline history of the same features
# lands for training (it must exist: `feast materialize-incremental` reads every view's source).
machine_stats_push = PushSource(
    name="machine_stats_push",
    batch_source=batch_source(
        name="machine_stats_source",
        path=f"data/features/{MACHINE_STATS.offline_file}",
        timestamp_field="event_timestamp",
    ),
)

machine_stats = FeatureView(
    name="machine_stats",
    entities=[machine_channel],
    # The longest window: a channel silent for longer has no current statistics.
    ttl=timedelta(hours=1),
    schema=feast_fields(MACHINE_STATS),
    source=machine_stats_push,
    online=True,
    tags={"refresh": "stream"},
)
