"""The service's reads, one FeatureService per entity (the ranker's contract is `recs_ranker_v1`).

A request reads its user's views once and each candidate's item views once: a single service
over both entities would read the user's views again for every candidate. `recs_stock_v1`
(in `streamed.py`) is the last check before an answer goes out.
"""

from feast import FeatureService

from feature_repo.recs.items import item_covisit, item_stats
from feature_repo.recs.streamed import item_stock, item_trending, user_session
from feature_repo.recs.users import user_profile

recs_serving_user_v1 = FeatureService(
    name="recs_serving_user_v1",
    features=[user_profile, user_session],
    description="One user's nightly profile and live session, read once per request.",
    tags={"model": "recs", "use": "serving"},
)

recs_serving_items_v1 = FeatureService(
    name="recs_serving_items_v1",
    features=[item_stats, item_trending, item_stock],
    description="A candidate's nightly stats, trending counts and stock (what the ranker reads).",
    tags={"model": "recs", "use": "serving"},
)

# The session's (or history's) few most recent items: their co-visit lists and categories.
# Apart from the candidates' read: 200 co-visit lists per request would cost more than the rest.
recs_serving_anchors_v1 = FeatureService(
    name="recs_serving_anchors_v1",
    features=[item_stats, item_covisit],
    description="Co-visit neighbours (and stats) of the items candidate generation starts from.",
    tags={"model": "recs", "use": "serving"},
)
