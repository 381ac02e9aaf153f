"""A window spec: which statistics of which event values over which windows, and the tiles.

Separate from the state (`rtml.features.windows`, whose docstring has the semantics) so that a
scenario's definitions (its Feast views, offline schemas, serving defaults) can be generated from
its specs without the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

TILE_SECONDS = 10
_TILE = timedelta(seconds=TILE_SECONDS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Statistic = Literal["count", "sum", "mean", "std", "min", "max", "last"]
STATISTICS: tuple[str, ...] = ("count", "sum", "mean", "std", "min", "max", "last")
# Accumulators per value, in slot order; "last" takes two slots (event time, value).
ACCUMULATORS = ("sum", "m2", "min", "max", "last")
NEEDS = {"count": (), "sum": ("sum",), "mean": ("sum",), "std": ("sum", "m2"),
          "min": ("min",), "max": ("max",), "last": ("last",)}


@dataclass(frozen=True)
class WindowSpec:
    """Windows (label -> seconds, a multiple of the tile) and features.

    `features`: name -> (statistic, window label) or (statistic, window label, value name); the
    value may be left out when `values` names exactly one. `values`: the event values read.
    """

    windows: dict[str, int]
    features: dict[str, tuple[str, ...]]
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for label, seconds in self.windows.items():
            if seconds <= 0 or seconds % TILE_SECONDS:
                raise ValueError(f"window {label!r}: {seconds} s is not a multiple of "
                                 f"{TILE_SECONDS} s")
        for name in self.features:
            stat, label, value = self.feature(name)
            if stat not in STATISTICS:
                raise ValueError(f"feature {name!r}: unknown statistic {stat!r}")
            if label not in self.windows:
                raise ValueError(f"feature {name!r}: unknown window {label!r}")
            if stat != "count" and value not in self.values:
                raise ValueError(f"feature {name!r}: value {value!r} not in {self.values}")

    def tiles(self, label: str) -> int:
        """Number of tiles window `label` spans."""
        return self.windows[label] // TILE_SECONDS

    def feature(self, name: str) -> tuple[str, str, str | None]:
        """(statistic, window label, value name or None for a count) of feature `name`."""
        stat, label, *rest = self.features[name]
        if rest:
            return stat, label, rest[0]
        return stat, label, (self.values[0] if len(self.values) == 1 and stat != "count" else None)

    def dtype(self, name: str) -> Literal["int64", "float64"]:
        """A count is an integer; every other statistic a float."""
        return "int64" if self.features[name][0] == "count" else "float64"

    def layout(self) -> dict[tuple[str, str], int]:
        """(value, accumulator) -> offset in a tile's accumulator list: only what is needed."""
        needed = {(value, acc) for name in self.features
                  for stat, _, value in [self.feature(name)] for acc in NEEDS[stat]}
        out: dict[tuple[str, str], int] = {}
        at = 0
        for value in self.values:
            for acc in ACCUMULATORS:
                if (value, acc) in needed:
                    out[(value, acc)] = at
                    at += 2 if acc == "last" else 1
        return out


def tile_of(t: datetime) -> int:
    """The tile index of a timezone-aware time (exact integer arithmetic)."""
    return (t - _EPOCH) // _TILE


def tile_start(tile: int) -> datetime:
    """The UTC time a tile starts."""
    return _EPOCH + tile * _TILE
