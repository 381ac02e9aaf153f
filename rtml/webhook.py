"""POST JSON records to a webhook from a background thread, so the caller never waits on it.

A flow that scores readings must not stall because an operator's webhook is slow or down: `send`
only puts the record on a bounded queue and returns; one daemon thread POSTs each record in turn.
A failed POST (refused, timed out, a non-2xx answer) is logged and dropped, and when the queue is
full the new record is dropped and counted: the webhook is a notification, the durable record of
an alert is the stream it was published to. Standard library only (the edge may carry it).
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import urllib.error
import urllib.request
from typing import Any

log = logging.getLogger(__name__)

QUEUE_MAX = 10_000
_STOP = object()


class Webhook:
    """A non-blocking sender of JSON bodies to one URL; `sent`, `failed`, `dropped` count them."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, queue_max: int = QUEUE_MAX) -> None:
        self.url, self.timeout_s = url, timeout_s
        self.sent = self.failed = self.dropped = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_max)
        self._thread = threading.Thread(target=self._run, name="rtml-webhook", daemon=True)
        self._thread.start()

    def send(self, record: dict[str, Any]) -> bool:
        """Queue `record` for POSTing; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("webhook %s: queue full, %d records dropped", self.url, self.dropped)
            return False
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """POST what is queued (for at most `timeout_s`), then stop the thread."""
        try:
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:
            return
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            record = self._queue.get()
            if record is _STOP:
                return
            self._post(record)

    def _post(self, record: dict[str, Any]) -> None:
        body = json.dumps(_finite(record), default=str, allow_nan=False).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                answer.read()
            self.sent += 1
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.failed += 1
            log.warning("webhook %s failed (%s); the record stays only where it was published",
                        self.url, exc)


def _finite(value: Any) -> Any:
    """NaN and infinities as null: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
