"""The kit's online reader beyond fraud's int keys and numbers: string keys and list features.

A small repo of its own (views declared with `rtml.features.specs`), `feast apply`, rows written
by Feast itself (`write_to_online_store` and a push), then `OnlineReader` must return what
`FeatureStore.get_online_features` returns for the same FeatureService.
"""

from __future__ import annotations

import os
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from feast import FeatureStore
from feast.data_source import PushMode

from rtml.features.online import OnlineReader
from rtml.features.specs import ViewSpec, parquet_schema, serving_defaults
from rtml.redis import connect
from rtml.settings import Settings
from tests.support.procs import BIN, run

DEFS = '''
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, FileSource, PushSource

from rtml.features.specs import ViewSpec, feast_fields, key_value_type

PROFILE = ViewSpec(name="user_profile", join_key="user_id", key_dtype="string",
                   features={"visits": "int64", "score": "float64", "segment": "string",
                             "recent_items": "int64_list", "embedding": "float64_list"},
                   push_source="user_push", offline_file="user_profile.parquet")
READINGS = ViewSpec(name="sensor_readings", join_key="sensor_id",
                    features={"last_values": "float64_list", "n": "int64"},
                    push_source="sensor_push", offline_file="sensor_readings.parquet")

user = Entity(name="user", join_keys=["user_id"], value_type=key_value_type(PROFILE))
sensor = Entity(name="sensor", join_keys=["sensor_id"], value_type=key_value_type(READINGS))
user_push = PushSource(name="user_push", batch_source=FileSource(
    name="user_source", path="data/user_profile.parquet", timestamp_field="event_timestamp"))
sensor_push = PushSource(name="sensor_push", batch_source=FileSource(
    name="sensor_source", path="data/sensor_readings.parquet", timestamp_field="event_timestamp"))
user_profile = FeatureView(name="user_profile", entities=[user], ttl=timedelta(days=3650),
                           schema=feast_fields(PROFILE), source=user_push, online=True)
sensor_readings = FeatureView(name="sensor_readings", entities=[sensor], ttl=timedelta(days=3650),
                              schema=feast_fields(READINGS), source=sensor_push, online=True)
profile_service = FeatureService(name="profile_service", features=[user_profile, sensor_readings])
'''
PROFILE = ViewSpec(name="user_profile", join_key="user_id", key_dtype="string",
                   features={"visits": "int64", "score": "float64", "segment": "string",
                             "recent_items": "int64_list", "embedding": "float64_list"})
READINGS = ViewSpec(name="sensor_readings", join_key="sensor_id",
                    features={"last_values": "float64_list", "n": "int64"})
T0 = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def repo(valkey: Settings, tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    root: Path = tmp_path_factory.mktemp("typed_repo")
    (root / "feature_store.yaml").write_text(textwrap.dedent(f"""\
        project: rtml_typed
        provider: local
        registry: data/registry.db
        online_store:
          type: redis
          connection_string: "{valkey.redis_address}"
        offline_store:
          type: file
        entity_key_serialization_version: 3
        """))
    (root / "typed_defs.py").write_text(DEFS)
    (root / "data").mkdir()
    for spec in (PROFILE, READINGS):  # the offline files, typed as the specs say
        pq.write_table(parquet_schema(spec).empty_table(), root / "data" / f"{spec.name}.parquet")
    env = {**os.environ, "FEAST_USAGE": "False", "PYTHONWARNINGS": "ignore"}
    run([str(BIN / "feast"), "apply"], env=env, cwd=root)
    store = FeatureStore(repo_path=str(root))
    profiles = pd.DataFrame({
        "user_id": ["ana", "bo", "ünï-42"],
        "event_timestamp": [T0] * 3,
        "visits": [3, 0, 12_000_000_000],
        "score": [0.25, -1.5, 1e-300],
        "segment": ["new", "", "loyal"],
        "recent_items": [[101, 7, 101], [], [2**40]],
        "embedding": [[0.1, 0.2], [float("inf")], []],
    })
    store.write_to_online_store("user_profile", profiles)
    store.push("sensor_push", pd.DataFrame({
        "sensor_id": [7, 8], "event_timestamp": [T0, T0],
        "last_values": [[20.5, 20.75, 21.0], [-3.0]], "n": [3, 1]}), to=PushMode.ONLINE)
    return store


ROWS = [{"user_id": "ana", "sensor_id": 7}, {"user_id": "bo", "sensor_id": 8},
        {"user_id": "ünï-42", "sensor_id": 7}]


def test_string_keys_and_list_features_read_as_feast_reads_them(repo: FeatureStore,
                                                                valkey: Settings):
    reader = OnlineReader(store=repo, service_name="profile_service",
                          defaults=serving_defaults([PROFILE, READINGS]))
    assert reader.join_keys == ["sensor_id", "user_id"]
    got = reader.read_sync(connect(valkey), ROWS)
    feast = repo.get_online_features(features=repo.get_feature_service("profile_service"),
                                     entity_rows=ROWS).to_dict()
    assert all(not row.missing_views for row in got)
    for i, row in enumerate(got):
        for name in reader.feature_names:
            assert row.values[name] == feast[name][i], (i, name)
    ana = got[0].values
    assert ana["recent_items"] == [101, 7, 101] and all(type(x) is int for x in ana["recent_items"])
    assert ana["embedding"] == [0.1, 0.2] and ana["segment"] == "new"
    assert ana["last_values"] == [20.5, 20.75, 21.0]
    assert got[2].values["recent_items"] == [2**40]  # beyond float precision's exact ints: no cast
    assert got[1].values["recent_items"] == [] and got[1].values["segment"] == ""
    assert got[0].event_times["user_profile"] == T0.timestamp()


def test_unknown_string_key_gets_the_declared_defaults(repo: FeatureStore, valkey: Settings):
    defaults = serving_defaults([PROFILE, READINGS])
    reader = OnlineReader(store=repo, service_name="profile_service", defaults=defaults)
    (row,) = reader.read_sync(connect(valkey), [{"user_id": "nobody", "sensor_id": 7}])
    assert row.missing_views == ["user_profile"]
    assert {n: row.values[n] for n in PROFILE.features} == {
        "visits": 0.0, "score": 0.0, "segment": "", "recent_items": (), "embedding": ()}
    assert row.values["n"] == 3.0
    feast = repo.get_online_features(features=repo.get_feature_service("profile_service"),
                                     entity_rows=[{"user_id": "nobody", "sensor_id": 7}]).to_dict()
    assert feast["visits"] == [None] and feast["n"] == [3]
