"""The streamed recommendation views: a user's session, an item's trending counts and its stock.

The Bytewax flow (`pipelines/recs/flow.py`) pushes them as events arrive; each push source's
batch file holds the stream backfill (`pipelines/recs/stream_backfill.py`) that the nightly
`materialize` loads, so a fresh Redis starts from the right stock levels. Specs in
`stream_specs.py`.
"""

from datetime import timedelta

from feast import FeatureService, FeatureView, PushSource

from feature_repo.recs.entities import item, user
from feature_repo.recs.stream_specs import ITEM_STOCK, ITEM_TRENDING, USER_SESSION
from rtml.features.sources import batch_source
from rtml.features.specs import feast_fields


def _push(spec_name: str, push_name: str, offline_file: str) -> PushSource:
    return PushSource(name=push_name, batch_source=batch_source(
        name=f"{spec_name}_source", path=f"data/features/{offline_file}",
        timestamp_field="event_timestamp"))


user_session_push = _push("user_session", str(USER_SESSION.push_source),
                          str(USER_SESSION.offline_file))
user_session = FeatureView(
    name="user_session",
    entities=[user],
    # A session ends after 30 quiet minutes (the flow then writes an empty one); a day bounds
    # what a stopped flow leaves behind.
    ttl=timedelta(days=1),
    schema=feast_fields(USER_SESSION),
    source=user_session_push,
    online=True,
    tags={"refresh": "stream"},
)

item_trending_push = _push("item_trending", str(ITEM_TRENDING.push_source),
                           str(ITEM_TRENDING.offline_file))
item_trending = FeatureView(
    name="item_trending",
    entities=[item],
    ttl=timedelta(hours=2),
    schema=feast_fields(ITEM_TRENDING),
    source=item_trending_push,
    online=True,
    tags={"refresh": "stream"},
)

item_stock_push = _push("item_stock", str(ITEM_STOCK.push_source), str(ITEM_STOCK.offline_file))
item_stock = FeatureView(
    name="item_stock",
    entities=[item],
    # The backfill writes every item's level at the nightly cut-off, the flow each change since.
    ttl=timedelta(days=2),
    schema=feast_fields(ITEM_STOCK),
    source=item_stock_push,
    online=True,
    tags={"refresh": "stream"},
)

# The final in-stock check reads this alone, right before an answer goes out.
recs_stock_v1 = FeatureService(
    name="recs_stock_v1",
    features=[item_stock],
    description="An item's units in stock (streamed): the last check before answering.",
    tags={"model": "recs", "use": "serving"},
)
