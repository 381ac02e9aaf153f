"""The flow's direct writer stores a session's list features exactly as `FeatureStore.push` does."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from feast.data_source import PushMode

from rtml.features.online import load_store
from rtml.features.writer import FeastRedisWriter
from rtml.redis import connect
from rtml.settings import Settings

T0 = datetime(2026, 12, 1, 12, 0, 0, 654321, tzinfo=UTC)
ROWS = {
    880_123: {"session_id": 4, "session_items": [31, 7, 12], "session_categories": [2, 5],
              "session_length": 6, "session_last_ts": 1764590400.25},
    # an ended session: empty lists, not missing values
    880_124: {"session_id": 9, "session_items": [], "session_categories": [],
              "session_length": 0, "session_last_ts": 0.0},
}


def test_list_features_are_written_byte_for_byte_as_feast_push(recs_stack: Settings):
    store, client = load_store(recs_stack), connect(recs_stack)
    writer = FeastRedisWriter(store, client)
    keys = {user: writer._key("user_id", user) for user in ROWS}
    client.delete(*keys.values())
    store.push("user_session_push", pd.DataFrame([
        {"user_id": user, "event_timestamp": T0, **values} for user, values in ROWS.items()]),
        to=PushMode.ONLINE)
    by_feast = {user: client.hgetall(key) for user, key in keys.items()}
    assert all(by_feast.values()), "Feast's push wrote nothing: the comparison would be empty"
    client.delete(*keys.values())
    assert writer.write("user_session_push", [(u, v, T0) for u, v in ROWS.items()]) == 2
    assert {user: client.hgetall(key) for user, key in keys.items()} == by_feast
    got = store.get_online_features(features=["user_session:session_items"],
                                    entity_rows=[{"user_id": u} for u in ROWS]).to_dict()
    assert [list(x or []) for x in got["session_items"]] == [v["session_items"]
                                                            for v in ROWS.values()]
