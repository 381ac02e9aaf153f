"""Sensors scoring for systems that pull: `bentoml serve bentos.sensors.service:SensorsService`.

`POST /score` takes a window of readings (`{"readings": [{machine_id, channel, timestamp, value,
reading_id?}, ...]}`, in time order per channel) and answers one verdict per reading, computed by
the same parser, rolling features and `Detector` as the stream flow and the edge. A window is
scored on its own: each request starts every channel fresh, so a window shorter than the model's
warm-up answers `warming_up: true` rather than guessing. No online-store read is needed (the
window carries its own history), so of the kit's serving core this uses the parts that apply:
the model loaded once with a `/readyz` that says why not, load shedding (503 + `Retry-After`),
the body limit, and `Server-Timing`. A reading that cannot be scored is a 400 naming it
(`readings[3].value: not finite`); a detector that fails answers `fallback: true` with the reason
and no verdicts, never a 500.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import bentoml
from pydantic import BaseModel, Field

from pipelines.sensors.detect import Detector, load_detector, newest_model
from pipelines.sensors.readings import BadReading, parse_reading
from rtml.serving.asgi import NOT_READY, format_server_timing, install
from rtml.serving.core import service_options
from rtml.settings import Settings

SERVICE = "sensors"
SCORING_PATHS = ("/score",)
EXAMPLE_INPUT = {"readings": [
    {"machine_id": "m-001", "channel": "temperature", "timestamp": 1764590400.0 + i,
     "value": 61.5 + 0.1 * (i % 3), "reading_id": f"m-001-t-{i}"} for i in range(5)]}
_settings = Settings(scenario="sensors")


class Verdict(BaseModel):
    """The detector's answer for one reading of the window."""

    reading_id: str
    machine_id: str
    channel: str
    ts: float
    score: float
    anomalous: bool
    severity: str
    drivers: dict[str, float] = Field(default_factory=dict)
    warming_up: bool


class Scores(BaseModel):
    """The answer for one window."""

    verdicts: list[Verdict]
    fallback: bool = False
    fallback_reason: str | None = None
    model_version: str | None = None


def score_window(detector: Detector, rows: list[dict[str, Any]]) -> list[Verdict]:
    """Parse every reading (a `BadReading` names `readings[i].<field>`), then score in order."""
    parsed = []
    for i, row in enumerate(rows):
        try:
            parsed.append(parse_reading(row))
        except BadReading as exc:
            raise BadReading(f"readings[{i}].{exc.field}", exc.reason) from None
    detector.reset()  # a window is scored on its own: no state from another request
    out = []
    for r in parsed:
        v = detector.update(r)
        out.append(Verdict(reading_id=r.reading_id, machine_id=r.machine_id, channel=r.channel,
                           ts=r.ts, score=round(v.score, 6), anomalous=v.anomalous,
                           severity=v.severity, drivers=v.drivers, warming_up=v.warming_up))
    return out


@bentoml.service(**service_options(_settings, name=SERVICE, paths=SCORING_PATHS))
class SensorsService:
    """Scores windows of sensor readings with the trained detector; see the module docstring."""

    def __init__(self) -> None:
        self.settings = _settings
        self.detector: Detector | None = None
        self.version: str | None = None
        # The detector keeps per-channel state while it scores a window: one window at a time
        # (BentoML runs a sync API in a thread pool).
        self.lock = threading.Lock()
        try:
            path = newest_model(_settings.artifacts_dir / "sensors")
            self.detector = load_detector(path)
            self.version = path.name
        except (FileNotFoundError, ValueError) as exc:
            NOT_READY[SERVICE] = f"no sensors model ({exc})"

    def __is_ready__(self) -> bool:
        return SERVICE not in NOT_READY

    @bentoml.api(route="/score")
    def score(self, readings: list[dict[str, Any]], ctx: bentoml.Context) -> Scores:
        """Verdicts for a window of readings (time order per channel)."""
        if len(readings) > self.settings.max_batch_rows:
            raise bentoml.exceptions.InvalidArgument(
                f"readings: at most {self.settings.max_batch_rows} per request "
                f"(RTML_SENSORS__MAX_BATCH_ROWS), got {len(readings)}")
        t0 = time.perf_counter()
        if self.detector is None:
            return Scores(verdicts=[], fallback=True, fallback_reason="model_unavailable")
        try:
            with self.lock:
                verdicts = score_window(self.detector, readings)
        except BadReading as exc:
            raise bentoml.exceptions.InvalidArgument(str(exc)) from None
        except Exception as exc:  # a detector failure is a fallback, not a 500
            return Scores(verdicts=[], fallback=True, model_version=self.version,
                          fallback_reason=f"model_error: {type(exc).__name__}: {exc}"[:200])
        finally:
            ctx.response.headers["Server-Timing"] = format_server_timing(
                {"model": (time.perf_counter() - t0) * 1000}, {})
        return Scores(verdicts=verdicts, model_version=self.version)


install(SensorsService, service=SERVICE, paths=SCORING_PATHS,
        max_inflight=_settings.max_inflight, max_body_bytes=_settings.max_body_bytes)
