"""`rtml demo sensors`: a simulated plant with injected faults, through the real alert path.

Redis (embedded Valkey unless one answers), `feast apply`, the trained detector (`rtml train
sensors` first when there is none), then a plant from `pipelines.sensors.simulate` (faults only
after its first hour, as in training: every rolling window of a channel has filled by then)
`XADD`ed to the readings streams at `rate` readings/s with its own event times, scored by the
real Bytewax flow, alerts read back from `rtml:alerts`. It prints, per anomaly kind, faults
injected vs alerted and the median detection delay (event time), false alarms per hour, and the
NAB score of the shared real files with the same model.

The table is built by `detection_table` from the injected windows and the alerts alone, with the
rules training scores by (`training.sensors.metrics`): a fault is alerted when an alert of its
machine channel falls in `[start, end + grace]`; its delay is the first such alert's time minus
the start; an alert outside every such window of its channel is a false alarm.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rtml.scenarios import Scenario
from rtml.settings import REPO_ROOT, Settings

NAB_FILES = ("machine_temperature_system_failure.csv", "ambient_temperature_system_failure.csv")
NAB_DIR = REPO_ROOT.parent / "shared" / "data" / "nab"


def detection_table(windows: Sequence[Any], alerts: Sequence[tuple[str, str, float]], *,
                    scored_from: float, scored_until: float, kinds: Sequence[str],
                    grace_s: float) -> dict[str, Any]:
    """Faults alerted vs injected per kind, median delay per kind, false alarms per hour.

    `windows`: the injected faults (`machine_id`, `channel`, `kind`, `start`, `end`); `alerts`:
    (machine_id, channel, event time) of each alert. Alerts before `scored_from` (the warm-up)
    count for nothing; hours are `scored_until - scored_from`.
    """
    by_key: dict[tuple[str, str], list[float]] = {}
    for machine, channel, ts in alerts:
        if scored_from <= ts <= scored_until:
            by_key.setdefault((machine, channel), []).append(ts)
    explained: set[tuple[str, str, float]] = set()
    rows = {k: {"injected": 0, "alerted": 0, "delays": []} for k in kinds}
    for w in windows:
        row = rows.setdefault(w.kind, {"injected": 0, "alerted": 0, "delays": []})
        row["injected"] += 1
        inside = [t for t in by_key.get((w.machine_id, w.channel), [])
                  if w.start <= t <= w.end + grace_s]
        explained.update((w.machine_id, w.channel, t) for t in inside)
        if inside:
            row["alerted"] += 1
            row["delays"].append(min(inside) - w.start)
    false = sum(1 for key, ts in by_key.items() for t in ts if (*key, t) not in explained)
    hours = (scored_until - scored_from) / 3600
    out_rows = [{"kind": k, "injected": r["injected"], "alerted": r["alerted"],
                 "median_delay_s": float(np.median(r["delays"])) if r["delays"] else None}
                for k, r in rows.items()]
    injected = sum(r["injected"] for r in out_rows)
    alerted = sum(r["alerted"] for r in out_rows)
    return {"rows": out_rows, "injected": injected, "alerted": alerted,
            "alerts": sum(len(t) for t in by_key.values()), "false_alarms": false,
            "hours": hours, "false_alarms_per_hour": false / hours if hours > 0 else None}


def format_table(table: dict[str, Any], *, machines: int) -> list[str]:
    """The printed table (one line per kind, then the totals)."""
    lines = [f"  {'kind':<8}{'injected':>9}{'alerted':>9}{'median delay':>14}"]
    for r in table["rows"]:
        delay = "-" if r["median_delay_s"] is None else f"{r['median_delay_s']:.1f} s"
        lines.append(f"  {r['kind']:<8}{r['injected']:>9}{r['alerted']:>9}{delay:>14}")
    recall = table["alerted"] / table["injected"] if table["injected"] else float("nan")
    per_h = table["false_alarms_per_hour"]
    lines.append(f"  {'all':<8}{table['injected']:>9}{table['alerted']:>9}"
                 f"   event recall {recall:.0%}")
    lines.append(f"  false alarms: {table['false_alarms']} in {table['hours']:.2f} h of "
                 f"{machines} machines = {per_h:.1f}/h ({per_h / machines:.2f} per machine-hour);"
                 f" {table['alerts']} alerts in all")
    return lines


def _step(name: str) -> float:
    print(f"\n== {name}", flush=True)
    return time.perf_counter()


def _done(t0: float, what: str = "") -> None:
    print(f"   {what}{' ' if what else ''}({time.perf_counter() - t0:.1f}s)", flush=True)


def run_sensors_demo(settings: Settings, scenario: Scenario, *, machines: int = 6,
                     hours: float = 2.0, rate_hz: float = 2.0, seed: int = 1,
                     rate: float = 4000.0, nab_dir: Path = NAB_DIR, **_: Any) -> int:
    """The demo; returns the exit status (0 ok, 2 cannot run)."""
    from pipelines.sensors.detect import load_detector
    from pipelines.sensors.produce import produce, rows_of
    from pipelines.sensors.simulate import KINDS, simulate
    from pipelines.sensors.streams import ALERT_STREAM, READINGS_PREFIX, stream_key
    from rtml.demo import wait_caught_up
    from rtml.features.online import apply_repo
    from rtml.features.push import FRESHNESS_STREAM
    from rtml.redis import connect
    from rtml.redis.embedded import RedisUnavailableError, ensure_redis
    from rtml.runtime import flow_command, start_group, stop_group
    from rtml.streams.stop import clear_clean_stop, record_clean_stop
    from training.sensors import nab
    from training.sensors.metrics import GRACE_S
    from training.sensors.train import QUIET_S

    t = _step("Redis")
    try:
        status = ensure_redis(settings)
    except RedisUnavailableError as exc:
        print(f"rtml: {exc}", file=sys.stderr)
        return 2
    _done(t, f"{'embedded Valkey' if status.embedded else 'external Redis'} at "
             f"{settings.redis_address}")
    t = _step("feast apply")
    apply_repo(settings)
    _done(t)

    t = _step("Detector model")
    root = settings.artifacts_dir / "sensors"
    try:
        detector = load_detector(root=root)
        _done(t, f"trained model found under {root}")
    except FileNotFoundError:
        print("   none yet: rtml train sensors (the five detectors compared; minutes)", flush=True)
        metrics = scenario.load("trainer")(settings)
        for line in scenario.load("train_summary")(metrics):
            print(f"   {line}")
        detector = load_detector(root=root)
        _done(t)
    print(f"   {detector.params.kind} at threshold {detector.params.threshold:g}")

    t = _step(f"Plant: {machines} machines x 4 channels at {rate_hz:g} Hz for {hours:g} h "
              f"(seed {seed}), faults after the first hour")
    plant = simulate(machines=machines, hours=hours, seed=seed, rate_hz=rate_hz,
                     quiet_s=QUIET_S)
    readings = rows_of(plant.readings)
    _done(t, f"{len(readings):,} readings, {len(plant.windows)} faults")

    client = connect(settings, decode_responses=True)
    partitions = settings.stream_partitions
    client.delete(*[stream_key(i, READINGS_PREFIX) for i in range(partitions)],
                  FRESHNESS_STREAM)
    clear_clean_stop(client)
    shutil.rmtree(settings.state_dir / "recovery", ignore_errors=True)
    last = client.xrevrange(ALERT_STREAM, count=1)
    after = last[0][0] if last else "0-0"
    log = settings.state_dir / "demo-sensors-flow.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t = _step(f"Stream: XADD at {rate:,.0f} readings/s -> Bytewax flow -> {ALERT_STREAM} "
              f"(flow log {log})")
    flow = start_group(flow_command(settings, scenario.flow or ""), log=log,
                       cwd=settings.repo_root,
                       env={"RTML_REDIS_ADDRESS": settings.redis_address})
    try:
        sent = produce(address=settings.redis_address, settings=settings, readings=readings,
                       rate=rate, partitions=partitions, own_times=True, progress=False)
        print(f"   sent {sent['sent']:,} in {sent['seconds']:.0f}s "
              f"({sent['achieved_rate']:,.0f}/s); waiting for the flow to catch up", flush=True)
        if not wait_caught_up(client, quiet_s=5.0, timeout_s=900.0):
            print("   the flow was still pushing after 15 min: counting what it has done",
                  flush=True)
        if flow.poll() is not None:
            print(f"rtml: the flow stopped ({flow.returncode}); see {log}", file=sys.stderr)
            return 2
    finally:
        running = flow.poll() is None
        stop_group(flow)
        if running:
            record_clean_stop(client, by="rtml demo sensors")
    _done(t)
    mine = {f"m{m:03d}" for m in range(machines)}
    alerts = [(f["machine_id"], f["channel"], float(f["ts"]))
              for _, f in client.xrange(ALERT_STREAM, min=f"({after}")
              if f["machine_id"] in mine]

    start = float(plant.readings["ts"].min())
    table = detection_table(plant.windows, alerts, scored_from=start + QUIET_S,
                            scored_until=float(plant.readings["ts"].max()), kinds=KINDS,
                            grace_s=GRACE_S)
    print(f"\n== Alerts raised vs faults injected (after the fault-free first hour; an alert "
          f"counts for a fault in [start, end + {GRACE_S:g} s])")
    for line in format_table(table, machines=machines):
        print(line)

    print(f"\n== NAB (real data, {nab_dir}), the same model at its fixed threshold")
    files = [nab_dir / f for f in NAB_FILES if (nab_dir / f).exists()]
    windows = nab_dir / "anomaly_windows.json"
    if not files or not windows.exists():
        print(f"   no NAB files under {nab_dir}: skipped")
        return 0
    results = [nab.evaluate_file(f, windows, detector) for f in files]
    for r in results:
        print(f"   {Path(r['file']).name}: score {r['score']:.1f}, windows detected "
              f"{r['windows_detected']}/{r['windows']}, false positives {r['false_positives']}")
    total = sum((r["_parts"]["fixed"] for r in results[1:]), results[0]["_parts"]["fixed"])
    print(f"   all files: NAB standard score {total.normalised:.1f}, windows detected "
          f"{total.windows_detected}/{total.windows}, false positives {total.false_positives}")
    return 0
