"""Every entity the sensors views are keyed by."""

from feast import Entity, ValueType

machine_channel = Entity(
    name="machine_channel",
    join_keys=["machine_channel"],
    value_type=ValueType.STRING,
    description="One sensor channel of one machine: '<machine_id>:<channel>'.",
)
