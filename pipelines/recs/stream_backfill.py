"""The streamed views' offline files: every item's stock as of a cut-off, and empty typed files.

`feast materialize` reads every view's batch source (push views included), so these files must
exist for any scenario's materialize to run (`ensure_sources`). `write_stock` writes each item's
level at `until` (catalogue capacity, minus orders, plus restocks up to then), one row per item
stamped `until`: the nightly load then gives the flow and the service the level to start from,
and the flow's own rows (stamped later) take over. Session and trending start empty: a session
or an hour older than the nightly cut-off is over by the time anyone reads it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feature_repo.recs.stream_specs import ITEM_STOCK, STREAMED
from rtml.features.specs import parquet_schema, write_empty_sources


def ensure_sources(features_dir: Path) -> list[Path]:
    """Empty typed files for the streamed views that have none yet."""
    return write_empty_sources(STREAMED, features_dir)


def stock_levels(items: pd.DataFrame, events: pd.DataFrame, until: datetime) -> pd.Series:
    """Item id -> units in stock at `until` (orders never take a level below zero)."""
    level = dict(zip(items["item_id"].astype(np.int64).tolist(),
                     items["capacity"].astype(np.int64).tolist(), strict=True))
    moves = events[events["type"].isin(["order", "restock"])
                   & (events["ts"] <= pd.Timestamp(until))]
    for item, kind, quantity in zip(moves["item_id"].astype(np.int64).tolist(),
                                    moves["type"].tolist(),
                                    moves["quantity"].astype(np.int64).tolist(), strict=True):
        before = level.get(item, 0)
        level[item] = before + quantity if kind == "restock" else max(0, before - quantity)
    return pd.Series(level, name="stock_level").rename_axis("item_id")


def write_stock(items: pd.DataFrame, events: pd.DataFrame, until: datetime,
                features_dir: Path) -> Path:
    """`item_stock.parquet`: one row per item, its level at `until`, stamped `until`."""
    levels = stock_levels(items, events.sort_values("ts", kind="stable"), until)
    schema = parquet_schema(ITEM_STOCK)
    frame = pd.DataFrame({"item_id": levels.index.to_numpy(np.int64),
                          "event_timestamp": pd.Timestamp(until),
                          "stock_level": levels.to_numpy(np.int64)})
    features_dir.mkdir(parents=True, exist_ok=True)
    path = features_dir / str(ITEM_STOCK.offline_file)
    pq.write_table(pa.Table.from_pandas(frame[schema.names], schema=schema,
                                        preserve_index=False), path)
    ensure_sources(features_dir)
    return path


def write_stock_at_end(raw_dir: Path, features_dir: Path) -> Path:
    """`write_stock` as of the newest event of `raw_dir`'s history (the nightly build's call)."""
    events = pd.read_parquet(raw_dir / "events.parquet")
    until = pd.Timestamp(events["ts"].max()).to_pydatetime()
    return write_stock(pd.read_parquet(raw_dir / "items.parquet"), events, until, features_dir)
