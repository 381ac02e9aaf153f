"""Sensor readings -> rolling features -> detector -> alerts, all inside one Bytewax flow.

    python -m bytewax.run "pipelines.sensors.flow:get_flow()" -r .rtml/recovery -s 30 -b 0
    rtml stream run --scenario sensors      # the same, with the recovery store initialised

Every reading is scored in the flow by the same `Detector` the edge and the service run, so the
alert path has no network hop: `XADD` -> this worker -> `rtml:alerts`. Readings are partitioned
by machine (`pipelines.sensors.streams`); the flow keys by machine so one worker owns a machine's
detector state and latches. Per machine channel, the rolling features reach Feast's
`machine_stats` view at most once per `push_every_s` (the newest row; a timer flushes a held row
when the channel goes quiet), since dashboards and training need fresh rows, not every one.

Malformed readings (a missing field, NaN, a non-number) go to `rtml:sensors:dead` with the
reason, and the flow keeps running. A machine never seen before starts its own warm-up.

Recovery: a restart resumes each stream after its last snapshot and replays what followed; an
alert raised again from a replayed reading has the same id and is not published twice
(`alerts.publish`). The latches are snapshotted; the detector's per-channel history is not (it
is ~100 kB a channel, and the snapshot would stall the flow): after a restart each channel warms
up again (`Params.warmup_seconds`) before it can alert.
"""

from __future__ import annotations

import gc
import math
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulLogic
from bytewax.outputs import DynamicSink, Sink, StatelessSinkPartition

from feature_repo.sensors.specs import MACHINE_STATS, PUSH_JOIN_KEYS, machine_channel
from pipelines.sensors.alerts import QUIET_S, REARM_AFTER, Alert, ChannelLatch, Latches, publish
from pipelines.sensors.readings import BadReading, Reading, parse_reading
from pipelines.sensors.streams import ALERT_STREAM, DEAD_LETTER_STREAM, READINGS_PREFIX, stream_key
from rtml.redis import connect, until_answers
from rtml.settings import Settings
from rtml.streams.source import dead_letter
from rtml.webhook import Webhook

PUSH_EVERY_S = 1.0
ONE_MICROSECOND = timedelta(microseconds=1)
FEATURES = tuple(MACHINE_STATS.features)

# (push source, entity id, feature values, event time, XADD time in ms): the kit push sink's row.
Row = tuple[str, str, dict[str, float], datetime, int]
BadEntry = tuple[dict[str, str], str, str]  # (fields, reason, source entry id)
Out = tuple[str, Any]  # ("alert", Alert) | ("features", Row)


def xadd_ms(entry_id: str) -> int:
    """The `XADD` wall-clock time (ms) encoded in a Redis stream entry id."""
    return int(entry_id.split("-", 1)[0])


def parse(entry: tuple[str, dict[str, str]]) -> tuple[Reading, int] | BadEntry:
    """`(reading, xadd_ms)` for a good entry, `(fields, reason, entry id)` for a bad one.

    A reading sent without its own id is named by its stream entry id (unique in its
    partition, stable across a replay), so its alert id is stable too.
    """
    entry_id, fields = entry
    try:
        reading = parse_reading(fields)
    except BadReading as exc:
        return fields, str(exc), entry_id
    if not reading.reading_id:
        reading = Reading(machine_id=reading.machine_id, channel=reading.channel, ts=reading.ts,
                          value=reading.value, reading_id=f"{reading.machine_id}@{entry_id}")
    return reading, xadd_ms(entry_id)


# (latches by channel, last pushed row stamp by channel): what a machine's snapshot holds.
Snapshot = tuple[dict[str, dict[str, Any]], dict[str, datetime]]


