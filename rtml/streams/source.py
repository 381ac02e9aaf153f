"""A Bytewax input over partitioned Redis Streams that never blocks its worker.

The public `bytewax-redis` 0.1 source reads with `XREAD ... BLOCK 0`, which parks the worker until
an event arrives: no snapshots, no timers, no shutdown while a stream is quiet. Here each poll is a
plain `XREAD COUNT n` (no BLOCK); an empty poll returns at once and `next_awake` tells Bytewax when
to ask again. Redis going away is one warning line and a capped back-off, not a crashed flow. The
snapshot is the last delivered entry id, so a restarted flow resumes right after it (events between
the last snapshot and a crash are read again: downstream state ignores repeated transaction ids).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from rtml.redis import connect
from rtml.settings import Settings

log = logging.getLogger(__name__)

Entry = tuple[str, dict[str, str]]
"""One stream entry: `(entry_id, fields)`, all text."""

MAX_BACKOFF = timedelta(seconds=1)
MIN_BACKOFF = timedelta(milliseconds=10)
SOCKET_TIMEOUT_S = 1.0


def _client(address: str, settings: Settings | None) -> Any:
    # The factory's client never retries inside redis-py (its default retry-with-backoff would
    # stall the worker for seconds on every poll while Redis is down). We back off through
    # `next_awake` instead; the pool reconnects by itself once Redis answers again.
    return connect(settings, role="flow", address=address, timeout_s=SOCKET_TIMEOUT_S,
                   decode_responses=True, encoding_errors="replace")


class RedisStreamPartition(StatefulSourcePartition[Entry, str]):
    """Reads one stream key from just after `last_id`; the snapshot is the last delivered id."""

    def __init__(self, *, address: str, settings: Settings | None = None, key: str,
                 last_id: str, batch_size: int,
                 idle_wait: timedelta) -> None:
        self.client = _client(address, settings)
        self.key, self.last_id = key, last_id
        self.batch_size, self.idle_wait = batch_size, idle_wait
        self._awake: datetime | None = None
        self._backoff = max(idle_wait, MIN_BACKOFF)
        self._down = False

    def _resolve_dollar(self) -> None:
        # `$` means "after the newest entry"; without BLOCK, XREAD with `$` never returns
        # anything, so pin it to the concrete newest id (or 0-0 for a missing/empty stream).
        newest = self.client.xrevrange(self.key, count=1)
        self.last_id = newest[0][0] if newest else "0-0"

    def next_batch(self) -> list[Entry]:
        """Up to `batch_size` entries after the last delivered id; `[]` at once when none."""
        try:
            if self.last_id == "$":
                self._resolve_dollar()
            # Deliberately no BLOCK (bytewax-redis 0.1 uses BLOCK 0 and freezes the worker).
            reply = self.client.xread({self.key: self.last_id}, count=self.batch_size)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if not self._down:
                log.warning("stream %s: Redis unavailable (%s); backing off and retrying",
                            self.key, exc)
                self._down = True
            else:
                self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            self._awake = datetime.now(UTC) + self._backoff
            return []
        if self._down:
            log.warning("stream %s: Redis is back; resuming after %s", self.key, self.last_id)
            self._down, self._backoff = False, max(self.idle_wait, MIN_BACKOFF)
        entries = reply[0][1] if reply else []
        if not entries:
            self._awake = datetime.now(UTC) + self.idle_wait
            return []
        self._awake = None
        self.last_id = entries[-1][0]
        return [(entry_id, fields) for entry_id, fields in entries]

    def next_awake(self) -> datetime | None:
        """None right after data (poll again now); later after an empty poll or an error."""
        return self._awake

    def snapshot(self) -> str:
        """The id of the last delivered entry: a resumed partition reads after it."""
        return self.last_id

    def close(self) -> None:
        """Release the connection pool."""
        self.client.close()


class RedisStreamSource(FixedPartitionedSource[Entry, str]):
    """One partition per stream key; items are `(entry_id, fields)`.

    `start_id` is where a partition without resume state starts: `"0"` for the whole stream,
    `"$"` for only entries added after it starts.
    """

    def __init__(self, *, address: str, settings: Settings | None = None, streams: list[str],
                 batch_size: int = 1000,
                 idle_wait: timedelta = timedelta(milliseconds=10), start_id: str = "0") -> None:
        self.address, self.settings, self.streams = address, settings, list(streams)
        self.batch_size, self.idle_wait, self.start_id = batch_size, idle_wait, start_id

    def list_parts(self) -> list[str]:
        """The stream keys."""
        return list(self.streams)

    def build_part(self, step_id: str, for_part: str, resume_state: str | None
                   ) -> RedisStreamPartition:
        """A reader of one stream, resuming after the snapshotted id."""
        return RedisStreamPartition(address=self.address, settings=self.settings, key=for_part,
                                    last_id=resume_state or self.start_id,
                                    batch_size=self.batch_size, idle_wait=self.idle_wait)


# Atomically: remember the source entry (for `ttl` seconds) and XADD its dead letter, unless it
# was remembered already. Both keys share a hash slot (`{stream}` tag), so this runs on a cluster.
_DEAD_LETTER_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
return false
"""
DEAD_LETTER_MEMORY_S = 7 * 24 * 3600


def dead_letter(client: redis.Redis, fields: dict, reason: str, *,
                stream: str, maxlen: int = 100_000,
                source_id: str | None = None) -> bool:
    """XADD a refused event's original fields plus `reason` and `failed_at` (capped stream).

    With `source_id` (the event's stream entry id) the dead letter is written once: a replay of
    the same entry after a restart finds it remembered (for `DEAD_LETTER_MEMORY_S`) and writes
    nothing. The memory key also covers the fields, since entry ids repeat across partitions.
    Returns whether a dead letter was written.
    """
    entry = {_text(k): _text(v) for k, v in fields.items()}
    entry.update(reason=reason, failed_at=datetime.now(UTC).isoformat())
    if source_id is None:
        client.xadd(stream, entry, maxlen=maxlen, approximate=True)
        return True
    digest = hashlib.blake2b(repr(sorted(entry.items() - {("failed_at", entry["failed_at"])}))
                             .encode(), digest_size=8).hexdigest()
    entry["source_id"] = source_id
    seen = f"{{{stream}}}:seen:{source_id}:{digest}"
    flat = [x for kv in entry.items() for x in kv]
    return client.eval(_DEAD_LETTER_ONCE, 2, stream, seen, DEAD_LETTER_MEMORY_S, maxlen,
                       *flat) is not None


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
