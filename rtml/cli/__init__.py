"""The `rtml` command: one entry point for the jobs a user runs by hand or on a schedule."""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from rtml.redis import connect
from rtml.redis.embedded import RedisUnavailableError, ensure_redis, stop_embedded
from rtml.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
data_app = typer.Typer(no_args_is_help=True, help="Synthetic data.")
features_app = typer.Typer(no_args_is_help=True, help="Batch features.")
redis_app = typer.Typer(no_args_is_help=True, help="The Redis online store / embedded Valkey.")
log_app = typer.Typer(no_args_is_help=True, help="The prediction log.")
stream_app = typer.Typer(no_args_is_help=True, help="The transaction event stream.")
bench_app = typer.Typer(help="Benchmarks: open-loop load, side by side, saturation, cost.")
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.add_typer(redis_app, name="redis")
app.add_typer(log_app, name="log")
monitor_app = typer.Typer(no_args_is_help=True, help="Monitoring reports over the log.")
app.add_typer(stream_app, name="stream")
app.add_typer(monitor_app, name="monitor")
app.add_typer(bench_app, name="bench")


def _settings() -> Settings:
    return Settings()


def _need_redis(settings: Settings) -> None:
    try:
        ensure_redis(settings, say=lambda m: typer.echo(m, err=True))
    except RedisUnavailableError as exc:
        typer.echo(f"rtml: {exc}", err=True)
        raise typer.Exit(2) from None


@data_app.command("generate")
def data_generate(
    days: Annotated[int, typer.Option(help="days of transactions")] = 90,
    customers: Annotated[int, typer.Option(help="number of customers")] = 5000,
    terminals: Annotated[int, typer.Option(help="number of terminals")] = 10000,
    seed: Annotated[int, typer.Option(help="random seed: same seed, same data")] = 0,
    start: Annotated[str | None, typer.Option(help="first day YYYY-MM-DD (default: "
                                                    "so the data ends yesterday)")] = None,
    drift_from_day: Annotated[int | None, typer.Option(
        help="inject drift from this day index on (0 = first day)")] = None,
    drift_amount: Annotated[float, typer.Option(
        help="with --drift-from-day: multiply amounts by this factor")] = 1.5,
    label_delay: Annotated[str, typer.Option(
        help="labels (chargebacks) become visible this long after the payment, e.g. 2d")] = "2d",
) -> None:
    """Simulate customers, terminals and transactions with three fraud scenarios."""
    from monitoring.fraud.labels import write_labels
    from pipelines.fraud.simulate import default_start, simulate, write

    s = _settings()
    first = date.fromisoformat(start) if start else default_start(days)
    delay = _parse_every(label_delay, option="--label-delay")
    t0 = time.perf_counter()
    try:
        data = simulate(customers=customers, terminals=terminals, days=days, start=first,
                        seed=seed, progress=True, drift_from_day=drift_from_day,
                        drift_amount=drift_amount if drift_from_day is not None else 1.0)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    paths = write(data, s.raw_dir)
    labels = write_labels(data.transactions, s.labels_path, delay_s=delay)
    tx = data.transactions
    typer.echo(f"{len(tx):,} transactions ({int(tx['is_fraud'].sum()):,} fraud) from {first} "
               f"over {days} days in {time.perf_counter() - t0:.1f}s -> {paths['transactions']}")
    if drift_from_day is not None:
        typer.echo(f"drift: amounts x{drift_amount:g} from day {drift_from_day} "
                   f"({first + timedelta(days=drift_from_day)})")
    typer.echo(f"labels visible {label_delay} after each payment -> {labels}")


@features_app.command("build")
def features_build() -> None:
    """Nightly batch features and the streamed windows' backfill: the Feast offline sources."""
    from pipelines.fraud.batch_features import build
    from pipelines.fraud.windows import write_backfill

    s = _settings()
    t0 = time.perf_counter()
    paths = build(s.raw_dir / "transactions.parquet", s.features_dir)
    paths.update(write_backfill(s.raw_dir / "transactions.parquet", s.features_dir))
    typer.echo(f"features in {time.perf_counter() - t0:.1f}s -> "
               + ", ".join(str(p) for p in paths.values()))


