"""Shopper features: the nightly profile (the session view is streamed, beside the flow)."""

from datetime import timedelta

from feast import FeatureView

from feature_repo.recs.entities import user
from feature_repo.recs.specs import USER_PROFILE
from rtml.features.sources import batch_source
from rtml.features.specs import feast_fields

user_profile_source = batch_source(
    name="user_profile_source",
    path=f"data/features/{USER_PROFILE.offline_file}",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

user_profile = FeatureView(
    name="user_profile",
    entities=[user],
    # A profile is written for users active in the last 30 days; older: unknown (cold start).
    ttl=timedelta(days=2),
    schema=feast_fields(USER_PROFILE),
    source=user_profile_source,
    online=True,
    tags={"refresh": "daily"},
)
