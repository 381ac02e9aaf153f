"""A stream stopped on purpose says so: the clean-stop record that monitoring reads.

The online freshness check fails once no streamed value is newer than its limit: the writer has
died, and a service still running would read windows that no longer decay. Stopping the flow
deliberately (the demo stops its stream together with its service) is not that, so whoever stops
a flow cleanly records when and who (`rtml:stream:stopped` in the online store's Redis), and
whoever starts one clears it. A flow killed without that record still fails the check, and a
record older than the newest streamed value (a flow ran again after it) excuses nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

STOP_KEY = "rtml:stream:stopped"


@dataclass(frozen=True)
class CleanStop:
    """When (epoch seconds) and by what a stream was stopped on purpose."""

    at_s: float
    by: str


def record_clean_stop(client: Any, *, by: str, at_s: float | None = None) -> CleanStop:
    """Say that the stream was stopped on purpose (after its process has exited)."""
    stop = CleanStop(at_s=time.time() if at_s is None else at_s, by=by)
    client.hset(STOP_KEY, mapping={"at_s": repr(stop.at_s), "by": stop.by})
    return stop


def clear_clean_stop(client: Any) -> None:
    """A flow is starting: from now on a silent stream is a failure again."""
    client.delete(STOP_KEY)


def clean_stop(client: Any) -> CleanStop | None:
    """The recorded clean stop, if any (an unreadable record counts as none)."""
    raw = client.hgetall(STOP_KEY)
    fields = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes)
                                                            else v) for k, v in raw.items()}
    try:
        return CleanStop(at_s=float(fields["at_s"]), by=fields.get("by", "?"))
    except (KeyError, ValueError):
        return None


def excuses(stop: CleanStop | None, newest_value_s: float | None) -> bool:
    """Whether `stop` explains the stream's silence: it came after the newest streamed value.

    `newest_value_s`: the event timestamp (epoch seconds) of the newest streamed value online.
    """
    return stop is not None and newest_value_s is not None and stop.at_s >= newest_value_s
