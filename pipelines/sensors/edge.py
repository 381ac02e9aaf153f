"""Edge mode: the detector in one local process at the machine, with no server at run time.

    rtml edge run --model PATH --input - --alerts alerts.jsonl --outbox outbox.sqlite \
        [--central redis://plant-redis:6379] [--follow]

Readings arrive as JSON lines (`{"machine_id", "channel", "timestamp", "value"}`) or CSV with
those columns, on stdin or from a file (`--follow` keeps reading what is appended, like
`tail -f`). Each reading goes through the same parsing, feature and detector code and the same
model file as the stream flow, then the same latches; an alert is committed to the SQLite outbox,
appended to the JSON-lines sink and handed to a background forwarder that publishes it to the
central `rtml:alerts` whenever that answers (exactly once by id: `pipelines.sensors.outbox`).

What this imports is what the edge install carries: numpy and the detector's runtime, a Redis
client for forwarding. Never Feast, BentoML or Bytewax (a test runs it and checks `sys.modules`).
A bad line is counted and described on stderr (the first few), never fatal.
"""

from __future__ import annotations

import csv
import json
import logging
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pipelines.sensors.alerts import QUIET_S, REARM_AFTER, Latches
from pipelines.sensors.outbox import Forwarder, Outbox
from pipelines.sensors.streams import ALERT_STREAM

log = logging.getLogger(__name__)

FOLLOW_POLL_S = 0.05
SHOW_BAD = 5  # bad lines described on stderr; the rest are only counted
LATENCY_SAMPLES = 100_000


class BadLine(ValueError):
    """A line that is not a reading; the message says why."""


@dataclass
class EdgeStats:
    """What a run did (printed at the end; `--json` prints it as one object)."""

    readings: int = 0
    bad: int = 0
    alerts: int = 0
    forwarded: int = 0
    pending: int = 0
    seconds: float = 0.0
    process_us: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))

    def summary(self) -> dict[str, Any]:
        """Counts and per-reading processing percentiles (µs: parse, detector, latch, sink)."""
        lat = sorted(self.process_us)

        def pct(q: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else None

        return {"readings": self.readings, "bad": self.bad, "alerts": self.alerts,
                "forwarded": self.forwarded, "pending": self.pending,
                "seconds": round(self.seconds, 3), "process_p50_us": pct(0.5),
                "process_p99_us": pct(0.99), "process_max_us": lat[-1] if lat else None}


def lines(source: str, *, follow: bool, stdin: IO[str] | None = None,
          stopped: Callable[[], bool] = lambda: False) -> Iterator[str]:
    """Complete lines of stdin (`-`) or a file; with `follow`, wait for appended lines."""
    if source == "-":
        yield from (stdin or sys.stdin)
        return
    with open(source, encoding="utf-8", newline="") as f:
        partial = ""
        while not stopped():
            chunk = f.readline()
            if chunk.endswith("\n"):
                yield partial + chunk
                partial = ""
            elif chunk:  # a line still being written: keep it until its newline arrives
                partial += chunk
            elif follow:
                time.sleep(FOLLOW_POLL_S)
            else:
                if partial:
                    yield partial
                return


def records(text_lines: Iterable[str]) -> Iterator[dict[str, Any] | BadLine]:
    """Mappings from JSON lines or CSV (told apart by the first non-blank line)."""
    header: list[str] | None = None
    kind = None
    for number, line in enumerate(text_lines, start=1):
        if not line.strip():
            continue
        if kind is None:
            kind = "json" if line.lstrip().startswith("{") else "csv"
            if kind == "csv":
                header = [h.strip() for h in next(csv.reader([line]))]
                continue
        if kind == "json":
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield BadLine(f"line {number}: not JSON ({exc.msg})")
                continue
            yield obj if isinstance(obj, dict) else BadLine(f"line {number}: not a JSON object")
        else:
            assert header is not None
            row = next(csv.reader([line]))
            if len(row) != len(header):
                yield BadLine(f"line {number}: {len(row)} columns, the header has {len(header)}")
                continue
            yield dict(zip(header, row, strict=True))


def run(*, detector: Any, parse: Callable[[dict[str, Any]], Any], source: str,
        alerts_path: Path, outbox_path: Path, central: Callable[[], Any] | None,
        follow: bool = False, stream: str = ALERT_STREAM, rearm_after: int = REARM_AFTER,
        quiet_s: float = QUIET_S, stdin: IO[str] | None = None,
        err: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> EdgeStats:
    """Score every reading of `source`; alerts to `alerts_path`, the outbox and `central`.

    `parse(mapping) -> Reading` raises `ValueError` for a bad reading; `central()` returns a
    Redis client for the central stream (None: keep alerts local). Returns at the end of the
    input (never, with `follow`, until SIGTERM/SIGINT).
    """
    stats = EdgeStats()
    latches = Latches(rearm_after=rearm_after, quiet_s=quiet_s)
    outbox = Outbox(outbox_path)
    forwarder = (Forwarder(outbox_path=outbox_path, connect=central, stream=stream).start()
                 if central is not None else None)
    stop = {"now": False, "waiting": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True
        # A blocking read of stdin only ends by an exception; anywhere else the loop sees the
        # flag after the reading in hand (never between the outbox and the JSON-lines sink).
        if source == "-" and stop["waiting"]:
            raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    alerts_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        with open(alerts_path, "a", encoding="utf-8") as sink:
            items = records(lines(source, follow=follow, stdin=stdin,
                                  stopped=lambda: stop["now"]))
            while not stop["now"]:
                stop["waiting"] = True
                try:
                    item = next(items, None)
                finally:
                    stop["waiting"] = False
                if item is None:
                    break
                start = time.perf_counter()
                try:
                    if isinstance(item, BadLine):
                        raise item
                    reading = parse(item)
                except ValueError as exc:
                    stats.bad += 1
                    if stats.bad <= SHOW_BAD:
                        err(f"bad reading skipped: {exc}")
                    continue
                verdict = detector.update(reading)
                alert = latches.judge(reading, verdict)
                if alert is not None and outbox.add(alert):
                    sink.write(json.dumps(alert.record(), sort_keys=True) + "\n")
                    sink.flush()
                    stats.alerts += 1
                    if forwarder is not None:
                        forwarder.kick()
                stats.readings += 1
                stats.process_us.append((time.perf_counter() - start) * 1e6)
    except KeyboardInterrupt:
        pass
    finally:
        stats.seconds = time.perf_counter() - t0
        for s, handler in previous.items():
            signal.signal(s, handler)
        if forwarder is not None:
            forwarder.stop()
            stats.forwarded = forwarder.forwarded
        stats.pending = outbox.counts()["pending"]
        outbox.close()
    if stats.bad > SHOW_BAD:
        err(f"... {stats.bad - SHOW_BAD} more bad readings skipped")
    return stats


def forward(*, outbox_path: Path, client: Any, stream: str = ALERT_STREAM) -> dict[str, int]:
    """Drain an outbox to the central stream once (`rtml edge forward`)."""
    outbox = Outbox(outbox_path)
    try:
        forwarded = outbox.drain(client, stream=stream)
        return {"forwarded": forwarded, **outbox.counts()}
    finally:
        outbox.close()
