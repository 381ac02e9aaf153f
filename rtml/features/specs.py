"""One declaration per feature view, from which every copy of its contract is generated.

A view's features were restated in four places (the Feast schema, the offline parquet schema, the
serving defaults, the push source's join key) and drifted apart silently when one was edited. A
`ViewSpec` states them once; `feast_fields`, `parquet_schema`, `serving_defaults` and
`push_join_keys` derive each copy, and a scenario's tests check that what is deployed equals what
its specs generate.

Types are named by a small vocabulary (`DTYPES`) that maps onto Feast, Arrow and a Python default:
scalars int64 / float64 / string / bool and lists of int64 / float64 / string.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from feast import Field
from feast.types import Array, Bool, Float64, Int64, String
from feast.value_type import ValueType

from rtml.features.windows import WindowSpec

# name -> (Feast type, Arrow type, Feast entity value type or None, serving default)
DTYPES: dict[str, tuple[Any, pa.DataType, ValueType | None, Any]] = {
    "int64": (Int64, pa.int64(), ValueType.INT64, 0.0),
    "float64": (Float64, pa.float64(), None, 0.0),
    "string": (String, pa.string(), ValueType.STRING, ""),
    "bool": (Bool, pa.bool_(), None, False),
    "int64_list": (Array(Int64), pa.list_(pa.int64()), None, ()),
    "float64_list": (Array(Float64), pa.list_(pa.float64()), None, ()),
    "string_list": (Array(String), pa.list_(pa.string()), None, ()),
}
TIMESTAMP = pa.timestamp("ns", tz="UTC")


@dataclass(frozen=True)
class ViewSpec:
    """A feature view's contract: name, entity, typed features, and where its rows come from.

    `features`: name -> dtype (a key of `DTYPES`), in the view's order. `push_source`: the push
    source a stream writes through (None for a batch view). `offline_file`: the parquet file of
    its offline source; `created`: whether that file carries a `created` column. `defaults`:
    serving values for an entity the store does not know, where the dtype's zero is wrong.
    """

    name: str
    join_key: str
    features: Mapping[str, str]
    key_dtype: str = "int64"
    push_source: str | None = None
    offline_file: str | None = None
    created: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, dtype in [(self.join_key, self.key_dtype), *self.features.items()]:
            if dtype not in DTYPES:
                raise ValueError(f"{self.name}.{name}: unknown dtype {dtype!r}, "
                                 f"not in {list(DTYPES)}")


def window_view(name: str, join_key: str, windows: WindowSpec, **kw: Any) -> ViewSpec:
    """The view a `WindowSpec` fills: its features in order, a count int64, the rest float64."""
    return ViewSpec(name=name, join_key=join_key,
                    features={f: windows.dtype(f) for f in windows.features}, **kw)


def feast_fields(view: ViewSpec) -> list[Field]:
    """The `schema=` of the Feast FeatureView (features only; Feast adds the entity column)."""
    return [Field(name=name, dtype=DTYPES[dtype][0]) for name, dtype in view.features.items()]


def key_value_type(view: ViewSpec) -> ValueType:
    """The Feast `ValueType` of the view's entity (its `Entity(value_type=...)`)."""
    value_type = DTYPES[view.key_dtype][2]
    if value_type is None:
        raise ValueError(f"{view.name}: {view.key_dtype} cannot be a join key")
    return value_type


def parquet_schema(view: ViewSpec) -> pa.Schema:
    """The offline file's schema: join key, event_timestamp (UTC ns), [created], features."""
    head = [(view.join_key, DTYPES[view.key_dtype][1]), ("event_timestamp", TIMESTAMP)]
    if view.created:
        head.append(("created", TIMESTAMP))
    return pa.schema(head + [(n, DTYPES[d][1]) for n, d in view.features.items()])


def write_empty_sources(views: Iterable[ViewSpec], features_dir: Path) -> list[Path]:
    """An empty, typed offline file for each view that has none yet (never overwrites one).

    `feast materialize` reads every registered view's source, other scenarios' and not yet built
    ones too, and fails on a missing file.
    """
    features_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for view in views:
        assert view.offline_file is not None, view.name
        path = features_dir / view.offline_file
        if not path.exists():
            pq.write_table(parquet_schema(view).empty_table(), path)
            written.append(path)
    return written


def serving_defaults(views: Iterable[ViewSpec]) -> dict[str, Any]:
    """What serving uses for an entity a view does not know: the dtype's zero unless overridden."""
    out: dict[str, Any] = {}
    for view in views:
        for name, dtype in view.features.items():
            if name in out:
                raise ValueError(f"feature {name!r} is declared by two views")
            out[name] = view.defaults.get(name, DTYPES[dtype][3])
    return out


def push_join_keys(views: Iterable[ViewSpec]) -> dict[str, str]:
    """Push source -> the join key its rows carry, for every streamed view."""
    return {v.push_source: v.join_key for v in views if v.push_source is not None}
