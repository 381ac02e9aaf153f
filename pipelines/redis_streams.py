"""A Bytewax input over partitioned Redis Streams that never blocks its worker.

The public `bytewax-redis` 0.1 source reads with `XREAD ... BLOCK 0`, which parks the worker until
an event arrives: no snapshots, no timers, no shutdown while a stream is quiet. Here each poll is a
plain `XREAD COUNT n` (no BLOCK); an empty poll returns at once and `next_awake` tells Bytewax when
to ask again. Redis going away is one warning line and a capped back-off, not a crashed flow. The
snapshot is the last delivered entry id, so a restarted flow resumes right after it (events between
the last snapshot and a crash are read again: downstream state ignores repeated transaction ids).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import redis
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from redis.backoff import NoBackoff
from redis.retry import Retry

from rtml.events import DEAD_LETTER_STREAM

log = logging.getLogger(__name__)
Entry = tuple[str, dict[str, str]]
MAX_BACKOFF = timedelta(seconds=1)


class _StreamPartition(StatefulSourcePartition[Entry, str]):
    def __init__(self, *, host: str, port: int, key: str, last_id: str, batch_size: int,
                 idle_wait: timedelta) -> None:
        self.client = redis.Redis(host=host, port=port, socket_timeout=1.0,
                                  socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0),
                                  decode_responses=True)
        self.key, self.last_id = key, last_id
        self.batch_size, self.idle_wait = batch_size, idle_wait
        self._awake: datetime | None = None
        self._backoff = idle_wait
        self._down = False

    def next_batch(self) -> list[Entry]:
        try:
            reply = self.client.xread({self.key: self.last_id}, count=self.batch_size)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if not self._down:
                log.warning("stream %s: Redis unavailable (%s); retrying", self.key, exc)
                self._down = True
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            self._awake = datetime.now(UTC) + self._backoff
            return []
        if self._down:
            log.warning("stream %s: Redis back, resuming after %s", self.key, self.last_id)
            self._down, self._backoff = False, self.idle_wait
        entries = reply[0][1] if reply else []
        if not entries:
            self._awake = datetime.now(UTC) + self.idle_wait
            return []
        self._awake = None
        self.last_id = entries[-1][0]
        return [(entry_id, fields) for entry_id, fields in entries]

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> str:
        return self.last_id

    def close(self) -> None:
        self.client.close()


class RedisStreamSource(FixedPartitionedSource[Entry, str]):
    """One partition per stream key; items are `(entry_id, fields)`."""

    def __init__(self, *, host: str, port: int, streams: list[str], batch_size: int = 1000,
                 idle_wait: timedelta = timedelta(milliseconds=10), start_id: str = "0") -> None:
        self.host, self.port, self.streams = host, port, streams
        self.batch_size, self.idle_wait, self.start_id = batch_size, idle_wait, start_id

    def list_parts(self) -> list[str]:
        """The stream keys."""
        return list(self.streams)

    def build_part(self, step_id: str, for_part: str, resume_state: str | None
                   ) -> _StreamPartition:
        """A reader of one stream, resuming after the snapshotted id."""
        return _StreamPartition(host=self.host, port=self.port, key=for_part,
                                last_id=resume_state or self.start_id,
                                batch_size=self.batch_size, idle_wait=self.idle_wait)


def dead_letter(client: redis.Redis, fields: dict[str, str], reason: str, *,
                stream: str = DEAD_LETTER_STREAM, maxlen: int = 100_000) -> None:
    """Keep a malformed event with why it was refused (capped stream)."""
    entry = {str(k): str(v) for k, v in fields.items()}
    entry.update(reason=reason, failed_at=datetime.now(UTC).isoformat())
    client.xadd(stream, entry, maxlen=maxlen, approximate=True)
