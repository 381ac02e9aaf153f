"""Feature freshness: how old the served values were, and how old the online store is now.

Each view declares how it is refreshed (`tags={"refresh": "daily" | "stream"}` in feature_repo/):
a daily view may be a day old plus the nightly job's grace; a streamed view's newest value must be
seconds old while the stream runs. Request-time ages come from the prediction log
(`feature_event_times`); the online store is read now through Feast's Redis layout (one hash per
entity, a `_ts:<view>` field per view), scanning at most `max_keys` entities.

A streamed value of a customer who has been quiet for an hour is legitimately an hour old, so the
streamed views are judged by the *newest* value in the store (is the writer alive?), not by the
age of what a request happened to read; their request-time ages are reported, not tested.

A stream stopped on purpose (`rtml.streams.stop`: the demo records it when it stops its flow and
service) is reported as `stopped` with when and by what, not failed; a flow that dies without
saying so, or one that wrote again after the record, is judged by its age as before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from google.protobuf.timestamp_pb2 import Timestamp

from rtml.monitor.reports import Section, freshness_report
from rtml.streams.stop import clean_stop, excuses

DAY_S = 86_400.0
FRESHNESS_STREAM = "rtml:metrics:stream_freshness"  # written by rtml/features/push.py


@dataclass(frozen=True)
class ViewSpec:
    """A feature view's refresh contract."""

    name: str
    refresh: str  # daily | stream | other
    ttl_s: float | None
    max_age_s: float | None


def view_specs(store: Any, service_name: str, *, stream_max_age_s: float,
               batch_grace_h: float) -> list[ViewSpec]:
    """Refresh expectations of every stored (non on-demand) view of the feature service."""
    service = store.get_feature_service(service_name)
    odfv = {v.name for v in store.list_on_demand_feature_views()}
    specs = []
    for proj in service.feature_view_projections:
        if proj.name in odfv:
            continue
        view = store.get_feature_view(proj.name)
        refresh = view.tags.get("refresh", "other")
        ttl = view.ttl.total_seconds() if isinstance(view.ttl, timedelta) and view.ttl else None
        limit = {"daily": DAY_S + batch_grace_h * 3600, "stream": stream_max_age_s}.get(refresh,
                                                                                         ttl)
        specs.append(ViewSpec(view.name, refresh, ttl, limit))
    return specs


def online_ages(client: Any, *, project: str, views: list[str], now_s: float,
                max_keys: int = 50_000) -> pd.DataFrame:
    """Age in seconds of each entity's value per view (NaN where the entity lacks the view)."""
    fields = [f"_ts:{v}" for v in views]
    keys: list[bytes] = []
    for key in client.scan_iter(match=f"*{project}", count=5000):
        keys.append(key)
        if len(keys) >= max_keys:
            break
    columns: dict[str, list[float]] = {v: [] for v in views}
    for lo in range(0, len(keys), 5000):
        pipe = client.pipeline(transaction=False)
        for key in keys[lo:lo + 5000]:
            pipe.hmget(key, fields)
        for reply in pipe.execute():
            for view, raw in zip(views, reply, strict=True):
                if raw:
                    ts = Timestamp.FromString(raw)
                    columns[view].append(now_s - (ts.seconds + ts.nanos / 1e9))
    return pd.DataFrame({f"age_s:{v}": pd.Series(a, dtype="float64")
                         for v, a in columns.items()})


def stream_lag(client: Any, *, now_s: float, last: int = 1000) -> dict[str, float] | None:
    """XADD -> readable-in-Feast lag samples of the stream sink; None when there are none."""
    entries = client.xrevrange(FRESHNESS_STREAM, count=last)
    if not entries:
        return None
    lags = np.array([float(f[b"lag_ms"]) for _, f in entries])
    newest_ms = int(entries[0][0].split(b"-")[0])
    return {"samples": len(lags), "lag_p50_ms": float(np.percentile(lags, 50)),
            "lag_p95_ms": float(np.percentile(lags, 95)),
            "last_push_age_s": now_s - newest_ms / 1000}


