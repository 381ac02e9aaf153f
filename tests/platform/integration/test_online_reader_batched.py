"""Many entities over several views in one round trip, on one node and on a cluster.

Every value the online reader returns must be what an independent decode of the stored bytes
gives.
A small repo of its own: two views on an int-keyed `item` (Feast keeps both in the item's one
hash) and one string-keyed `user` view with list features; rows written by Feast itself. The
reference reads each field with its own `HGET` and decodes it with protobuf (`ValueProto`),
then applies the declared defaults; Feast's `get_online_features` must agree on the values.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from feast import FeatureStore, RepoConfig
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from rtml.features import online
from rtml.features.online import OnlineReader
from rtml.features.specs import ViewSpec, parquet_schema, serving_defaults
from rtml.redis import connect, connect_async
from rtml.settings import Settings
from tests.support.cluster import Cluster, redis_cluster
from tests.support.procs import BIN, run

DEFS = '''
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, FileSource, PushSource

from rtml.features.specs import ViewSpec, feast_fields, key_value_type

STATS = ViewSpec(name="b_item_stats", join_key="item_id",
                 features={"clicks": "int64", "price": "float64", "tags": "string_list"},
                 push_source="b_stats_push", offline_file="b_item_stats.parquet")
STOCK = ViewSpec(name="b_item_stock", join_key="item_id", features={"stock": "int64"},
                 push_source="b_stock_push", offline_file="b_item_stock.parquet")
USERS = ViewSpec(name="b_user", join_key="user_id", key_dtype="string",
                 features={"recent": "int64_list", "weights": "float64_list", "tier": "string"},
                 push_source="b_user_push", offline_file="b_user.parquet")


def _view(spec, entity):
    push = PushSource(name=spec.push_source, batch_source=FileSource(
        name=spec.name + "_src", path="data/" + spec.offline_file,
        timestamp_field="event_timestamp"))
    return FeatureView(name=spec.name, entities=[entity], ttl=timedelta(days=3650),
                       schema=feast_fields(spec), source=push, online=True)


item = Entity(name="item", join_keys=["item_id"], value_type=key_value_type(STATS))
user = Entity(name="user", join_keys=["user_id"], value_type=key_value_type(USERS))
b_item_stats = _view(STATS, item)
b_item_stock = _view(STOCK, item)
b_user = _view(USERS, user)
b_items = FeatureService(name="b_items", features=[b_item_stats, b_item_stock])
b_all = FeatureService(name="b_all", features=[b_item_stats, b_user, b_item_stock])
b_prices = FeatureService(name="b_prices",
                          features=[b_item_stats[["clicks", "price"]], b_item_stock])
'''
STATS = ViewSpec(name="b_item_stats", join_key="item_id",
                 features={"clicks": "int64", "price": "float64", "tags": "string_list"})
STOCK = ViewSpec(name="b_item_stock", join_key="item_id", features={"stock": "int64"})
USERS = ViewSpec(name="b_user", join_key="user_id", key_dtype="string",
                 features={"recent": "int64_list", "weights": "float64_list", "tier": "string"})
SPECS = (STATS, STOCK, USERS)
T0 = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
ITEMS = list(range(1, 301))  # 1..300: stats for all but every 7th, stock for the even ones


def _frames() -> dict[str, pd.DataFrame]:
    stats = [i for i in ITEMS if i % 7]
    stock = [i for i in ITEMS if i % 2 == 0]
    return {
        "b_item_stats": pd.DataFrame({
            "item_id": stats, "event_timestamp": [T0 + timedelta(seconds=i) for i in stats],
            "clicks": [i * 1_000_003 for i in stats], "price": [i / 3 for i in stats],
            "tags": [[f"t{i % 5}", "ü"][: i % 3] for i in stats]}),
        "b_item_stock": pd.DataFrame({
            "item_id": stock, "event_timestamp": [T0] * len(stock),
            "stock": [(i * 37) % 11 - 2 for i in stock]}),
        "b_user": pd.DataFrame({
            "user_id": ["ana", "bo", "ünï-42"], "event_timestamp": [T0] * 3,
            "recent": [[101, 7, 101], [], [2**40]], "weights": [[0.5, float("nan")], [], [1e-9]],
            "tier": ["gold", "", "x"]}),
    }


def _write(store: FeatureStore) -> None:
    for view, frame in _frames().items():
        store.write_to_online_store(view, frame)


def _store_on(root: Path, online_store: dict) -> FeatureStore:
    raw = yaml.safe_load((root / "feature_store.yaml").read_text())
    raw["online_store"] = online_store
    config = RepoConfig(**raw)
    config.repo_path = root
    return FeatureStore(repo_path=str(root), config=config)


@pytest.fixture(scope="module")
def root(valkey: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root: Path = tmp_path_factory.mktemp("batched_repo")
    (root / "feature_store.yaml").write_text(textwrap.dedent(f"""\
        project: rtml_batched
        provider: local
        registry: data/registry.db
        online_store:
          type: redis
          connection_string: "{valkey.redis_address}"
        offline_store:
          type: file
        entity_key_serialization_version: 3
        """))
    (root / "batched_defs.py").write_text(DEFS)
    (root / "data").mkdir()
    for spec in SPECS:
        pq.write_table(parquet_schema(spec).empty_table(), root / "data" / f"{spec.name}.parquet")
    env = {**os.environ, "FEAST_USAGE": "False", "PYTHONWARNINGS": "ignore"}
    run([str(BIN / "feast"), "apply"], env=env, cwd=root)
    _write(FeatureStore(repo_path=str(root)))
    return root


@pytest.fixture(scope="module")
def cluster(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with redis_cluster(tmp_path_factory.mktemp("batched_cluster")) as c:
        _write(_store_on(root, {"type": "redis", "redis_type": "redis_cluster",
                                "connection_string": c.address}))
        yield c


def _key(join_key: str, value, field: str) -> bytes:
    ek = EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(**{field: value})])
    return serialize_entity_key(ek, entity_key_serialization_version=3) + b"rtml_batched"


def _expected(client, rows: list[dict]) -> list[tuple[dict, list[str]]]:
    """Per row: values (field by field, `HGET` + protobuf decode, else the default), missing."""
    defaults = serving_defaults(list(SPECS))
    out = []
    for row in rows:
        values, missing = {}, []
        for spec in (STATS, USERS, STOCK):
            value = row[spec.join_key]
            key = _key(spec.join_key, value, "string_val" if isinstance(value, str)
                       else "int64_val")
            if not client.hget(key, f"_ts:{spec.name}"):
                missing.append(spec.name)
                values.update({n: defaults[n] for n in spec.features})
                continue
            for name in spec.features:
                raw = client.hget(key, _mmh3(f"{spec.name}:{name}"))
                val = ValueProto.FromString(raw) if raw else None
                kind = val.WhichOneof("val") if val is not None else None
                if kind is None:
                    values[name] = defaults[name]
                elif kind.endswith("_list_val"):
                    values[name] = list(getattr(val, kind).val)
                elif kind in ("int64_val", "double_val"):
                    x = float(getattr(val, kind))
                    values[name] = defaults[name] if math.isnan(x) else x
                else:
                    values[name] = getattr(val, kind)
        out.append((values, missing))
    return out


def _rows() -> list[dict]:
    users = ["ana", "bo", "ünï-42", "nobody"]
    return [{"item_id": i, "user_id": users[i % 4]} for i in [*ITEMS, 9_999, 10_000]]


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _check(got, expected) -> None:
    for row, (values, missing) in zip(got, expected, strict=True):
        assert row.missing_views == missing
        assert set(row.values) == set(values)
        for name, want in values.items():
            assert _same(row.values[name], want), (name, row.values[name], want)


def _calls(client) -> dict[str, int]:
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}


def test_many_entities_and_views_in_one_script_call_equal_an_independent_decode(
        root: Path, valkey: Settings):
    store = FeatureStore(repo_path=str(root))
    reader = OnlineReader(store=store, service_name="b_all",
                          defaults=serving_defaults(list(SPECS)))
    client = connect(valkey)
    rows = _rows()
    reader.read_sync(client, rows[:10])  # the server learns the script (EVALSHA, then EVAL)
    before = _calls(client)
    got = reader.read_sync(client, rows)
    after = _calls(client)
    assert after.get("evalsha", 0) - before.get("evalsha", 0) == 1  # one round trip
    assert after.get("eval", 0) == before.get("eval", 0)
    # Feast's own hash layout: one HMGET per entity hash (items 302 + users 302), inside it.
    assert after.get("hmget", 0) - before.get("hmget", 0) == 2 * len(rows)
    expected = _expected(client, rows)
    _check(got, expected)
    assert got[0].missing_views == ["b_item_stock"]  # item 1: stats, no stock
    assert got[13].missing_views == ["b_item_stats"]  # item 14: stock only
    assert got[6].missing_views == ["b_item_stats", "b_user", "b_item_stock"]  # 7, "nobody"
    assert got[-1].missing_views == ["b_item_stats", "b_item_stock"]  # unknown item
    assert got[0].values["tags"] == ["t1"] and got[1].values["tags"] == ["t2", "ü"]
    assert got[2].values["tags"] == []
    assert got[0].event_times["b_item_stats"] == (T0 + timedelta(seconds=1)).timestamp()
    # Feast agrees on every value it knows (it answers None where the reader's default stands).
    feast = store.get_online_features(features=store.get_feature_service("b_all"),
                                      entity_rows=rows[:40]).to_dict()
    for i, row in enumerate(got[:40]):
        for name in reader.feature_names:
            if feast[name][i] is not None:
                assert _same(row.values[name], feast[name][i]), (i, name)


def test_the_async_read_and_a_small_read_give_the_same_rows(root: Path, valkey: Settings):
    import asyncio

    store = FeatureStore(repo_path=str(root))
    reader = OnlineReader(store=store, service_name="b_items",
                          defaults=serving_defaults(list(SPECS)))
    rows = [{"item_id": i} for i in ITEMS]
    client = connect(valkey)
    few = rows[: online.LUA_MIN_KEYS - 1]  # below the script's threshold: a pipeline
    before = _calls(client)
    small = reader.read_sync(client, few)
    after = _calls(client)
    assert sum(after.get(c, 0) - before.get(c, 0) for c in ("evalsha", "eval")) == 0

    async def go():
        aclient = connect_async(valkey)
        try:
            return await reader.read(aclient, rows)
        finally:
            await aclient.aclose()

    many = asyncio.run(go())
    sync = reader.read_sync(client, rows)
    assert _same([list(r.values.values()) for r in many], [list(r.values.values()) for r in sync])
    assert _same([list(r.values.values()) for r in small],
                 [list(r.values.values()) for r in sync[: len(few)]])
    for r in sync:
        assert not r.values.keys() - set(reader.feature_names)


def test_on_a_cluster_the_read_falls_back_to_a_pipeline_and_gives_the_same_rows(
        root: Path, valkey: Settings, cluster: Cluster):
    import asyncio

    store = FeatureStore(repo_path=str(root))
    reader = OnlineReader(store=store, service_name="b_all",
                          defaults=serving_defaults(list(SPECS)))
    rows = _rows()
    single = reader.read_sync(connect(valkey), rows)
    on_cluster = reader.read_sync(connect(address=cluster.url), rows)
    _check(on_cluster, _expected(connect(valkey), rows))
    assert _same([list(r.values.values()) for r in on_cluster],
                 [list(r.values.values()) for r in single])

    async def go():
        aclient = connect_async(address=cluster.url)
        try:
            return await reader.read(aclient, rows)
        finally:
            await aclient.aclose()

    assert _same([list(r.values.values()) for r in asyncio.run(go())],
                 [list(r.values.values()) for r in single])
    assert reader._script_ok  # the cluster was never sent a script


def test_a_repeated_read_sees_every_write_and_hands_out_rows_of_the_callers_own(
        root: Path, valkey: Settings):
    """Scalar rows are decoded once per stored bytes: a write must show on the next read."""
    store = FeatureStore(repo_path=str(root))
    reader = OnlineReader(store=store, service_name="b_prices",
                          defaults=serving_defaults(list(SPECS)))
    client = connect(valkey)
    rows = [{"item_id": i, "user_id": "nobody"} for i in [*ITEMS[:30], 9_999]]
    views = ["b_item_stats", "b_item_stock"]

    def expected():
        return [({n: v for n, v in values.items() if n in reader.feature_names},
                 [m for m in missing if m in views]) for values, missing in _expected(client, rows)]

    first = reader.read_sync(client, rows)
    _check(first, expected())
    for row in first:  # the caller changes what it got: the next read must not see it
        row.values["price"] = -1.0
        row.missing_views.append("mine")
        row.event_times.clear()
    again = reader.read_sync(client, rows)
    _check(again, expected())
    assert again[3].event_times == {"b_item_stats": (T0 + timedelta(seconds=4)).timestamp(),
                                    "b_item_stock": T0.timestamp()}
    # Item 4 gets a newer price and stock; item 5 stays as it was.
    later = T0 + timedelta(hours=1)
    store.write_to_online_store("b_item_stats", pd.DataFrame({
        "item_id": [4], "event_timestamp": [later], "clicks": [12], "price": [99.5],
        "tags": [["fresh"]]}))
    store.write_to_online_store("b_item_stock", pd.DataFrame({
        "item_id": [4], "event_timestamp": [later], "stock": [0]}))
    after = reader.read_sync(client, rows)
    _check(after, expected())
    assert (after[3].values["clicks"], after[3].values["price"], after[3].values["stock"]) == (
        12, 99.5, 0)
    assert after[3].event_times["b_item_stock"] == later.timestamp()
    assert after[4].values == again[4].values
