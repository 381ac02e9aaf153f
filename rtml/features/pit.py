"""Point-in-time training frames of one FeatureService, equal to what serving reads.

Scenario-neutral: the caller names its request id column. A streamed view (tagged
`refresh: stream`) is joined on its own, over a backfill that holds a row at every event and every
window decay (`rtml.features.backfill`), so "the latest row at or before t" is what the stream
served at t; every other view goes through one `get_historical_features` call per chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from rtml.features.online import in_repo


def point_in_time_features(store: Any, service_name: str, entity_df: pd.DataFrame, *,
                           id_column: str, chunk_days: int = 7) -> pd.DataFrame:
    """The service's features for each request as serving would read them when it is scored.

    `entity_df`: one row per request (`id_column`, a unique id; `event_timestamp`; the join keys;
    the request fields on-demand views read; anything else to carry along); returned with the
    features, sorted by `id_column`. For frames too large to hold twice in memory, write them
    chunk by chunk with `write_point_in_time`.
    """
    parts = list(point_in_time_chunks(store, service_name, entity_df, id_column=id_column,
                                      chunk_days=chunk_days))
    frame = pd.concat(parts, ignore_index=True).sort_values(id_column).reset_index(drop=True)
    if len(frame) != len(entity_df):
        raise RuntimeError(f"Feast returned {len(frame)} rows for {len(entity_df)} requests")
    return frame


def write_point_in_time(store: Any, service_name: str, entity_df: pd.DataFrame, out_dir: Path,
                        *, id_column: str, chunk_days: int = 7,
                        on_chunk: Callable[[pd.DataFrame], None] | None = None) -> list[Path]:
    """`point_in_time_features` written as a Parquet dataset, one file per chunk, in `out_dir`.

    Only one chunk's joined frame is in memory at a time (the in-memory version holds every
    chunk and then their concatenation: 11.7 GB peak for 10 M rows). Rows are in chunk (time)
    order, sorted by `id_column` within each file; `pd.read_parquet(out_dir)` reads them back.
    `on_chunk` sees each chunk before it is written (e.g. to keep running statistics).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    files, rows = [], 0
    for i, part in enumerate(point_in_time_chunks(store, service_name, entity_df,
                                                  id_column=id_column, chunk_days=chunk_days)):
        if on_chunk is not None:
            on_chunk(part)
        files.append(out_dir / f"part-{i:05d}.parquet")
        part.to_parquet(files[-1], index=False)
        rows += len(part)
        del part
    if rows != len(entity_df):
        raise RuntimeError(f"Feast returned {rows} rows for {len(entity_df)} requests")
    return files


def point_in_time_chunks(store: Any, service_name: str, entity_df: pd.DataFrame, *,
                         id_column: str, chunk_days: int = 7) -> Iterator[pd.DataFrame]:
    """The joined frame chunk by chunk (`chunk_days` of request time each, in time order)."""
    entity_df = entity_df.copy()
    if store.config.offline_store.type == "file":
        # Feast's file store keeps one entity row per (join keys, timestamp): two requests of one
        # key in the same second would lose one. Nanosecond offsets make every timestamp unique;
        # the nightly snapshots (at midnight) they are joined to cannot change. (The DuckDB store
        # numbers its entity rows and keeps them all; it also refuses sub-microsecond times.)
        entity_df["event_timestamp"] += pd.to_timedelta(
            entity_df.groupby("event_timestamp").cumcount(), unit="ns")
    else:
        entity_df["event_timestamp"] = entity_df["event_timestamp"].dt.floor("us")
    # Features as of just before the request: when it is scored online, the stream has not yet
    # counted it, so its own streamed row (stamped at its event time) must not join offline.
    entity_df["event_timestamp"] -= pd.Timedelta(microseconds=1)
    service = store.get_feature_service(service_name)
    streamed = {v.name for v in store.list_feature_views() if v.tags.get("refresh") == "stream"}
    base = [f"{p.name}:{f.name}" for p in service.feature_view_projections
            if p.name not in streamed for f in p.features]
    fresh = {p.name: [f.name for f in p.features] for p in service.feature_view_projections
             if p.name in streamed}
    # Feast's file store joins every entity row with every feature row of its key inside the
    # frame's time range: one 90-day frame joined ~100 M candidate rows (and ran out of memory
    # with the per-event streamed views). Week-sized frames keep that bounded.
    weeks = (entity_df["event_timestamp"] - pd.Timestamp(0, tz="UTC")).dt.days // chunk_days
    for _, chunk in entity_df.groupby(weeks, sort=True):
        # The repo root is the working directory only around Feast's calls, not while the
        # caller holds a chunk (its relative paths stay its own).
        with in_repo(store):
            part = _join(store, chunk, base, fresh, id_column)
        yield part.sort_values(id_column).reset_index(drop=True)


def _join(store: Any, chunk: pd.DataFrame, base: list[str], fresh: dict[str, list[str]],
          id_column: str) -> pd.DataFrame:
    """One chunk: the batch views in one call, each streamed view in its own."""
    part = store.get_historical_features(entity_df=chunk, features=base).to_df()
    for view, names in fresh.items():
        # The backfill writes a row at every event and every decay, so "the latest row at or
        # before t" is the windows as of t. Feast's file store drops entity rows with no
        # streamed row inside the view's TTL: a key quiet for that long has empty windows
        # (its last row, a decay to zero, fell out of the TTL), which is what the stream
        # serves too.
        got = store.get_historical_features(
            entity_df=chunk, features=[f"{view}:{n}" for n in names]).to_df()
        part = part.merge(got[[id_column, *names]], on=id_column, how="left")
        part[names] = part[names].fillna(0)
    return part
