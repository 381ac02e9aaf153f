"""Item features: nightly stats and co-visitation neighbours (trending and stock are streamed)."""

from datetime import timedelta

from feast import FeatureView

from feature_repo.recs.entities import item
from feature_repo.recs.specs import ITEM_COVISIT, ITEM_STATS
from rtml.features.sources import batch_source
from rtml.features.specs import feast_fields

item_stats_source = batch_source(
    name="item_stats_source",
    path=f"data/features/{ITEM_STATS.offline_file}",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

item_stats = FeatureView(
    name="item_stats",
    entities=[item],
    ttl=timedelta(days=2),
    schema=feast_fields(ITEM_STATS),
    source=item_stats_source,
    online=True,
    tags={"refresh": "daily"},
)

item_covisit_source = batch_source(
    name="item_covisit_source",
    path=f"data/features/{ITEM_COVISIT.offline_file}",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

item_covisit = FeatureView(
    name="item_covisit",
    entities=[item],
    ttl=timedelta(days=2),
    schema=feast_fields(ITEM_COVISIT),
    source=item_covisit_source,
    online=True,
    tags={"refresh": "daily"},
)
