"""The recommendation scenario's entities: a shopper and a catalogue item."""

from feast import Entity, ValueType

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.INT64,
    description="A shopper (signed in or a stable anonymous id).",
)

item = Entity(
    name="item",
    join_keys=["item_id"],
    value_type=ValueType.INT64,
    description="A catalogue item.",
)
