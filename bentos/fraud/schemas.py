"""Event schemas shared by the services and the stream jobs.

Strict types: a customer id sent as a string, a boolean amount or a NaN is a 400 naming the field,
not a silent coercion that scores the wrong customer.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, field_validator

# Card payments above this are data errors (a decimal shifted, cents sent as units), not payments.
MAX_AMOUNT = 1_000_000.0

EntityId = Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]


class Transaction(BaseModel):
    """A card payment to score."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    transaction_id: Annotated[str, Field(min_length=1, max_length=128)] | StrictInt
    customer_id: EntityId
    terminal_id: EntityId
    amount: Annotated[float, Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False)]
    timestamp: AwareDatetime

    @field_validator("amount", mode="before")
    @classmethod
    def _amount_is_a_number(cls, value: object) -> object:
        # JSON numbers only: "12.5" or true is a client bug worth a 400, not a coercion.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a JSON number")
        return value


EXAMPLE_TRANSACTION = {
    "transaction_id": "tx-0001",
    "customer_id": 42,
    "terminal_id": 1234,
    "amount": 57.30,
    "timestamp": "2026-11-28T12:00:00Z",
}