class MachineLogic(StatefulLogic[tuple[Reading, int], Out, Snapshot]):
    """One machine: score each reading, latch alerts, throttle feature rows per channel."""

    def __init__(self, *, detector: Any, latches: Latches, push_every_s: float,
                 resume: Snapshot | None) -> None:
        self.detector, self.latches = detector, latches
        self.push_every = timedelta(seconds=push_every_s)
        self.machine: str | None = None
        self.last_stamp: dict[str, datetime] = {}  # per channel: the last pushed event time
        self.pushed_at: dict[str, datetime] = {}  # per channel: wall time of the last push
        self.held: dict[str, Row] = {}  # per channel: the newest row not yet pushed
        if resume is not None:
            channels, self.last_stamp = resume
            self._resume_channels = channels
        else:
            self._resume_channels = {}

    def _restore(self, machine: str) -> None:
        for channel, latch in self._resume_channels.items():
            self.latches.channels[(machine, channel)] = ChannelLatch(**latch)
        self._resume_channels = {}

    def on_item(self, value: tuple[Reading, int]) -> tuple[list[Out], bool]:
        reading, xadd = value
        if self.machine is None:
            self.machine = reading.machine_id
            self._restore(reading.machine_id)
        verdict = self.detector.update(reading)
        out: list[Out] = []
        alert = self.latches.judge(reading, verdict)
        if alert is not None:
            out.append(("alert", alert))
        row = self._row(reading, verdict.features, xadd)
        now = datetime.now(UTC)
        due = self.pushed_at.get(reading.channel)
        if due is None or now - due >= self.push_every:
            self.pushed_at[reading.channel] = now
            self.held.pop(reading.channel, None)
            out.append(("features", row))
        else:
            self.held[reading.channel] = row
        return out, StatefulLogic.RETAIN

    def _row(self, reading: Reading, features: dict[str, float], xadd: int) -> Row:
        at = datetime.fromtimestamp(reading.ts, UTC)
        last = self.last_stamp.get(reading.channel)
        if last is not None and at <= last:  # Feast keeps only strictly newer rows
            at = last + ONE_MICROSECOND
        self.last_stamp[reading.channel] = at
        values = {name: float(features.get(name, math.nan)) for name in FEATURES}
        return (MACHINE_STATS.push_source or "", machine_channel(reading.machine_id,
                                                                 reading.channel),
                values, at, xadd)

    def on_notify(self) -> tuple[list[Out], bool]:
        now = datetime.now(UTC)
        out: list[Out] = []
        for channel in [c for c, _ in self.held.items()
                        if now - self.pushed_at[c] >= self.push_every]:
            out.append(("features", self.held.pop(channel)))
            self.pushed_at[channel] = now
        return out, StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if not self.held:
            return None
        return min(self.pushed_at[c] for c in self.held) + self.push_every

    def snapshot(self) -> Snapshot:
        mine = self.latches.of_machine(self.machine) if self.machine else self._resume_channels
        return ({ch: asdict(latch) if isinstance(latch, ChannelLatch) else latch
                 for ch, latch in mine.items()}, dict(self.last_stamp))


class _AlertPartition(StatelessSinkPartition[Alert]):
    def __init__(self, settings: Settings, stream: str) -> None:
        self.client = connect(settings, role="flow", decode_responses=True)
        self.stream = stream
        url = settings.alert_webhook_url
        self.webhook = Webhook(url) if url else None

    def write_batch(self, items: list[Alert]) -> None:
        for alert in items:
            new = until_answers(lambda a=alert: publish(self.client, a, stream=self.stream),
                                "publish alert")
            if new and self.webhook is not None:
                self.webhook.send(alert.record())

    def close(self) -> None:
        if self.webhook is not None:
            self.webhook.close()


class AlertSink(DynamicSink[Alert]):
    """Alerts to the central alert stream, each id once (a replay publishes nothing new).

    With `RTML_SENSORS__ALERT_WEBHOOK_URL` set, each newly published alert is also POSTed there
    as JSON (`Alert.record()`), from a background thread: a webhook that is slow or down is
    logged and never stalls the flow.
    """

    def __init__(self, *, settings: Settings, stream: str = ALERT_STREAM) -> None:
        self.settings, self.stream = settings, stream

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _AlertPartition:
        """One client per worker."""
        return _AlertPartition(self.settings, self.stream)