@app.command("apply")
def apply() -> None:
    """`feast apply` against the configured Redis (registers views, creates online tables)."""
    from rtml.features.online import apply_repo

    s = _settings()
    _need_redis(s)
    apply_repo(s)


@app.command("materialize")
def materialize(
    every: Annotated[str | None, typer.Option(help="repeat, e.g. 24h or 30m")] = None,
    cron: Annotated[bool, typer.Option(help="print the crontab line and exit")] = False,
) -> None:
    """Load the nightly features into Redis up to now, once or on a schedule.

    Like `feast materialize-incremental`, but incremental from what *this* Redis holds (recorded
    in the store, `rtml.features.online_store`), not from the registry's last run: a new or
    flushed Redis gets a full load of every value still within its view's TTL.
    """
    s = _settings()
    if cron:
        exe = os.path.join(os.path.dirname(sys.executable), "rtml")
        typer.echo(f"15 2 * * * cd {s.repo_root} && {exe} materialize >> "
                   f"{s.state_dir / 'materialize.log'} 2>&1")
        return
    _need_redis(s)

    from rtml.features.online import load_store
    from rtml.features.online_store import materialize_window, record_materialized

    client = connect(s)
    period = _parse_every(every) if every else None
    while True:
        t0 = time.perf_counter()
        store = load_store(s)
        now = datetime.now(UTC)
        max_ttl = max((v.ttl for v in store.list_feature_views() if v.online and v.ttl),
                      default=timedelta(days=1))
        start, why = materialize_window(client, now=now, max_ttl=max_ttl)
        typer.echo(f"materialize into {s.redis_address}: {why}", err=True)
        store.materialize(start_date=start, end_date=now)
        record_materialized(client, now)
        typer.echo(f"materialized in {time.perf_counter() - t0:.1f}s")
        if period is None:
            return
        time.sleep(max(0.0, period - (time.perf_counter() - t0)))


def _parse_every(text: str, option: str = "--every") -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        value = float(text[:-1]) * units[text[-1]]
    except (KeyError, ValueError, IndexError):
        raise typer.BadParameter(f"{option} {text!r}: use a number and s/m/h/d, e.g. 24h") from None
    if value < 0:
        raise typer.BadParameter(f"{option} {text!r}: must not be negative")
    return value


@app.command("train")
def train(
    model: Annotated[str, typer.Argument(help="which model: fraud")] = "fraud",
    service: Annotated[str, typer.Option(help="Feast FeatureService")] = "fraud_model_v1",
    seeds: Annotated[str | None, typer.Option(
        help="also refit with each seed, e.g. 0,1,2, and report average precision per seed "
             "with its spread (the model saved is the first seed's)")] = None,
) -> None:
    """Train on a point-in-time training set; save to the BentoML store; write metrics."""
    if model != "fraud":
        raise typer.BadParameter(f"unknown model {model!r}; known: fraud")
    from training.fraud.train import train as train_fraud

    seed_list = _parse_seeds(seeds) if seeds is not None else None
    s = _settings()
    t0 = time.perf_counter()
    m = train_fraud(s, service_name=service, seeds=seed_list)
    typer.echo(f"trained {m['bentoml_tag']} in {time.perf_counter() - t0:.1f}s on {m['device']}")
    columns = {"xgboost": m["xgboost"], "logistic": m["baseline_logistic_regression"],
               "rules": m["baseline_rules"], "amount rule": m["baseline_amount_rule"]}
    typer.echo(f"  {'':24s}" + "".join(f"{name:>13s}" for name in columns))
    for k in m["xgboost"]:
        typer.echo(f"  {k:24s}" + "".join(f"{c[k]:13.3f}" for c in columns.values()))
    for name, spread in m.get("seeds", {}).items():
        values = ", ".join(f"{v:.3f}" for v in spread["ap"])
        typer.echo(f"  average precision over seeds {spread['seeds']}: {name} "
                   f"{spread['mean']:.3f} ± {spread['std']:.3f} ({values})")


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"--seeds {text!r}: use integers separated by commas, "
                                 "e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise typer.BadParameter(f"--seeds {text!r}: give distinct integers, e.g. 0,1,2")
    return seeds


