"""The ranker's feature service: what serving reads in one round trip for a request.

`recs_ranker_v1` = the nightly user profile, item stats and co-visit neighbours, plus the
streamed session, trending and stock views (`user_session`, `item_trending`, `item_stock`)
declared beside the stream flow. The model's own columns (`training.recs.features.FEATURE_NAMES`)
are derived from these per candidate; the card records both.
"""

from feast import FeatureService

from feature_repo.recs.items import item_covisit, item_stats
from feature_repo.recs.streamed import item_stock, item_trending, user_session
from feature_repo.recs.users import user_profile

recs_ranker_v1 = FeatureService(
    name="recs_ranker_v1",
    features=[user_profile, item_stats, item_covisit, user_session, item_trending, item_stock],
    description="Recommendations ranker: nightly user/item/co-visit views and streamed views.",
    tags={"model": "recs", "version": "1"},
)
