"""The prediction log: every decision, off the request path, to a capped Redis stream, then parquet.

The service appends to an in-memory buffer (bounded; drops are counted, never block a request); a
background task flushes it with pipelined `XADD ... MAXLEN ~`. `drain` moves the stream into
`data/predictions/date=YYYY-MM-DD/*.parquet` for monitoring and retraining, acknowledging only what
it has written (a consumer group), so a crashed drain re-reads rather than loses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import redis

log = logging.getLogger(__name__)

GROUP = "drain"
FLUSH_CHUNK = 500  # entries per pipelined write: well inside one socket timeout


def _encode(entry: Mapping[str, Any]) -> dict[str, str]:
    return {
        k: json.dumps(v, separators=(",", ":")) if isinstance(v, dict | list) else str(v)
        for k, v in entry.items()
        if v is not None
    }


class PredictionLog:
    """Buffer decisions in memory and flush them to a capped stream from a background task."""

    def __init__(self, *, client: Any, stream: str, maxlen: int, flush_ms: float,
                 buffer_max: int = 100_000):
        self.client = client
        self.stream = stream
        self.maxlen = maxlen
        self.flush_s = flush_ms / 1000
        self._buffer: deque[dict[str, str]] = deque(maxlen=buffer_max)
        self._task: asyncio.Task[None] | None = None
        # One flush at a time: two would send the same entries and then pop more than they sent.
        self._flushing = asyncio.Lock()
        self.dropped = 0  # entries lost because the buffer overflowed (Redis down for long)
        self.written = 0

    def append(self, entry: Mapping[str, Any]) -> None:
        """Queue one decision; never blocks, never raises."""
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(_encode(entry))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def flush(self) -> int:
        """Write what is buffered now; on failure keep it for the next try."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> int:
        # In chunks: one pipeline of the whole buffer (40 k entries after an outage) outlives the
        # service's 0.5 s socket timeout, fails after Redis has taken part of it, and every retry
        # writes that part again -- forever, once the buffer is big enough. A chunk that times out
        # is the most a retry can write twice.
        sent = 0
        while self._buffer:
            chunk = [self._buffer[i] for i in range(min(FLUSH_CHUNK, len(self._buffer)))]
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    for fields in chunk:
                        pipe.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
                    await pipe.execute()
            except (redis.RedisError, OSError) as exc:
                log.warning("prediction log: %d entries wait for Redis (%s)",
                            len(self._buffer), exc)
                break
            for _ in chunk:
                self._buffer.popleft()
            self.written += len(chunk)
            sent += len(chunk)
        return sent

    async def _run(self) -> None:
        while self._buffer:
            await asyncio.sleep(self.flush_s)
            await self.flush()


def drain(client: redis.Redis, *, stream: str, out_dir: Path, batch: int = 50_000,
          consumer: str = "rtml-drain") -> int:
    """Move everything in the stream to partitioned parquet; returns rows written."""
    try:
        client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    total = 0
    # Pending first (written by a drain that died before acknowledging), then new entries.
    for start in ("0", ">"):
        while True:
            reply = client.xreadgroup(GROUP, consumer, {stream: start}, count=batch)
            read = reply[0][1] if reply else []
            entries = [(i, f) for i, f in read if f]
            if not entries:
                break
            total += _write_parquet(entries, out_dir)
            # Acknowledge and delete together (MULTI/EXEC): a drain killed between the two left
            # entries acknowledged but still in the stream, where no later drain reads them.
            with client.pipeline(transaction=True) as pipe:
                pipe.xack(stream, GROUP, *[i for i, _ in read])
                pipe.xdel(stream, *[i for i, _ in entries])
                pipe.execute()
    return total


def _write_parquet(entries: list[tuple[bytes, dict[bytes, bytes]]], out_dir: Path) -> int:
    rows = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
    df = pd.DataFrame(rows)
    for col in ("score", "features_ms", "model_ms", "total_ms", "amount"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    if "fallback" in df:
        df["fallback"] = df["fallback"] == "True"
    df["logged_at"] = pd.to_datetime(df["logged_at"], utc=True, format="ISO8601")
    # Named by the batch's first stream id: a drain that died before acknowledging re-reads the
    # same pending batch and overwrites the same file, never adds a second copy. Written under a
    # dot-name and renamed: readers (pyarrow skips dot-files) never see a half-written file.
    first = entries[0][0].decode().replace("-", "_")
    for date, part in df.groupby(df["logged_at"].dt.strftime("%Y-%m-%d")):
        folder = out_dir / f"date={date}"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".part-{first}.parquet.tmp"
        part.to_parquet(tmp, index=False)
        os.replace(tmp, folder / f"part-{first}.parquet")
    return len(df)
