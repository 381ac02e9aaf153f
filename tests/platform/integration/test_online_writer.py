"""The flow's direct writer stores exactly what `FeatureStore.push` stores, under Feast's rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import redis
from feast.data_source import PushMode

from rtml.features.online import load_store
from rtml.features.writer import FeastRedisWriter
from rtml.redis import connect
from rtml.settings import Settings

CUSTOMER_VALUES = {"cust_tx_count_10m": 3, "cust_amount_sum_10m": 151.25,
                   "cust_mean_amount_10m": 151.25 / 3, "cust_tx_count_1h": 7,
                   "cust_amount_sum_1h": 402.5, "cust_mean_amount_1h": 402.5 / 7}
T0 = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def parts(stack: Settings):
    store = load_store(stack)
    client = connect(stack)
    return store, client, FeastRedisWriter(store, client)


def _hash(writer: FeastRedisWriter, client: redis.Redis, join_key: str, entity: int) -> dict:
    return client.hgetall(writer._key(join_key, entity))


@pytest.mark.parametrize(("source", "join_key", "values"), [
    ("customer_fresh_push", "customer_id", CUSTOMER_VALUES),
    ("terminal_fresh_push", "terminal_id", {"term_tx_count_1h": 42}),
])
def test_writes_the_same_bytes_as_feast_push(parts, source, join_key, values):
    store, client, writer = parts
    entity = 870_001
    client.delete(writer._key(join_key, entity))
    store.push(source, pd.DataFrame([{join_key: entity, "event_timestamp": T0, **values}]),
               to=PushMode.ONLINE)
    by_feast = _hash(writer, client, join_key, entity)
    assert by_feast, "Feast's push wrote nothing: the comparison would be empty"
    client.delete(writer._key(join_key, entity))

    assert writer.write(source, [(entity, values, T0)]) == 1
    assert _hash(writer, client, join_key, entity) == by_feast


def test_only_a_strictly_newer_row_replaces_the_stored_one_and_feast_reads_it(parts):
    store, client, writer = parts
    entity = 870_002
    client.delete(writer._key("customer_id", entity))
    older = {**CUSTOMER_VALUES, "cust_tx_count_1h": 1}
    newer = {**CUSTOMER_VALUES, "cust_tx_count_1h": 9}

    assert writer.write("customer_fresh_push", [(entity, CUSTOMER_VALUES, T0)]) == 1
    # A replayed (same instant) or older row is dropped, as Feast's own store drops it.
    assert writer.write("customer_fresh_push", [(entity, older, T0)]) == 0
    assert writer.write("customer_fresh_push",
                        [(entity, older, T0 - timedelta(microseconds=1))]) == 0
    # Within one batch the newest row wins whatever its position.
    batch = [(entity, newer, T0 + timedelta(seconds=2)), (entity, older, T0 + timedelta(seconds=1))]
    assert writer.write("customer_fresh_push", batch) == 1

    online = store.get_online_features(
        features=[f"customer_fresh:{name}" for name in CUSTOMER_VALUES],
        entity_rows=[{"customer_id": entity}]).to_dict()
    assert online["cust_tx_count_1h"] == [9]
    assert online["cust_amount_sum_10m"] == [pytest.approx(151.25)]
    assert online["cust_mean_amount_1h"] == [pytest.approx(402.5 / 7)]


def test_unknown_push_source_is_named(parts):
    _, _, writer = parts
    assert writer.views_of("customer_fresh_push") == ["customer_fresh"]
    with pytest.raises(KeyError, match="no_such_push"):
        writer.views_of("no_such_push")
