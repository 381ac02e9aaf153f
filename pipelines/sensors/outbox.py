"""The edge's durable outbox: alerts kept in SQLite until the central stream has each one, once.

Why an outbox: at the machine the network comes and goes, and an alert raised while it is gone
must reach `rtml:alerts` later, neither lost nor twice. The alert is committed to SQLite first
(synchronous=FULL: it survives a power cut, not only a `kill -9`); a forwarder then publishes the
pending ones with `alerts.publish` and marks them forwarded. The crash window between the two
steps (published centrally, not yet marked here) is closed by the central side: `publish` writes
an id at most once (`SET NX` + `XADD` in one Lua script), so forwarding the same alert again after
a crash only marks it. Exactly once = at-least-once delivery + an idempotent receiver keyed by id.

Only the standard library and a Redis client: the edge install carries nothing else for this.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.sensors.alerts import Alert, publish
from pipelines.sensors.streams import ALERT_STREAM

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    alert_id     TEXT PRIMARY KEY,
    record       TEXT NOT NULL,
    created_at   REAL NOT NULL,
    forwarded_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (created_at) WHERE forwarded_at IS NULL;
"""


class Outbox:
    """One SQLite file; one instance per thread (SQLite connections are not shared)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)

    def add(self, alert: Alert) -> bool:
        """Commit an alert; False when its id is already there (a replayed reading)."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO outbox (alert_id, record, created_at) VALUES (?, ?, ?)",
            (alert.alert_id, json.dumps(alert.record(), sort_keys=True), time.time()))
        return cur.rowcount == 1

    def pending(self, limit: int = 100) -> list[Alert]:
        """The oldest alerts not yet forwarded."""
        rows = self.db.execute(
            "SELECT record FROM outbox WHERE forwarded_at IS NULL ORDER BY created_at, alert_id "
            "LIMIT ?", (limit,)).fetchall()
        return [Alert.from_record(json.loads(r)) for (r,) in rows]

    def mark_forwarded(self, alert_id: str) -> None:
        """The central stream has this alert."""
        self.db.execute("UPDATE outbox SET forwarded_at = ? WHERE alert_id = ?",
                        (time.time(), alert_id))

    def counts(self) -> dict[str, int]:
        """`{"alerts": all, "pending": not yet forwarded}`."""
        total, pending = self.db.execute(
            "SELECT COUNT(*), COUNT(*) - COUNT(forwarded_at) FROM outbox").fetchone()
        return {"alerts": int(total), "pending": int(pending)}

    def forward(self, client: Any, *, stream: str = ALERT_STREAM, limit: int = 100) -> int:
        """Publish pending alerts (oldest first) and mark each; the number handled.

        Connection errors propagate after the alerts handled so far are marked: what is left
        stays pending for the next attempt.
        """
        done = 0
        for alert in self.pending(limit):
            publish(client, alert, stream=stream)
            self.mark_forwarded(alert.alert_id)
            done += 1
        return done

    def drain(self, client: Any, *, stream: str = ALERT_STREAM) -> int:
        """Forward until nothing is pending; the number handled."""
        total = 0
        while n := self.forward(client, stream=stream):
            total += n
        return total

    def close(self) -> None:
        """Close the connection (every committed alert is already on disk)."""
        self.db.close()


class Forwarder:
    """A background thread that drains the outbox to the central Redis whenever it answers.

    The reading loop never waits on the network: it commits an alert and calls `kick()`. While
    the central Redis is unreachable the thread backs off (capped) and says so once; when it
    answers again the backlog goes out oldest first.
    """

    def __init__(self, *, outbox_path: str | Path, connect: Callable[[], Any],
                 stream: str = ALERT_STREAM, min_wait_s: float = 0.5,
                 max_wait_s: float = 30.0) -> None:
        self.outbox_path, self.connect, self.stream = Path(outbox_path), connect, stream
        self.min_wait_s, self.max_wait_s = min_wait_s, max_wait_s
        self.forwarded = 0
        self.down = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-forwarder", daemon=True)

    def start(self) -> Forwarder:
        """Start the thread (it forwards any backlog at once)."""
        self._thread.start()
        return self

    def kick(self) -> None:
        """A new alert is in the outbox: forward now unless backing off."""
        self._wake.set()

    def stop(self, *, final_attempt_s: float = 5.0) -> None:
        """One last attempt (bounded), then stop; pending alerts stay in the outbox."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=final_attempt_s)

    def _run(self) -> None:
        outbox = Outbox(self.outbox_path)
        client, wait = None, self.min_wait_s
        try:
            while True:
                try:
                    client = client or self.connect()
                    self.forwarded += outbox.drain(client, stream=self.stream)
                    if self.down:
                        log.warning("central Redis is back: outbox forwarded")
                    self.down, wait = False, self.min_wait_s
                except Exception as exc:  # unreachable, timed out, refused: keep the alerts
                    if not self.down:
                        log.warning("central Redis unreachable (%s): alerts stay in the outbox "
                                    "(%s) and are forwarded when it answers", exc,
                                    self.outbox_path)
                    self.down, client = True, None
                    wait = min(max(wait * 2, self.min_wait_s), self.max_wait_s)
                if self._stop.is_set():
                    return
                # Up: sleep until a new alert (or stop). Down: sit out the back-off (new alerts
                # wait in the outbox). Either way stop() wakes it for one last attempt.
                if self.down:
                    self._stop.wait(timeout=wait)
                else:
                    self._wake.wait()
                    self._wake.clear()
        finally:
            outbox.close()