@app.command("serve")
def serve(
    model: Annotated[str, typer.Argument(help="which service: fraud")] = "fraud",
    port: int = 3000,
) -> None:
    """`bentoml serve bentos.fraud.service:FraudService` from the repo root."""
    s = _settings()
    _need_redis(s)
    os.chdir(s.repo_root)
    cmd = ["bentoml", "serve", f"bentos.{model}.service:{model.capitalize()}Service",
           "--port", str(port)]
    os.execvp(cmd[0], cmd)


@redis_app.command("ensure")
def redis_ensure() -> None:
    """Use the Redis at RTML_REDIS_ADDRESS, or start the embedded one there."""
    s = _settings()
    _need_redis(s)
    typer.echo(f"redis: {s.redis_address} answers")


@redis_app.command("stop")
def redis_stop() -> None:
    """Stop the embedded Valkey rtml started (a Redis rtml did not start is left alone)."""
    s = _settings()
    stopped = stop_embedded(s)
    typer.echo("stopped" if stopped else f"no embedded server of rtml's on {s.redis_address}")


@log_app.command("drain")
def log_drain(
    batch: Annotated[int, typer.Option(
        min=1, help="stream entries written and acknowledged at a time")] = 50_000,
) -> None:
    """Move the prediction stream into partitioned parquet under data/predictions/."""
    from rtml.serving.predlog import drain

    s = _settings()
    _need_redis(s)
    n = drain(connect(s), stream=s.prediction_stream,
              out_dir=s.predictions_dir, batch=batch)
    typer.echo(f"{n} predictions -> {s.predictions_dir}")


@app.command("demo")
def demo(
    days: int = 90, customers: int = 5000, terminals: int = 10000, replay: int = 1000,
    port: int = 3000,
    stream: Annotated[bool, typer.Option(help="fraud_model_v2 with the live stream")] = True,
    drift_amount: Annotated[float, typer.Option(
        "--drift", help="inject drift: every payment from now on costs this many times more "
                        "(e.g. 1.5); `rtml monitor run` then fails")] = 1.0,
) -> None:
    """Generate, build features, apply, materialize, train, serve, stream, score; print it."""
    from rtml.demo import run_demo

    if not drift_amount > 0:
        raise typer.BadParameter(f"--drift {drift_amount:g}: must be > 0 (1 = no drift)")
    raise typer.Exit(run_demo(_settings(), days=days, customers=customers, terminals=terminals,
                              replay=replay, port=port, stream=stream,
                              drift_amount=drift_amount))


