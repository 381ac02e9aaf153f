"""Feast's stored `ValueProto` bytes as Python values, without building a protobuf message.

A recommendation request reads ~25 values for each of 240 candidates: building a `ValueProto`
per value (parse, `WhichOneof`, `getattr`) cost more than the Redis round trip. A `Value` holds
one field of a oneof, so its bytes are one tag and one payload; the types the kit's views use
(`rtml.features.specs`: int64, float64, string, bool and their lists) are read here straight from
the wire. Integer lists (varints: protobuf's C parser is faster than a Python loop) and anything
else (another field, an unpacked list, trailing bytes) go to protobuf,
so a value is never misread: `tests/platform/unit/test_wire.py` compares both on every type.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from google.protobuf.timestamp_pb2 import Timestamp

_NUMBERS = frozenset({"int64_val", "int32_val", "double_val", "float_val"})
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")
_TWO_63 = 1 << 63
_TWO_64 = 1 << 64


class _Fallback(Exception):
    """The bytes are not in the shape the fast path reads: protobuf decodes them."""


def decode_proto(raw: bytes) -> Any:
    """The reference decode (protobuf): numbers as float, NaN and null as None, lists as lists."""
    val = ValueProto.FromString(raw)
    kind = val.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    if kind in _NUMBERS:
        number = float(getattr(val, kind))
        return None if math.isnan(number) else number
    if kind.endswith("_list_val"):
        return list(getattr(val, kind).val)
    return getattr(val, kind)


def _varint(raw: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = raw[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Fallback


def _signed(v: int) -> int:
    return v - _TWO_64 if v >= _TWO_63 else v


def _payload(raw: bytes, pos: int) -> bytes:
    n, pos = _varint(raw, pos)
    if pos + n != len(raw):
        raise _Fallback
    return raw[pos:]


def _number(value: float) -> float | None:
    return None if value != value else value


def _double(raw: bytes, pos: int) -> Any:
    if len(raw) != pos + 8:
        raise _Fallback
    return _number(_DOUBLE.unpack_from(raw, pos)[0])


def _float(raw: bytes, pos: int) -> Any:
    if len(raw) != pos + 4:
        raise _Fallback
    return _number(_FLOAT.unpack_from(raw, pos)[0])


def _int(raw: bytes, pos: int) -> Any:
    v, end = _varint(raw, pos)
    if end != len(raw):
        raise _Fallback
    return float(_signed(v))


def _bool(raw: bytes, pos: int) -> Any:
    v, end = _varint(raw, pos)
    if end != len(raw):
        raise _Fallback
    return v != 0


def _timestamp(raw: bytes, pos: int) -> Any:
    v, end = _varint(raw, pos)
    if end != len(raw):
        raise _Fallback
    return _signed(v)


def _string(raw: bytes, pos: int) -> Any:
    return _payload(raw, pos).decode()


def _bytes(raw: bytes, pos: int) -> Any:
    return _payload(raw, pos)


def _packed(raw: bytes, pos: int) -> bytes:
    """A numeric list message's one packed field 1 (`[]` when the list is empty)."""
    inner = _payload(raw, pos)
    if not inner:
        return b""
    if inner[0] != 0x0A:
        raise _Fallback
    return _payload(inner, 1)


def _doubles(raw: bytes, pos: int) -> Any:
    data = _packed(raw, pos)
    if len(data) % 8:
        raise _Fallback
    return list(struct.unpack(f"<{len(data) // 8}d", data))


def _floats(raw: bytes, pos: int) -> Any:
    data = _packed(raw, pos)
    if len(data) % 4:
        raise _Fallback
    return list(struct.unpack(f"<{len(data) // 4}f", data))


def _strings(raw: bytes, pos: int) -> Any:
    inner = _payload(raw, pos)
    out, i, n = [], 0, len(inner)
    while i < n:
        if inner[i] != 0x0A:
            raise _Fallback
        size, i = _varint(inner, i + 1)
        if i + size > n:
            raise _Fallback
        out.append(inner[i:i + size].decode())
        i += size
    return out


# First byte(s) of a Value's bytes (field number << 3 | wire type) -> (tag length, reader).
_ONE_BYTE: dict[int, Callable[[bytes, int], Any]] = {
    0x12: _string,      # 2 string_val
    0x0A: _bytes,       # 1 bytes_val
    0x18: _int,         # 3 int32_val
    0x20: _int,         # 4 int64_val
    0x29: _double,      # 5 double_val
    0x35: _float,       # 6 float_val
    0x38: _bool,        # 7 bool_val
    0x40: _timestamp,   # 8 unix_timestamp_val
    0x62: _strings,     # 12 string_list_val
    0x7A: _doubles,     # 15 double_list_val
}
_TWO_BYTES: dict[int, Callable[[bytes, int], Any]] = {
    0x82: _floats,      # 16 float_list_val
}


def decode_value(raw: bytes | None) -> Any:
    """A stored value as Python: numbers as float (what a model reads), a list as a list.

    None for a missing value, a null or a NaN, so the caller falls back to the declared default.
    Equal to `decode_proto` on every input (the fast path only reads shapes it knows).
    """
    if not raw:
        return None
    tag = raw[0]
    try:
        read = _ONE_BYTE.get(tag)
        if read is not None:
            return read(raw, 1)
        if len(raw) > 1 and raw[1] == 0x01:
            if tag == 0x98:  # 19 null_val
                return None
            read = _TWO_BYTES.get(tag)
            if read is not None:
                return read(raw, 2)
    except (_Fallback, IndexError, UnicodeDecodeError):
        pass
    return decode_proto(raw)


_UNSEEN = object()
MEMO_MAX = 50_000


class Memo:
    """Decoded scalars by their stored bytes: a request's ~2,500 values are a few hundred distinct.

    Counts, prices, categories and timestamps repeat across items and requests, and a dict
    lookup costs a tenth of a decode. Lists are decoded each time (the caller may keep and
    change them). Cleared when it holds `MEMO_MAX` values, so memory stays bounded.
    """

    def __init__(self) -> None:
        """An empty memo."""
        self.values: dict[bytes | None, Any] = {}
        self.times: dict[bytes | None, float | None] = {}

    def value(self, raw: bytes | None) -> Any:
        """`decode_value(raw)`, remembered unless it is a list."""
        got = self.values.get(raw, _UNSEEN)
        if got is _UNSEEN:
            got = decode_value(raw)
            if not isinstance(got, list):
                if len(self.values) >= MEMO_MAX:
                    self.values.clear()
                self.values[raw] = got
        return got

    def timestamp(self, raw: bytes | None) -> float | None:
        """A view's `_ts:` field (a protobuf `Timestamp`) as unix seconds; None when absent."""
        got = self.times.get(raw, _UNSEEN)
        if got is _UNSEEN:
            got = None
            if raw:
                ts = Timestamp.FromString(raw)
                got = ts.seconds + ts.nanos / 1e9
            if len(self.times) >= MEMO_MAX:
                self.times.clear()
            self.times[raw] = got
        return got  # type: ignore[return-value]
