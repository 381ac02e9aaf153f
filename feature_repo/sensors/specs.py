"""The sensors feature view, declared once (definitions only: `feast apply` imports this file).

One row per machine channel (`machine_channel` = ``"<machine_id>:<channel>"``): the rolling mean,
std, min, max and rate of change over 10 s, 1 min and 1 h that the flow computes for every
reading (`pipelines.sensors.features`, the same code the detector scores with). The flow pushes
them through `machine_stats_push`; training and dashboards read them from Feast.
"""

from __future__ import annotations

from pipelines.sensors.features import feature_names
from rtml.features.specs import ViewSpec, push_join_keys, serving_defaults

MACHINE_STATS = ViewSpec(
    name="machine_stats", join_key="machine_channel", key_dtype="string",
    features={name: "float64" for name in feature_names()},
    push_source="machine_stats_push", offline_file="machine_stats.parquet")

VIEWS = (MACHINE_STATS,)
STREAMED = (MACHINE_STATS,)
SERVING_DEFAULTS = serving_defaults(VIEWS)
PUSH_JOIN_KEYS = push_join_keys(STREAMED)


def machine_channel(machine_id: str, channel: str) -> str:
    """The view's entity id of one channel of one machine."""
    return f"{machine_id}:{channel}"