@bench_app.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    rates: Annotated[str, typer.Option(help="comma-separated request rates")] = "100,200",
    duration: Annotated[float, typer.Option(help="seconds per rate")] = 20.0,
    url: str = "http://127.0.0.1:3000",
    skew: Annotated[float, typer.Option(help="Zipf exponent of the customer draw (0: each "
                                             "customer once while they last)")] = 0.8,
    results_dir: Annotated[str | None, typer.Option(help="default benchmarks/results")] = None,
    hist: Annotated[str | None, typer.Option(help="PNG path (default "
                                                  "docs/img/latency-hist.png; 'none' to skip)")
                    ] = None,
) -> None:
    """Open-loop load on /score at fixed rates; writes benchmarks/results/*.json.

    Uses the service at --url, or starts one. Subcommands: side-by-side (naive/stock/rtml/floor),
    saturate, cost.
    """
    if ctx.invoked_subcommand is not None:
        return
    from benchmarks.load import DOCS_IMG
    from benchmarks.load import main as bench_main
    from benchmarks.record import RESULTS
    from benchmarks.servers import ServerError

    s = _settings()
    _need_redis(s)
    try:
        code = bench_main(s, url=url, duration=duration, skew=skew,
                          rates=_floats(rates, "--rates"), out_dir=_path(results_dir, RESULTS),
                          hist=None if hist == "none" else _path(hist,
                                                                 DOCS_IMG / "latency-hist.png"))
    except ServerError as exc:
        typer.echo(f"rtml bench: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise typer.BadParameter(f"{option} {text!r}: comma-separated numbers") from None


@bench_app.command("side-by-side")
def bench_side_by_side(
    targets: Annotated[str, typer.Option(help="any of naive,stock,rtml,floor")] = (
        "naive,stock,rtml,floor"),
    rate: Annotated[float, typer.Option(help="requests per second, the same for every target")
                    ] = 200.0,
    duration: Annotated[float, typer.Option(help="seconds per target")] = 30.0,
    url: Annotated[str, typer.Option(help="rtml already serving here is used as is")] = (
        "http://127.0.0.1:3000"),
    skew: Annotated[float, typer.Option(help="Zipf exponent of the customer draw")] = 0.8,
    pg_dsn: Annotated[str, typer.Option(help="Postgres for the naive target")] = (
        "host=127.0.0.1 port=5432 user=postgres dbname=rtml_bench"),
    port_base: Annotated[int, typer.Option(help="first port for the servers it starts "
                                                "(0: free ports)")] = 0,
    results_dir: Annotated[str | None, typer.Option(help="default benchmarks/results")] = None,
    hist: Annotated[str | None, typer.Option(help="PNG path (default "
                                                  "docs/img/side-by-side.png; 'none' to skip)")
                    ] = None,
    stock_modes: Annotated[str, typer.Option(
        help="on-demand view modes to run stock in (pandas,python); the better is reported")
                           ] = "pandas,python",
) -> None:
    """One run: naive (Postgres SQL), stock (feast serve + model), rtml and floor."""
    from benchmarks import side_by_side as sbs
    from benchmarks.record import RESULTS
    from benchmarks.servers import ServerError

    s = _settings()
    _need_redis(s)
    try:
        code = sbs.run(s, targets=[t.strip() for t in targets.split(",") if t.strip()],
                       rate=rate, duration=duration, url=url, skew=skew, dsn=pg_dsn,
                       port_base=port_base, out_dir=_path(results_dir, RESULTS),
                       hist=None if hist == "none" else _path(hist, sbs.DOCS_HIST),
                       stock_modes=tuple(m.strip() for m in stock_modes.split(",") if m.strip()))
    except (sbs.PostgresUnavailable, ServerError, ValueError) as exc:
        typer.echo(f"rtml bench: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


def _path(value: str | None, default: Path) -> Path:
    return Path(value) if value else default


@bench_app.command("saturate")
def bench_saturate(
    path: Annotated[str, typer.Option(help="/score, /score_batch or both")] = "both",
    budget_ms: Annotated[float, typer.Option(help="stop once p99 exceeds this")] = 50.0,
    start: Annotated[float, typer.Option(help="first /score rate (requests/s)")] = 100.0,
    batch_start: Annotated[float, typer.Option(help="first /score_batch rate (requests/s)")
                           ] = 2.0,
    factor: Annotated[float, typer.Option(help="rate multiplier per step")] = 1.5,
    step_s: Annotated[float, typer.Option(help="seconds per step")] = 10.0,
    batch: Annotated[int, typer.Option(help="rows per /score_batch request (above "
                                             "RTML_BATCH_MAX_SIZE: see docs/benchmarks.md)")] = 50,
    url: str = "http://127.0.0.1:3000",
    compare_batching: Annotated[bool, typer.Option(
        help="start rtml twice, RTML_BATCHING=true and false, and measure both")] = False,
    port_base: Annotated[int, typer.Option(help="first port for servers it starts")] = 0,
    results_dir: Annotated[str | None, typer.Option(help="default benchmarks/results")] = None,
    target: Annotated[str, typer.Option(help="rtml, or naive / stock (their /score)")] = "rtml",
    pg_dsn: Annotated[str, typer.Option(help="Postgres for --target naive")] = (
        "host=127.0.0.1 port=5432 user=postgres dbname=rtml_bench"),
    stock_mode: Annotated[str, typer.Option(help="--target stock: the on-demand view's mode "
                                                 "in feast serve (pandas or python)")] = "pandas",
) -> None:
    """Step the rate until p99 > budget or errors: scored transactions/s (and per core).

    Reports the saturation point under two rules: no request shed, and up to 1% shed (503).
    """
    from benchmarks import saturate as sat
    from benchmarks.record import RESULTS
    from benchmarks.servers import ServerError
    from benchmarks.side_by_side import PostgresUnavailable

    s = _settings()
    _need_redis(s)
    paths = ["/score", "/score_batch"] if path == "both" else [path]
    try:
        code = sat.run(s, paths=paths, budget_ms=budget_ms, start=start,
                       batch_start=batch_start, factor=factor,
                       step_s=step_s, batch=batch, url=url, compare_batching=compare_batching,
                       port_base=port_base, out_dir=_path(results_dir, RESULTS),
                       target=target, dsn=pg_dsn, stock_mode=stock_mode)
    except (ServerError, ValueError, PostgresUnavailable) as exc:
        typer.echo(f"rtml bench: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@bench_app.command("cost")
def bench_cost(
    per_day: Annotated[float, typer.Option(help="predictions per day")] = 1_000_000,
    peak: Annotated[float, typer.Option(help="peak predictions per second")] = 300.0,
    cache_hit_rate: Annotated[float, typer.Option(help="share answered by the cache")] = 0.6,
    cores_per_machine: Annotated[int, typer.Option(help="cores of one serving machine")] = 2,
    core_hour_usd: Annotated[float, typer.Option(help="price of one core-hour")] = 0.04,
    gpu_hour_usd: Annotated[float, typer.Option(help="price of one GPU-hour (T4 class)")] = 0.35,
    results: Annotated[str | None, typer.Option(help="saturate-*.json (default: latest)")
                       ] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="every measured run, not only the "
                                                         "better batching setting")] = False,
    rule: Annotated[str, typer.Option(help="saturation rule: no_shed (0 requests shed) or "
                                           "shed_1pct (up to 1% shed)")] = "no_shed",
    results_dir: Annotated[str | None, typer.Option(help="where the cost-*.json goes "
                                                         "(default benchmarks/results)")] = None,
) -> None:
    """Machines (and $/day) for a daily volume and a peak rate, from measured throughput."""
    from benchmarks import cost
    from benchmarks.record import RESULTS

    options = dict(per_day=per_day, peak=peak, hit_rate=cache_hit_rate,
                   cores_per_machine=cores_per_machine, core_hour_usd=core_hour_usd,
                   gpu_hour_usd=gpu_hour_usd)
    try:
        src = Path(results) if results else cost.latest(RESULTS)
        capacity = cost.load_capacity(src, best_only=not all_runs, rule=rule)
        text = cost.report(capacity, rule=rule, **options)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"rtml bench cost: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"from {src}\n")
    typer.echo(text)
    out = cost.write(_settings(), source=src, capacities=capacity, rule=rule, text=text,
                     out_dir=_path(results_dir, RESULTS), **options)
    typer.echo(f"results: {out}")


@stream_app.command("produce")
def stream_produce(
    rate: Annotated[float, typer.Option(help="events per second")] = 1000.0,
    duration: Annotated[float | None, typer.Option(help="seconds (default: all rows)")] = None,
    last_days: Annotated[int, typer.Option(help="replay the last N days of generated data")] = 7,
    own_times: Annotated[bool, typer.Option(
        help="keep each payment's own event time (default: stamp it with the send time)")] = False,
) -> None:
    """Replay generated transactions onto the event streams (stamped now, or --own-times)."""
    import pandas as pd

    from pipelines.fraud.produce import produce

    s = _settings()
    _need_redis(s)
    tx = pd.read_parquet(s.raw_dir / "transactions.parquet")
    tx = tx[tx["day"] > tx["day"].max() - last_days]
    out = produce(address=s.redis_address, transactions=tx, rate=rate,
                  duration=duration, partitions=s.stream_partitions, own_times=own_times)
    typer.echo(f"sent {out['sent']:,} events in {out['seconds']:.1f}s "
               f"({out['achieved_rate']:,.0f}/s)")


def stream_command(settings: Settings, *, workers: int = 1, process_id: int | None = None,
                   addresses: str | None = None) -> list[str]:
    """The `python -m bytewax.run` line for the fresh-features flow.

    Its recovery store is the one of the online store at `RTML_REDIS_ADDRESS`
    (`rtml.features.online_store.recovery_dir`), initialised when new.
    """
    from rtml.features.online_store import recovery_dir

    client = connect(settings)
    recovery = recovery_dir(settings.state_dir, client, say=lambda m: typer.echo(m, err=True))
    cmd = [sys.executable, "-m", "bytewax.run", "pipelines.fraud.flow:get_flow()",
           "-r", str(recovery), "-s", f"{settings.stream_snapshot_s:g}", "-b", "0",
           "-w", str(workers)]
    if process_id is not None and addresses:
        cmd += ["-i", str(process_id), "-a", addresses]
    return cmd


@stream_app.command("run")
def stream_run(
    workers: Annotated[int, typer.Option("-w", help="workers in this process")] = 1,
    process_id: Annotated[int | None, typer.Option("-i", help="this process's index")] = None,
    addresses: Annotated[str | None, typer.Option("-a", help='"h:p;h:p" of all')] = None,
) -> None:
    """Run the fresh-features flow (Redis Streams -> windows -> Feast push) until stopped."""
    from rtml.streams.stop import clear_clean_stop

    s = _settings()
    _need_redis(s)
    # A flow runs again: its silence is a failure from now on, whatever stopped the last one.
    clear_clean_stop(connect(s))
    cmd = stream_command(s, workers=workers, process_id=process_id, addresses=addresses)
    typer.echo("running: " + " ".join(cmd), err=True)
    os.chdir(s.repo_root)
    os.execv(cmd[0], cmd)


def _monitor_once(s: Settings, model: str) -> int:
    """One run: reports, summary, notification; returns 0 pass / 1 fail / 2 cannot run."""
    from monitoring.fraud.run import notify, run_monitor
    from rtml.monitor.data import NoPredictionsError

    try:
        summary = run_monitor(s, model=model)
    except (NoPredictionsError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"rtml monitor: {exc}", err=True)
        return 2
    run_dir = s.reports_dir / model / datetime.fromisoformat(summary["run_at"]).strftime(
        "%Y%m%dT%H%M%SZ")
    typer.echo(f"monitor {model}: {summary['status'].upper()} over "
               f"{summary['predictions']['total']:,} predictions "
               f"({'sampled' if summary['predictions']['sampled'] else 'all rows'}) "
               f"in {summary['seconds']:.1f}s -> {run_dir}")
    for name in summary["failed_checks"]:
        typer.echo(f"  FAIL {name}")
    typer.echo(f"  dashboard: {s.reports_dir / 'index.html'}")
    notify(summary, webhook_url=s.monitor_webhook_url)
    return 0 if summary["status"] == "pass" else 1


@monitor_app.command("run")
def monitor_run(
    model: Annotated[str, typer.Option(help="which model: fraud")] = "fraud",
) -> None:
    """Drift, delayed-label quality, freshness and health reports once; exit 0 pass, 1 fail."""
    raise typer.Exit(_monitor_once(_settings(), model))


@monitor_app.command("schedule")
def monitor_schedule(
    every: Annotated[str, typer.Option(help="period, e.g. 1h or 30s")] = "1h",
    model: Annotated[str, typer.Option(help="which model: fraud")] = "fraud",
    max_runs: Annotated[int | None, typer.Option(help="stop after this many runs")] = None,
    print_cron: Annotated[bool, typer.Option(help="print the crontab line and exit")] = False,
) -> None:
    """`rtml monitor run` every period (or print the cron line); exits with the last status."""
    s = _settings()
    period = _parse_every(every)
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


@monitor_app.command("drift-check")
def monitor_drift_check(
    reference_days: Annotated[str, typer.Option(help="FIRST:END day indexes (end excluded)")],
    current_days: Annotated[str, typer.Option(help="FIRST:END day indexes (end excluded)")],
) -> None:
    """Feature drift between two periods of the generated data (see --drift-from-day)."""
    import pandas as pd

    from monitoring.fraud.backtest import FEATURES, period_drift

    s = _settings()
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


@monitor_app.command("labels")
def monitor_labels(
    delay: Annotated[str, typer.Option(help="labels visible this long after the payment")] = "2d",
) -> None:
    """(Re)publish the delayed labels of the generated transactions."""
    import pandas as pd

    from monitoring.fraud.labels import write_labels

    s = _settings()
    delay_s = _parse_every(delay, option="--delay")
    path = s.raw_dir / "transactions.parquet"
    if not path.exists():
        typer.echo(f"rtml monitor: no {path} (run `rtml data generate`)", err=True)
        raise typer.Exit(2)
    out = write_labels(pd.read_parquet(path), s.labels_path, delay_s=delay_s)
    typer.echo(f"labels visible {delay} after each payment -> {out}")