class _DeadLetterPartition(StatelessSinkPartition[BadEntry]):
    def __init__(self, settings: Settings, stream: str) -> None:
        self.client = connect(settings, role="flow", decode_responses=True)
        self.stream = stream

    def write_batch(self, items: list[BadEntry]) -> None:
        for fields, reason, entry_id in items:
            until_answers(
                lambda f=fields, r=reason, i=entry_id: dead_letter(
                    self.client, f, r, stream=self.stream, source_id=i),
                "dead letter")


class DeadLetterSink(DynamicSink[BadEntry]):
    """Malformed readings, with the reason, to the dead-letter stream, once per source entry."""

    def __init__(self, *, settings: Settings, stream: str = DEAD_LETTER_STREAM) -> None:
        self.settings, self.stream = settings, stream

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _DeadLetterPartition:
        """One client per worker."""
        return _DeadLetterPartition(self.settings, self.stream)


def build_flow(source: Source, *, detector: Any, features: Sink[Row], alerts: Sink[Alert],
               dead_letters: Sink[BadEntry], push_every_s: float = PUSH_EVERY_S,
               rearm_after: int = REARM_AFTER, quiet_s: float = QUIET_S) -> Dataflow:
    """The dataflow, top to bottom; shapes after each step in the comments.

    `detector` is shared by every machine of this process (it keeps per-channel state itself);
    keying by machine sends a machine's readings to one worker.
    """
    latches = Latches(rearm_after=rearm_after, quiet_s=quiet_s)

    def build(resume: Snapshot | None) -> MachineLogic:
        return MachineLogic(detector=detector, latches=latches, push_every_s=push_every_s,
                            resume=resume)

    flow = Dataflow("sensors_detect")
    entries = op.input("read_readings", flow, source)  # (entry_id, {field: str})
    parsed = op.map("parse_readings", entries, parse)  # (Reading, xadd_ms) | (fields, reason, id)
    split = op.branch("split_bad_readings", parsed, lambda x: isinstance(x[0], Reading))
    op.output("write_dead_letters", split.falses, dead_letters)
    by_machine = op.key_on("key_by_machine", split.trues, lambda r: r[0].machine_id)
    scored = op.stateful("score_readings", by_machine, build)  # (machine, ("alert"|"features", x))
    outs = op.key_rm("drop_keys", scored)  # ("alert", Alert) | ("features", Row)
    kinds = op.branch("split_alerts", outs, lambda o: o[0] == "alert")
    op.output("publish_alerts", op.map("alert_of", kinds.trues, lambda o: o[1]), alerts)
    op.output("push_to_feast", op.map("row_of", kinds.falses, lambda o: o[1]), features)
    return flow


def tune_gc() -> None:
    """Collect cycles rarely: per-channel state is long-lived and holds no cycles (see fraud)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def get_flow() -> Dataflow:
    """The production wiring from settings: Redis Streams in, alerts and Feast rows out.

    The detector is the newest model file under `<repo>/artifacts/sensors/` (`rtml train
    sensors`); with none there the flow refuses to start, saying so.
    """
    from pipelines.sensors.detect import load_detector
    from rtml.features.online import load_store
    from rtml.features.push import FeastPushSink
    from rtml.streams.source import RedisStreamSource

    s = Settings(scenario="sensors")
    detector = load_detector(root=s.artifacts_dir / "sensors")
    source = RedisStreamSource(address=s.redis_address, settings=s,
                               streams=[stream_key(i, READINGS_PREFIX)
                                        for i in range(s.stream_partitions)])
    sink = FeastPushSink(store_factory=lambda: load_store(s),
                         redis_factory=lambda: connect(s, role="flow"),
                         join_keys=PUSH_JOIN_KEYS, writer=s.stream_writer)
    flow = build_flow(source, detector=detector, features=sink,
                      alerts=AlertSink(settings=s), dead_letters=DeadLetterSink(settings=s))
    tune_gc()
    return flow
