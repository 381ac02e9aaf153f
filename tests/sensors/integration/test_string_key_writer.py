"""String entity keys through the flow's direct writer: Feast's own bytes, read back by Feast.

`machine_stats` is keyed by a string (`machine_channel`); the writer must store exactly what
`FeatureStore.push` stores for it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from feast.data_source import PushMode
from feast.value_type import ValueType

from feature_repo.sensors.specs import MACHINE_STATS
from rtml.features.online import load_store
from rtml.features.writer import _KEY_FIELD, FeastRedisWriter
from rtml.redis import connect
from rtml.settings import Settings

T0 = datetime(2026, 12, 2, 12, 0, 0, 250000, tzinfo=UTC)


def test_string_keys_are_written_as_feast_writes_them(sensors: Settings) -> None:
    store, client = load_store(sensors), connect(sensors)
    writer = FeastRedisWriter(store, client)
    entity = "bytes-m1:temperature"
    values = {name: 0.5 + i for i, name in enumerate(MACHINE_STATS.features)}
    key = writer._key("machine_channel", entity, _KEY_FIELD[ValueType.STRING])
    client.delete(key)
    store.push("machine_stats_push", pd.DataFrame([{"machine_channel": entity,
                                                    "event_timestamp": T0, **values}]),
               to=PushMode.ONLINE)
    by_feast = client.hgetall(key)
    assert by_feast, "Feast's push wrote nothing under the writer's key"
    client.delete(key)

    assert writer.write("machine_stats_push", [(entity, values, T0)]) == 1
    assert client.hgetall(key) == by_feast
    online = store.get_online_features(features=["machine_stats:mean_10s", "machine_stats:roc_1h"],
                                       entity_rows=[{"machine_channel": entity}]).to_dict()
    assert online["mean_10s"] == [values["mean_10s"]] and online["roc_1h"] == [values["roc_1h"]]
