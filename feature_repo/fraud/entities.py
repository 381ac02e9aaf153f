"""Every entity the feature views are keyed by."""

from feast import Entity, ValueType

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.INT64,
    description="A card holder.",
)

terminal = Entity(
    name="terminal",
    join_keys=["terminal_id"],
    value_type=ValueType.INT64,
    description="A point-of-sale terminal.",
)
