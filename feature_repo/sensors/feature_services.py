"""Versioned sensors feature services (training sets and dashboards read these)."""

from feast import FeatureService

from feature_repo.sensors.machines import machine_stats

sensors_model_v1 = FeatureService(
    name="sensors_model_v1",
    features=[machine_stats],
    description="Rolling mean/std/min/max/rate of change per machine channel: 10 s, 1 min, 1 h.",
    tags={"model": "sensors", "version": "1"},
)
