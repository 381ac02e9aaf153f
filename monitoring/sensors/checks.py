"""The sensors monitor's sections: what the plant's streams say about the detector and the flow.

Every reading is scored inside the flow, so there is no prediction log: the monitor reads the
streams themselves (recent readings of every partition, `rtml:alerts`, the dead letters) and the
online store.

* **feature drift per machine type**: the features (the flow's own code) of recent readings
  (the reading and its 10 s rate of change) against the same of the plant's history
  (`data/raw/sensors/readings.parquet`, its normal rows), one Evidently drift report per
  machine type (a machine's type is its id without the trailing number: `press-07` -> `press`);
* **alert rate per machine**: alerts per hour; a machine whose last `recent_s` holds at least
  `min_alerts` alerts and `factor` times what its own earlier rate (or the plant's median rate,
  whichever is higher) predicts is a spike, and fails the run;
* **freshness and lag**: the kit's freshness of `machine_stats` (newest online value, the
  XADD -> Feast lag samples of the push sink), and how far the flow's pushes trail the newest
  reading (a flow that is alive but behind);
* **health**: the share of readings dead-lettered, and event time -> alert raised.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis

from pipelines.sensors.features import RollingFeatures
from pipelines.sensors.readings import BadReading, Reading, parse_reading
from pipelines.sensors.streams import ALERT_STREAM, DEAD_LETTER_STREAM, stream_key
from rtml.features.push import FRESHNESS_STREAM
from rtml.monitor import reports
from rtml.monitor.custom import Observed
from rtml.monitor.reports import Section
from rtml.settings import Settings

FEATURE_SERVICE = "sensors_model_v1"
# The reading and its 10 s rate of change. Not the rolling means and spreads: each reading's
# 1 min mean shares ~99 % of its readings with the next one's, so a drift test fed every reading
# sees n values where there are n/window independent ones, and flags a calm machine (measured:
# two calm 5-min stretches of one machine "drifted" on mean_10s, mean_1m, std_10s and std_1m).
DRIFT_FEATURES = ("value", "roc_10s")
REFERENCE_PER_CHANNEL = 2_000  # the newest normal readings of each reference machine channel


@dataclass(frozen=True)
class SpikeRule:
    """When a machine's recent alerts are a spike (see the module docstring)."""

    recent_s: float = 600.0
    factor: float = 3.0
    min_alerts: int = 3


def machine_type(machine_id: str) -> str:
    """`press-07` -> `press`, `m003` -> `m`; an id without a trailing number is its own type."""
    return re.sub(r"[-_:.]?\d+$", "", machine_id) or machine_id


def _text(fields: dict[Any, Any]) -> dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes)
                                                         else v) for k, v in fields.items()}


def _ms(entry_id: Any) -> int:
    return int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])


def recent_entries(client: Any, stream: str, *, since_ms: int, count: int
                   ) -> list[tuple[int, dict[str, str]]]:
    """(XADD ms, fields) of a stream's newest `count` entries since `since_ms`, oldest first."""
    rows = client.xrevrange(stream, max="+", min=f"{since_ms}-0", count=count)
    return [(_ms(i), _text(f)) for i, f in reversed(rows)]


def feature_rows(readings: list[Reading]) -> pd.DataFrame:
    """The flow's rolling features of each reading (time order per machine channel)."""
    state: dict[tuple[str, str], RollingFeatures] = {}
    rows = []
    for r in sorted(readings, key=lambda r: r.ts):
        feats = state.setdefault(r.key, RollingFeatures()).update(r)
        rows.append({"machine_id": r.machine_id, "channel": r.channel, "value": r.value,
                     **{f: feats[f] for f in DRIFT_FEATURES if f != "value"}})
    return pd.DataFrame(rows, columns=["machine_id", "channel", *DRIFT_FEATURES])


