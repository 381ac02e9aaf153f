"""`Transaction`: strict request validation, every rejection naming the offending field."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
from pydantic import ValidationError

from bentos.fraud.schemas import EXAMPLE_TRANSACTION, MAX_AMOUNT, Transaction

FIELDS = ("transaction_id", "customer_id", "terminal_id", "amount", "timestamp")


def _rejected_fields(payload: dict) -> set[str]:
    with pytest.raises(ValidationError) as info:
        Transaction.model_validate(payload)
    return {str(err["loc"][0]) for err in info.value.errors()}


def test_example_is_accepted_with_its_values():
    tx = Transaction.model_validate(EXAMPLE_TRANSACTION)
    assert tx.transaction_id == EXAMPLE_TRANSACTION["transaction_id"]
    assert tx.customer_id == EXAMPLE_TRANSACTION["customer_id"]
    assert tx.terminal_id == EXAMPLE_TRANSACTION["terminal_id"]
    assert tx.amount == EXAMPLE_TRANSACTION["amount"]
    assert tx.timestamp == dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
    assert tx.timestamp.utcoffset() == dt.timedelta(0)


def test_integer_amount_and_integer_transaction_id_are_accepted():
    tx = Transaction.model_validate({**EXAMPLE_TRANSACTION, "amount": 12, "transaction_id": 7})
    assert tx.amount == 12.0
    assert tx.transaction_id == 7


def test_amount_at_max_is_accepted():
    assert Transaction.model_validate({**EXAMPLE_TRANSACTION, "amount": MAX_AMOUNT}).amount == (
        MAX_AMOUNT
    )


@pytest.mark.parametrize("field", FIELDS)
def test_missing_field_is_rejected_by_name(field):
    payload = {k: v for k, v in EXAMPLE_TRANSACTION.items() if k != field}
    assert _rejected_fields(payload) == {field}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("customer_id", "12"),
        ("customer_id", 12.0),
        ("customer_id", True),
        ("customer_id", -1),
        ("customer_id", 2**63),
        ("terminal_id", "1234"),
        ("amount", math.nan),
        ("amount", math.inf),
        ("amount", -math.inf),
        ("amount", -5.0),
        ("amount", 0),
        ("amount", 0.0),
        ("amount", MAX_AMOUNT * 1.000001),
        ("amount", True),
        ("amount", False),
        ("amount", "57.30"),
        ("amount", None),
        ("timestamp", "2026-11-28T12:00:00"),
        ("timestamp", dt.datetime(2026, 11, 28, 12, 0)),  # noqa: DTZ001 - naive on purpose
        ("timestamp", "not a time"),
        ("transaction_id", ""),
        ("transaction_id", "x" * 129),
        ("transaction_id", None),
    ],
)
def test_bad_value_is_rejected_naming_the_field(field, value):
    assert _rejected_fields({**EXAMPLE_TRANSACTION, field: value}) == {field}


def test_every_bad_field_is_reported_at_once():
    payload = {**EXAMPLE_TRANSACTION, "customer_id": "12", "amount": math.nan}
    assert _rejected_fields(payload) == {"customer_id", "amount"}


def test_extra_fields_are_ignored():
    tx = Transaction.model_validate({**EXAMPLE_TRANSACTION, "merchant": "x", "_is_fraud": 1})
    assert set(tx.model_dump()) == set(FIELDS)
    assert not hasattr(tx, "merchant")


def test_json_input_is_strict_too():
    good = json.dumps(EXAMPLE_TRANSACTION)
    assert Transaction.model_validate_json(good).customer_id == 42
    bad = json.dumps({**EXAMPLE_TRANSACTION, "customer_id": "42"})
    with pytest.raises(ValidationError) as info:
        Transaction.model_validate_json(bad)
    assert {str(e["loc"][0]) for e in info.value.errors()} == {"customer_id"}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "true", "\"57.3\""])
def test_json_amount_that_is_not_a_finite_number_is_rejected(literal):
    body = (
        '{"transaction_id": "tx-1", "customer_id": 1, "terminal_id": 2, '
        f'"amount": {literal}, "timestamp": "2026-11-28T12:00:00Z"}}'
    )
    with pytest.raises(ValidationError) as info:
        Transaction.model_validate_json(body)
    assert {str(e["loc"][0]) for e in info.value.errors()} == {"amount"}
