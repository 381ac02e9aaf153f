"""The table of scenarios: the one place that names every scenario's parts.

The kit's `rtml.scenarios` is the mechanism; this top-layer module is the registration, so
`rtml demo|serve|train|monitor|bench <scenario>` dispatch through it. A new scenario is one entry
here plus its folders (`feature_repo/<s>/`, `pipelines/<s>/`, `bentos/<s>/`, `training/<s>/`,
`monitoring/<s>/`). Paths are strings: nothing here imports a scenario.
"""

from __future__ import annotations

from rtml.scenarios import Registry, Scenario

FRAUD = Scenario(
    name="fraud",
    summary="card payments scored in 50 ms: approve, review or decline with reasons",
    feature_services=("fraud_model_v1", "fraud_model_v2"),
    service="bentos.fraud.service:FraudService",
    flow="pipelines.fraud.flow:get_flow()",
    trainer="training.fraud.train:train",
    train_summary="training.fraud.report:summary_lines",
    monitor="monitoring.fraud.spec:MONITOR",
    generator="pipelines.fraud.simulate:simulate",
    demo="rtml.demo:run_demo",
    bench_requests="benchmarks.load:sample_requests",
    offline_sources=("pipelines.fraud.offline_sources:ensure_fresh_sources",),
)

SENSORS = Scenario(
    name="sensors",
    summary="machine sensor readings scored as they stream: an alert within a second",
    feature_services=("sensors_model_v1",),
    service="bentos.sensors.service:SensorsService",
    flow="pipelines.sensors.flow:get_flow()",
    trainer="training.sensors.train:train",
    train_summary="training.sensors.report:summary_lines",
    monitor="monitoring.sensors.spec:MONITOR",
    generator="pipelines.sensors.simulate:generate",
    demo="rtml.demo.sensors:run_sensors_demo",
    offline_sources=("pipelines.sensors.offline_sources:ensure_offline_sources",),
)

RECS = Scenario(
    name="recs",
    summary="what a shopper should see now: candidates, a learned ranker, diverse in-stock top-k",
    feature_services=("recs_ranker_v1",),
    service="bentos.recs.service:RecsService",
    flow="pipelines.recs.flow:get_flow()",
    trainer="training.recs.train:train",
    train_summary="training.recs.train:summary_lines",
    monitor="monitoring.recs.spec:MONITOR",
    demo="rtml.demo.recs:run_demo",
    generator="pipelines.recs.simulate:simulate",
    bench_requests="benchmarks.recs_load:sample_requests",
    offline_sources=("pipelines.recs.batch_features:ensure_sources",
                     "pipelines.recs.stream_backfill:ensure_sources"),
)

REGISTRY = Registry([FRAUD, RECS, SENSORS])