def _wide(frame: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """`n` rows per column `<channel>:<feature>`, each sampled apart, without replacement."""
    cols = {}
    for channel, part in frame.groupby("channel"):
        for f in DRIFT_FEATURES:
            values = part[f].dropna().to_numpy()
            if len(values) >= n:
                cols[f"{channel}:{f}"] = rng.choice(values, size=n, replace=False)
    return pd.DataFrame(cols)


def feature_drift(*, current: pd.DataFrame, reference: pd.DataFrame, drift_share: float,
                  out_dir: Path, seed: int = 0) -> Section:
    """One Evidently drift report per machine type (current types only), in one section."""
    section = Section("feature_drift")
    if current.empty or reference.empty:
        section.check("feature drift", None, "no recent readings" if current.empty else
                      "no reference (the plant's history: `rtml data generate --scenario "
                      "sensors`)")
        return section
    rng = np.random.default_rng(seed)
    cur_type = current["machine_id"].map(machine_type)
    ref_type = reference["machine_id"].map(machine_type)
    by_type: dict[str, Any] = {}
    for kind in sorted(cur_type.unique()):
        cur, ref = current[cur_type == kind], reference[ref_type == kind]
        if ref.empty:
            section.check(f"drift of {kind}", None, f"no reference readings of type {kind!r}")
            continue
        n = int(min(cur.groupby("channel").size().min(), ref.groupby("channel").size().min()))
        if n < 30:
            section.check(f"drift of {kind}", None, f"{n} readings per channel: need 30")
            continue
        cur_w, ref_w = _wide(cur, n, rng), _wide(ref, n, rng)
        cols = [c for c in cur_w.columns if c in ref_w.columns]
        (out_dir / kind).mkdir(parents=True, exist_ok=True)
        part = reports.feature_drift(current=cur_w, reference=ref_w, features=cols,
                                     drift_share=drift_share, out_dir=out_dir / kind)
        for check in part.checks:
            section.checks.append({**check, "section": section.name,
                                   "name": f"{kind}: {check['name']}"})
        section.files += [f"{kind}/{f}" for f in part.files]
        by_type[kind] = {**part.figures, "machines": int(cur["machine_id"].nunique()),
                         "rows_per_column": n}
    shares = [f.get("drifted_share", 0.0) for f in by_type.values()]
    section.figures = {"by_type": by_type, "drifted_share": max(shares) if shares else None,
                       "table": {"title": "Feature drift per machine type", "rows": [
                           {"type": k, "machines": f["machines"],
                            "drifted": f"{len(f.get('drifted', []))}/{f.get('features', 0)}",
                            "features drifted": ", ".join(f.get("drifted", [])) or "-"}
                           for k, f in by_type.items()]}}
    return section


def alert_rates(*, alerts: pd.DataFrame, machines: list[str], start_s: float, now_s: float,
                rule: SpikeRule = SpikeRule()) -> list[dict[str, Any]]:
    """Per machine: alerts, per hour, in the recent period, and whether that is a spike.

    `alerts` has `machine_id` and `at_s` (when it was published); `machines` every machine seen
    (one without alerts has rate 0); `start_s` when the observed period began.
    """
    cut = now_s - rule.recent_s
    span_h = max(now_s - start_s, rule.recent_s) / 3600
    before_h = max(cut - start_s, rule.recent_s) / 3600
    everyone = sorted(set(machines) | set(alerts["machine_id"]))
    counts = alerts.groupby("machine_id").size()
    plant = float(np.median([counts.get(m, 0) / span_h for m in everyone])) if everyone else 0.0
    rows = []
    for m in everyone:
        mine = alerts.loc[alerts["machine_id"] == m, "at_s"]
        recent, earlier = int((mine >= cut).sum()), int((mine < cut).sum())
        expected = rule.factor * max(earlier / before_h, plant) * rule.recent_s / 3600
        spike = recent >= rule.min_alerts and recent > expected
        rows.append({"machine": m, "type": machine_type(m), "alerts": int(len(mine)),
                     "per_hour": round(len(mine) / span_h, 2),
                     f"last {rule.recent_s / 60:g} min": recent,
                     "spike_above": round(max(expected, rule.min_alerts - 1), 2),
                     "status": "fail" if spike else "pass"})
    return rows


def alerts_section(*, alerts: pd.DataFrame, machines: list[str], start_s: float, now_s: float,
                   rule: SpikeRule) -> Section:
    """Alert rate per machine, a spike flagged (fails the run)."""
    section = Section("alerts")
    rows = alert_rates(alerts=alerts, machines=machines, start_s=start_s, now_s=now_s, rule=rule)
    spikes = [r["machine"] for r in rows if r["status"] == "fail"]
    if not rows:
        section.check("alert spike", None, "no machines and no alerts in the window")
    else:
        section.check("alert spike", not spikes,
                      f"spike of alerts on {', '.join(spikes)}" if spikes else
                      f"no machine above {rule.factor:g}x its usual alert rate in the last "
                      f"{rule.recent_s / 60:g} min", source="rtml")
    lag = (alerts["raised_s"] - alerts["ts"]).dropna() if len(alerts) else pd.Series([])
    section.figures = {"alerts": len(alerts), "machines": len(rows), "spikes": spikes,
                       "rule": rule.__dict__,
                       "event_to_alert_s": {"p50": float(lag.quantile(0.5)),
                                            "p95": float(lag.quantile(0.95))} if len(lag) else None,
                       "table": {"title": "Alerts per machine (spikes in red)", "rows": rows}}
    return section


def _alerts_frame(entries: list[tuple[int, dict[str, str]]]) -> pd.DataFrame:
    rows = []
    for at_ms, f in entries:
        try:
            raised = datetime.fromisoformat(f.get("raised_at", "")).timestamp()
        except ValueError:
            raised = float("nan")
        rows.append({"machine_id": f.get("machine_id", "?"), "at_s": at_ms / 1000,
                     "ts": float(f.get("ts", "nan")), "raised_s": raised,
                     "channel": f.get("channel", "?"), "drivers": json.loads(
                         f.get("drivers") or "{}")})
    return pd.DataFrame(rows, columns=["machine_id", "at_s", "ts", "raised_s", "channel",
                                       "drivers"])


def _reference(settings: Settings) -> pd.DataFrame:
    path = settings.raw_dir / "sensors" / "readings.parquet"
    if not path.exists():
        return pd.DataFrame(columns=["machine_id", "channel", *DRIFT_FEATURES])
    raw = pd.read_parquet(path)
    if "anomaly" in raw:
        raw = raw[raw["anomaly"].fillna("") == ""]
    raw = raw.sort_values("ts").groupby(["machine_id", "channel"]).tail(REFERENCE_PER_CHANNEL)
    readings = [Reading(machine_id=str(r.machine_id), channel=str(r.channel), ts=float(r.ts),
                        value=float(r.value), reading_id=str(getattr(r, "reading_id", "")))
                for r in raw.itertuples(index=False)]
    return feature_rows(readings)


def sections(settings: Settings, *, out_dir: Path, now: datetime, since: datetime,
             redis_client: Any | None = None, rule: SpikeRule = SpikeRule()
             ) -> tuple[list[Section], Observed]:
    """The four sections of one sensors monitoring run."""
    from rtml.features.online import load_store
    from rtml.monitor.freshness import freshness, view_specs
    from rtml.redis import connect

    now_s, since_ms = now.timestamp(), int(since.timestamp() * 1000)
    client, error = redis_client or connect(settings, role="monitor"), None
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        error = f"{settings.redis_address}: {exc}"
    per_part = max(1, settings.monitor_sample_rows // max(1, settings.stream_partitions))
    entries: list[tuple[int, dict[str, str]]] = []
    alerts_in: list[tuple[int, dict[str, str]]] = []
    dead, sampled = 0, False
    if error is None:
        for p in range(settings.stream_partitions):
            part = recent_entries(client, stream_key(p), since_ms=since_ms, count=per_part)
            sampled |= len(part) >= per_part  # the cap was hit: older readings left out
            entries += part
        alerts_in = recent_entries(client, ALERT_STREAM, since_ms=since_ms, count=1_000_000)
        dead = len(client.xrange(DEAD_LETTER_STREAM, min=f"{since_ms}-0", max="+"))
    readings, bad = [], 0
    for _, fields in entries:
        try:
            readings.append(parse_reading(fields))
        except BadReading:
            bad += 1
    alerts = _alerts_frame(alerts_in)
    start_s = min([e[0] / 1000 for e in entries[:1]] + alerts["at_s"].tolist()[:1]
                  + [now_s - 3600])

    drift = feature_drift(current=feature_rows(readings), reference=_reference(settings),
                          drift_share=settings.monitor_drift_share, out_dir=out_dir)
    rates = alerts_section(alerts=alerts, machines=sorted({r.machine_id for r in readings}),
                           start_s=start_s, now_s=now_s, rule=rule)

    store = load_store(settings)
    specs = view_specs(store, FEATURE_SERVICE, stream_max_age_s=settings.monitor_stream_max_age_s,
                       batch_grace_h=settings.monitor_batch_grace_h)
    fresh = freshness(specs=specs, request_ages=pd.DataFrame(), client=None if error else client,
                      project=store.config.project, out_dir=out_dir, now_s=now_s,
                      redis_error=error)
    newest_reading_s = max((e[0] for e in entries), default=None)
    pushes = [] if error else client.xrevrange(FRESHNESS_STREAM, count=1)
    newest_push_s = _ms(pushes[0][0]) / 1000 if pushes else None
    behind = (None if newest_reading_s is None or newest_push_s is None
              else max(0.0, newest_reading_s / 1000 - newest_push_s))
    fresh.figures["flow"] = {
        "newest_reading_age_s": None if newest_reading_s is None
        else now_s - newest_reading_s / 1000,
        "newest_push_age_s": None if newest_push_s is None else now_s - newest_push_s,
        "pushes_trail_readings_s": behind}
    if newest_reading_s is not None:
        limit = settings.monitor_stream_max_age_s
        fresh.check("flow keeps up", None if behind is None else behind <= limit,
                    "no push samples from the flow (is it running?)" if behind is None else
                    f"the flow's newest push trails the newest reading by {behind:.1f} s "
                    f"(limit {limit:g} s)")

    health = Section("health")
    total = len(entries) + dead
    share = dead / total if total else None
    health.figures = {"readings": len(entries), "unparsable_in_stream": bad,
                      "dead_letters": dead, "dead_letter_share": share,
                      "limits": {"error_rate": settings.monitor_error_rate}}
    health.check("dead letters", None if share is None else share <= settings.monitor_error_rate,
                  "no readings in the window" if share is None else
                  f"{dead:,} of {total:,} readings dead-lettered ({share:.2%}; limit "
                  f"{settings.monitor_error_rate:.2%})")
    if error:
        health.check("Redis", False, f"cannot read the streams: {error}")
    note = (f"the newest {per_part:,} readings of each partition since the window start"
            if sampled else "every reading in the window")
    return [drift, rates, fresh, health], Observed(total=len(entries), sampled=sampled, note=note)
