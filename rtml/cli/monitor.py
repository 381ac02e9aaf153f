"""`rtml monitor`: the monitoring job of a registered scenario, once or on a schedule.

`run` and `schedule` take the scenario's `MonitorSpec` from the registry and run the kit's
runner (`rtml.monitor.run`); `drift-check` and `labels` are the fraud data's offline tools.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from rtml.cli.common import parse_every, scenario, settings
from rtml.cli.scenarios import REGISTRY
from rtml.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Monitoring reports over the log.")
KNOWN = ", ".join(s.name for s in REGISTRY if s.monitor)


def _monitor_once(s: Settings, model: str) -> int:
    """One run: reports, summary, notification; returns 0 pass / 1 fail / 2 cannot run."""
    from rtml.monitor.custom import SectionsMonitor, run_sections
    from rtml.monitor.data import NoPredictionsError
    from rtml.monitor.run import notify, run_monitor

    spec = scenario(model, needs="monitor").load("monitor")
    try:
        summary = (run_sections(s, spec) if isinstance(spec, SectionsMonitor)
                   else run_monitor(s, spec))
    except (NoPredictionsError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"rtml monitor: {exc}", err=True)
        return 2
    run_dir = s.reports_dir / model / datetime.fromisoformat(summary["run_at"]).strftime(
        "%Y%m%dT%H%M%SZ")
    typer.echo(f"monitor {model}: {summary['status'].upper()} over "
               f"{summary['predictions']['total']:,} {summary.get('unit', 'predictions')} "
               f"({'sampled' if summary['predictions']['sampled'] else 'all rows'}) "
               f"in {summary['seconds']:.1f}s -> {run_dir}")
    for name in summary["failed_checks"]:
        typer.echo(f"  FAIL {name}")
    typer.echo(f"  dashboard: {s.reports_dir / 'index.html'}")
    notify(summary, webhook_url=s.monitor_webhook_url)
    return 0 if summary["status"] == "pass" else 1


@app.command("run")
def monitor_run(
    model: Annotated[str, typer.Option(help=f"which model: {KNOWN}")] = "fraud",
) -> None:
    """Drift, delayed-label quality, freshness and health reports once; exit 0 pass, 1 fail."""
    raise typer.Exit(_monitor_once(settings(model), model))


@app.command("schedule")
def monitor_schedule(
    every: Annotated[str, typer.Option(help="period, e.g. 1h or 30s")] = "1h",
    model: Annotated[str, typer.Option(help=f"which model: {KNOWN}")] = "fraud",
    max_runs: Annotated[int | None, typer.Option(help="stop after this many runs")] = None,
    print_cron: Annotated[bool, typer.Option(help="print the crontab line and exit")] = False,
) -> None:
    """`rtml monitor run` every period (or print the cron line); exits with the last status."""
    scenario(model, needs="monitor")
    s = settings(model)
    period = parse_every(every)
    if print_cron:
        exe = os.path.join(os.path.dirname(sys.executable), "rtml")
        typer.echo(f"{_cron_fields(period)} cd {s.repo_root} && {exe} monitor run --model "
                   f"{model} >> {s.state_dir / 'monitor.log'} 2>&1")
        return
    runs, status = 0, 0
    while max_runs is None or runs < max_runs:
        t0 = time.perf_counter()
        status = _monitor_once(s, model)
        runs += 1
        if max_runs is not None and runs >= max_runs:
            break
        time.sleep(max(0.0, period - (time.perf_counter() - t0)))
    raise typer.Exit(status)


def _cron_fields(period_s: float) -> str:
    """The cron schedule nearest a period (cron's resolution is a minute)."""
    minutes = max(1, round(period_s / 60))
    if minutes < 60:
        return f"*/{minutes} * * * *"
    hours = max(1, round(minutes / 60))
    if hours < 24:
        return f"0 */{hours} * * *"
    return "0 3 * * *"


def _day_range(text: str, option: str) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in text.split(":"))
    except ValueError:
        raise typer.BadParameter(f"{option} {text!r}: use FIRST:END day indexes, e.g. 38:52"
                                 ) from None
    if not 0 <= lo < hi:
        raise typer.BadParameter(f"{option} {text!r}: need 0 <= FIRST < END")
    return lo, hi


@app.command("drift-check")
def monitor_drift_check(
    reference_days: Annotated[str, typer.Option(help="FIRST:END day indexes (end excluded)")],
    current_days: Annotated[str, typer.Option(help="FIRST:END day indexes (end excluded)")],
) -> None:
    """Feature drift between two periods of the generated data (see --drift-from-day)."""
    import pandas as pd

    from monitoring.fraud.backtest import FEATURES, period_drift

    s = settings()
    ref, cur = (_day_range(reference_days, "--reference-days"),
                _day_range(current_days, "--current-days"))
    tx = pd.read_parquet(s.raw_dir / "transactions.parquet")
    out = s.reports_dir / "drift-check" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        section = period_drift(tx, reference_days=ref, current_days=cur, features=FEATURES,
                               drift_share=s.monitor_drift_share, out_dir=out)
    except ValueError as exc:
        typer.echo(f"rtml monitor: {exc}", err=True)
        raise typer.Exit(2) from None
    failed = any(c["status"] == "fail" for c in section.checks)
    f = section.figures
    typer.echo(f"days {cur[0]}:{cur[1]} vs {ref[0]}:{ref[1]}: {'FAIL' if failed else 'PASS'}; "
               f"{len(f['drifted'])}/{f['features']} features drifted "
               f"({f['drifted_share']:.0%}, limit {f['drift_share_limit']:.0%}): "
               f"{', '.join(f['drifted']) or '-'} -> {out / 'feature_drift.html'}")
    raise typer.Exit(1 if failed else 0)


@app.command("labels")
def monitor_labels(
    delay: Annotated[str, typer.Option(help="labels visible this long after the payment")] = "2d",
) -> None:
    """(Re)publish the delayed labels of the generated transactions."""
    import pandas as pd

    from monitoring.fraud.labels import write_labels

    s = settings()
    delay_s = parse_every(delay, option="--delay")
    path = s.raw_dir / "transactions.parquet"
    if not path.exists():
        typer.echo(f"rtml monitor: no {path} (run `rtml data generate`)", err=True)
        raise typer.Exit(2)
    out = write_labels(pd.read_parquet(path), s.labels_path, delay_s=delay_s)
    typer.echo(f"labels visible {delay} after each payment -> {out}")
