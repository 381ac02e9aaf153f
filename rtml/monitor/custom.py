"""A monitoring run made of a scenario's own sections, for scenarios with no prediction log.

`run_monitor` (rtml.monitor.run) reads the logged predictions of a served model and their
delayed labels. A scenario that scores in a stream (sensors: every reading scored in the flow,
alerts published) has no such log: what it watches are its streams. It registers a
`SectionsMonitor` instead, whose `sections` callable returns the kit's `Section`s; this runner
writes them exactly like `run_monitor` does (`reports/<model>/<stamp>/summary.json`,
`latest.json`, `metrics.prom`, the dashboard page), so `rtml monitor run|schedule`, the
notification and the dashboard treat both alike.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rtml.metrics import write_monitor_gauges
from rtml.monitor.dashboard import write_index
from rtml.monitor.reports import Section
from rtml.settings import Settings

SUMMARY_SCHEMA = 1


@dataclass(frozen=True)
class Observed:
    """What the sections looked at: how many items (`unit`), and a note on any sampling."""

    total: int
    sampled: bool = False
    note: str = "no sampling"


# sections(settings, *, out_dir, now, since, redis_client) -> (sections, what they observed)
Sections = Callable[..., tuple[list[Section], Observed]]


@dataclass(frozen=True, kw_only=True)
class SectionsMonitor:
    """A scenario's monitor as its own sections (see the module docstring)."""

    name: str  # reports/<name>/
    sections: Sections
    unit: str = "readings"  # what `Observed.total` counts, in messages and on the dashboard
    feature_service: str = ""


def run_sections(settings: Settings, spec: SectionsMonitor, *, now: datetime | None = None,
                 redis_client: Any | None = None) -> dict[str, Any]:
    """Run the spec's sections once; write the files; return the summary (pass | fail)."""
    t0 = time.perf_counter()
    now = now or datetime.now(UTC)
    out_dir = settings.reports_dir / spec.name / now.strftime("%Y%m%dT%H%M%SZ")
    out_dir.mkdir(parents=True, exist_ok=True)
    since = now - timedelta(days=settings.monitor_window_days)
    sections, seen = spec.sections(settings, out_dir=out_dir, now=now, since=since,
                                   redis_client=redis_client)
    checks = [c for s in sections for c in s.checks]
    failed = [f"{c['section']}: {c['name']}" for c in checks if c["status"] == "fail"]
    summary: dict[str, Any] = {
        "schema": SUMMARY_SCHEMA, "model": spec.name, "model_versions": [],
        "reference_model": None, "feature_service": spec.feature_service,
        "run_at": now.isoformat(timespec="seconds"),
        "status": "fail" if failed else "pass", "failed_checks": failed,
        "window": {"since": since.isoformat(timespec="seconds"),
                   "until": now.isoformat(timespec="seconds")},
        "unit": spec.unit,
        "predictions": {"total": seen.total, "sampled": seen.sampled,
                        "sample_rows": seen.total, "note": seen.note},
        "labels": {}, "checks": checks,
        "figures": {s.name: s.figures for s in sections},
        "reports": {s.name: s.files for s in sections},
        "seconds": round(time.perf_counter() - t0, 2),
    }
    text = json.dumps(summary, indent=2, default=str) + "\n"
    (out_dir / "summary.json").write_text(text)
    (settings.reports_dir / spec.name / "latest.json").write_text(text)
    write_monitor_gauges(summary, settings.reports_dir / spec.name / "metrics.prom")
    write_index(settings.reports_dir)
    return summary