def freshness(*, specs: list[ViewSpec], request_ages: pd.DataFrame, client: Any | None,
              project: str, out_dir: Path, now_s: float | None = None,
              redis_error: str | None = None) -> Section:
    """Request-time and online-now freshness of the service's views, with Evidently tests."""
    section = Section("freshness")
    now_s = time.time() if now_s is None else now_s
    by_name = {s.name: s for s in specs}
    req_limits = {f"age_s:{s.name}": s.max_age_s for s in specs if s.refresh != "stream"}
    req = request_ages[[c for c in request_ages.columns
                        if c.removeprefix("age_s:") in by_name]]
    freshness_report(ages=req, limits=dict(req_limits), stem="freshness_request",
                     statistic="p95", section=section, out_dir=out_dir)
    views: dict[str, dict[str, Any]] = {
        s.name: {"refresh": s.refresh, "ttl_s": s.ttl_s, "max_age_s": s.max_age_s}
        for s in specs}
    for col in req.columns:
        values = req[col].dropna()
        if len(values):
            views[col.removeprefix("age_s:")]["request_age_s"] = {
                "p50": float(values.quantile(0.5)), "p95": float(values.quantile(0.95))}
    if client is None:
        section.check("online store freshness", False,
                      f"online store not readable: {redis_error}")
    else:
        online = online_ages(client, project=project, views=[s.name for s in specs], now_s=now_s)
        empty = [s.name for s in specs if online[f"age_s:{s.name}"].isna().all()]
        for name in empty:
            section.check(f"online values of {name}", False,
                          f"no value of view {name!r} in the online store")
        stopped = _stopped_on_purpose(client, specs, online, now_s, section)
        limits = {f"age_s:{s.name}": None if s.name in stopped else s.max_age_s for s in specs}
        freshness_report(ages=online, limits=limits, stem="freshness_online",
                         statistic="newest", section=section, out_dir=out_dir)
        for s in specs:
            col = online[f"age_s:{s.name}"].dropna()
            if len(col):
                views[s.name]["online_newest_age_s"] = float(col.min())
                views[s.name]["online_rows"] = len(col)
        if any(s.refresh == "stream" for s in specs):
            lag = stream_lag(client, now_s=now_s)
            section.figures["stream"] = lag
    stopped = section.figures.get("stream_stopped", {}).get("views", [])
    for name, info in views.items():
        newest, limit = info.get("online_newest_age_s"), info["max_age_s"]
        if name in stopped:
            info["status"] = "stopped"
        else:
            info["status"] = ("unknown" if newest is None or limit is None
                              else "fresh" if newest <= limit else "stale")
    section.figures["views"] = views
    return section


def _stopped_on_purpose(client: Any, specs: list[ViewSpec], online: pd.DataFrame, now_s: float,
                        section: Section) -> list[str]:
    """The streamed views a recorded clean stop excuses (none when it does not apply)."""
    streamed = [s.name for s in specs if s.refresh == "stream"
                and online[f"age_s:{s.name}"].notna().any()]
    if not streamed:
        return []
    newest_age = min(float(online[f"age_s:{v}"].min()) for v in streamed)
    stop = clean_stop(client)
    if stop is None or not excuses(stop, now_s - newest_age):
        return []
    at = pd.Timestamp(stop.at_s, unit="s", tz="UTC").isoformat(timespec="seconds")
    section.check("streamed views", None,
                  f"stream stopped cleanly at {at} by {stop.by}; its newest value is "
                  f"{newest_age:.0f}s old. Not a failure while stopped on purpose; the "
                  f"age limit applies again once a flow runs (a flow killed without this "
                  f"record fails)")
    section.figures["stream_stopped"] = {"at": at, "by": stop.by, "views": streamed}
    return streamed
