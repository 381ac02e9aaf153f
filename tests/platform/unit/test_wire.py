"""The reader's wire decoder gives what Feast's own protobuf decode gives, on every value type.

The reference here is written out from `ValueProto` (parse, `WhichOneof`, the field), not taken
from the module under test; values are built with protobuf, as Feast writes them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from google.protobuf.timestamp_pb2 import Timestamp

from rtml.features.wire import Memo, decode_value

NUMBERS = ("int64_val", "int32_val", "double_val", "float_val")


def reference(raw: bytes | None):
    """Feast's decode, spelt out: numbers as float, NaN and null as None, lists as lists."""
    if not raw:
        return None
    val = ValueProto.FromString(raw)
    kind = val.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    if kind in NUMBERS:
        x = float(getattr(val, kind))
        return None if math.isnan(x) else x
    if kind.endswith("_list_val"):
        return list(getattr(val, kind).val)
    return getattr(val, kind)


def _scalar(field: str, value) -> bytes:
    return ValueProto(**{field: value}).SerializeToString()


def _list(field: str, values) -> bytes:
    v = ValueProto()
    getattr(v, field).val.extend(values)
    return v.SerializeToString()


rng = np.random.default_rng(11)
CASES = [
    *(_scalar("int64_val", x) for x in (0, 1, -1, 127, 128, 2**40, -(2**63), 2**63 - 1)),
    *(_scalar("int32_val", x) for x in (0, 5, -5, 2**31 - 1, -(2**31))),
    *(_scalar("double_val", x) for x in (0.0, -0.0, 1e-300, -2.5, float("inf"), float("nan"),
                                          *rng.normal(size=20))),
    *(_scalar("float_val", x) for x in (0.0, 1.5, -3.25e7, float("nan"), 0.1)),
    *(_scalar("string_val", x) for x in ("", "a", "ünï-42", "x" * 300)),
    *(_scalar("bytes_val", x) for x in (b"", b"\x00\xff", b"y" * 200)),
    *(_scalar("bool_val", x) for x in (True, False)),
    *(_scalar("unix_timestamp_val", x) for x in (0, 1_764_000_000, -5)),
    ValueProto(null_val=0).SerializeToString(),
    ValueProto().SerializeToString(),
    *(_list("int64_list_val", x) for x in ([], [1], [101, 7, 101], [2**40, -1],
                                           rng.integers(0, 10**6, 50).tolist())),
    *(_list("int32_list_val", x) for x in ([], [-7, 3])),
    *(_list("double_list_val", x) for x in ([], [0.1, 0.2], [float("inf"), float("nan")],
                                            rng.normal(size=40).tolist())),
    *(_list("float_list_val", x) for x in ([], [0.5, -1.25, 0.1])),
    *(_list("string_list_val", x) for x in ([], ["a"], ["", "ünï", "b" * 200])),
    *(_list("bool_list_val", x) for x in ([], [True, False])),
    *(_list("bytes_list_val", x) for x in ([b""], [b"\x01\x02"])),
    *(_list("unix_timestamp_list_val", x) for x in ([], [1, 2])),
]


def _same(a, b) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b and str(a) == str(b)  # -0.0 keeps its sign


@pytest.mark.parametrize("raw", CASES, ids=lambda r: r.hex()[:24])
def test_wire_decode_equals_protobuf_decode(raw: bytes):
    assert _same(decode_value(raw), reference(raw))


def test_missing_and_unusual_shapes_fall_back_to_protobuf():
    assert decode_value(None) is None and decode_value(b"") is None
    # The same double written twice (protobuf keeps the last), and an unpacked double list.
    twice = _scalar("double_val", 1.0) + _scalar("double_val", 2.0)
    assert decode_value(twice) == reference(twice) == 2.0
    unpacked = b"\x7a\x12" + b"\x09" + np.float64(1.5).tobytes() + b"\x09" + \
        np.float64(-2.0).tobytes()
    assert decode_value(unpacked) == reference(unpacked) == [1.5, -2.0]
    # A map value (a type the fast path does not read) decodes as protobuf decodes it.
    v = ValueProto()
    v.map_val.val["k"].int64_val = 3
    raw = v.SerializeToString()
    assert decode_value(raw) == reference(raw)


def test_the_memo_gives_the_decoded_value_and_a_fresh_list_each_time():
    memo = Memo()
    for raw in [*CASES, *CASES]:  # the second pass answers from the memo
        assert _same(memo.value(raw), reference(raw))
    raw = _list("int64_list_val", [1, 2])
    first = memo.value(raw)
    first.append(3)  # a caller that changes its list changes no one else's
    assert memo.value(raw) == [1, 2]
    ts = Timestamp(seconds=1_764_000_000, nanos=500_000_000).SerializeToString()
    assert memo.timestamp(ts) == memo.timestamp(ts) == 1_764_000_000.5
    assert memo.timestamp(None) is None and memo.timestamp(b"") is None
