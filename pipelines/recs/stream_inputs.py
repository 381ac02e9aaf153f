"""What the recommendation flow looks up besides events: an item's category and its starting stock.

Both come from the catalogue the simulator (or a shop's nightly export) writes to
`data/recs/items.parquet` (`item_id`, `category`, `capacity`). An item's stock starts, the first
time the flow sees it, at the level the online store holds (the nightly load of the stock
backfill), else at its catalogue capacity; from then on the flow's own state moves it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from rtml.redis import connect
from rtml.settings import Settings

STOCK_SERVICE = "recs_stock_v1"
UNKNOWN_CATEGORY = -1


def items_path(settings: Settings) -> Path:
    """The catalogue file."""
    return settings.data_dir / "recs" / "items.parquet"


def _column(settings: Settings, name: str) -> dict[int, int]:
    path = items_path(settings)
    if not path.exists():
        return {}
    frame = pd.read_parquet(path, columns=["item_id", name])
    return dict(zip(frame["item_id"].astype(np.int64).tolist(),
                    frame[name].astype(np.int64).tolist(), strict=True))


def category_lookup(settings: Settings) -> Callable[[int], int]:
    """Item id -> category (`UNKNOWN_CATEGORY` for an item the catalogue lacks)."""
    categories = _column(settings, "category")
    return lambda item: categories.get(item, UNKNOWN_CATEGORY)


def initial_stock_lookup(settings: Settings) -> Callable[[int], int]:
    """Item id -> the level its stock starts from in the flow (see the module docstring)."""
    from rtml.features.online import OnlineReader, load_store

    capacity = _column(settings, "capacity")
    client = connect(settings, role="flow")
    reader = OnlineReader(store=load_store(settings), service_name=STOCK_SERVICE,
                          defaults={"stock_level": 0.0})

    def initial(item: int) -> int:
        (row,) = reader.read_sync(client, [{"item_id": item}])
        if row.missing_views:
            return capacity.get(item, 0)
        return int(row.values["stock_level"])

    return initial
