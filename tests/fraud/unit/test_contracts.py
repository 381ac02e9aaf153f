"""One source per contract: what is deployed equals what the fraud view specs generate.

Each copy is read from where it is used (the Feast objects `feast apply` registers, the offline
files the jobs write, the service's defaults, the stream sink's join keys), never from the
generators themselves, so hand-editing any one of them breaks a test here.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from feast import FeatureView, PushSource

from bentos.fraud import service
from feature_repo.fraud import entities, specs, terminals, transactions
from feature_repo.fraud.feature_services import fraud_model_v1, fraud_model_v2
from monitoring.fraud import backtest
from pipelines.fraud import batch_features, simulate, windows
from pipelines.fraud.offline_sources import SCHEMAS
from rtml.features.specs import key_value_type

VIEWS = {v.name: v for v in (transactions.customer_stats, transactions.customer_fresh,
                             terminals.terminal_stats, terminals.terminal_fresh)}


def _feast_dtype(field) -> str:
    return {"Int64": "int64", "Float64": "float64"}[str(field.dtype)]


@pytest.mark.parametrize("spec", specs.VIEWS, ids=lambda s: s.name)
def test_feast_views_are_the_specs(spec):
    view: FeatureView = VIEWS[spec.name]
    assert {f.name: _feast_dtype(f) for f in view.features} == dict(spec.features)
    assert [f.name for f in view.features] == list(spec.features)  # the models' column order
    (entity,) = [e for e in (entities.customer, entities.terminal) if [e.name] == view.entities]
    assert entity.join_key == spec.join_key
    assert entity.value_type == key_value_type(spec)
    batch = view.batch_source
    assert batch.path == f"data/features/{spec.offline_file}"
    assert (batch.created_timestamp_column == "created") == spec.created
    if spec.push_source is None:
        assert view.stream_source is None
    else:
        assert isinstance(view.stream_source, PushSource)
        assert view.stream_source.name == spec.push_source


def test_offline_schemas_of_streamed_views_are_the_specs():
    assert set(SCHEMAS) == {v.offline_file for v in specs.STREAMED}
    for view in specs.STREAMED:
        schema = SCHEMAS[view.offline_file]
        fields = {f.name: f.type for f in schema}
        assert schema.names[:2] == [view.join_key, "event_timestamp"]
        assert fields[view.join_key] == pa.int64()
        assert fields["event_timestamp"] == pa.timestamp("ns", tz="UTC")
        assert {n: str(t) for n, t in fields.items() if n in view.features} == {
            n: {"int64": "int64", "float64": "double"}[d] for n, d in view.features.items()}
        assert len(schema) == 2 + len(view.features)


def test_nightly_job_writes_the_batch_views_schemas(tmp_path):
    data = simulate.simulate(customers=20, terminals=30, days=12, start=dt.date(2024, 1, 1),
                             seed=5)
    raw = tmp_path / "transactions.parquet"
    data.transactions.to_parquet(raw, index=False)
    paths = batch_features.build(raw, tmp_path / "features")
    for view in (specs.CUSTOMER_STATS, specs.TERMINAL_STATS):
        schema = pa.parquet.read_schema(paths[view.name]).remove_metadata()
        assert paths[view.name].name == view.offline_file
        assert schema.names == [view.join_key, "event_timestamp", "created", *view.features]
        for name, dtype in view.features.items():
            assert str(schema.field(name).type) == {"int64": "int64", "float64": "double"}[dtype]


def test_backfill_writes_the_streamed_views_columns():
    tx = simulate.simulate(customers=5, terminals=5, days=1, start=dt.date(2024, 1, 1),
                           seed=1).transactions
    for view, kind in ((specs.CUSTOMER_FRESH, "customer"), (specs.TERMINAL_FRESH, "terminal")):
        frame = windows.backfill(tx, kind=kind)
        assert list(frame.columns) == [view.join_key, "event_timestamp", *view.features]


def test_serving_defaults_cover_every_view_feature_of_every_service_with_no_history():
    assert service.DEFAULT_FEATURES is specs.SERVING_DEFAULTS
    for fs in (fraud_model_v1, fraud_model_v2):
        read = [f.name for p in fs.feature_view_projections if p.name in VIEWS
                for f in p.features]
        assert set(read) <= set(service.DEFAULT_FEATURES)
    expected = {f.name: 0.0 for v in VIEWS.values() for f in v.features}
    assert service.DEFAULT_FEATURES == expected
    assert all(type(v) is float for v in service.DEFAULT_FEATURES.values())


def test_push_join_keys_are_the_feast_push_sources():
    keys = {e.name: e.join_key for e in (entities.customer, entities.terminal)}
    from_feast = {v.stream_source.name: keys[v.entities[0]] for v in VIEWS.values()
                  if v.stream_source is not None}
    assert specs.PUSH_JOIN_KEYS == from_feast


def test_backtest_features_are_what_the_v1_service_reads():
    assert backtest.FEATURES == [f.name for p in fraud_model_v1.feature_view_projections
                                 for f in p.features]
    assert backtest.FEATURES[:12] == [*specs.CUSTOMER_STATS.features,
                                      *specs.TERMINAL_STATS.features]
