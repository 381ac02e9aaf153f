"""`rtml bench`: open-loop load, side by side, saturation and cost, for a registered scenario.

The benchmarks themselves live in `benchmarks/` (imported when a command runs); this module
turns options into their arguments and takes the service to start from the scenario registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rtml.cli.common import floats, need_redis, path_or, scenario, settings

app = typer.Typer(help="Benchmarks: open-loop load, side by side, saturation, cost.")


@app.callback(invoke_without_command=True)
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
    scenario_name: Annotated[str, typer.Option(
        "--scenario", help="whose service and requests (the registry's)")] = "fraud",
    skews: Annotated[str, typer.Option(help="recs: comma-separated user-activity skews")] = (
        "0.8,1.0,1.2"),
) -> None:
    """Open-loop load on /score at fixed rates; writes benchmarks/results/*.json.

    Uses the service at --url, or starts one. Subcommands: side-by-side (naive/stock/rtml/floor),
    saturate, cost. `--scenario recs`: GET /recommendations at each rate and skew, cache off
    then L2 on (one server each), the L1/L2 hit rates measured (`benchmarks.recs_load`).
    """
    if ctx.invoked_subcommand is not None:
        return
    sc = scenario(scenario_name, needs="bench_requests")
    if sc.name == "recs":
        from benchmarks import recs_load
        from benchmarks.record import RESULTS

        s = settings(scenario_name)
        need_redis(s)
        raise typer.Exit(recs_load.bench(
            s, url=url, rates=floats(rates, "--rates"), duration=duration,
            skews=floats(skews, "--skews"), out_dir=path_or(results_dir, RESULTS),
            service=sc.service))
    from benchmarks.load import DOCS_IMG
    from benchmarks.load import main as bench_main
    from benchmarks.record import RESULTS
    from benchmarks.servers import ServerError

    s = settings(scenario_name)
    need_redis(s)
    try:
        code = bench_main(s, url=url, duration=duration, skew=skew,
                          rates=floats(rates, "--rates"), out_dir=path_or(results_dir, RESULTS),
                          hist=None if hist == "none" else path_or(hist,
                                                                 DOCS_IMG / "latency-hist.png"),
                          service=sc.service)
    except ServerError as exc:
        typer.echo(f"rtml bench: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@app.command("side-by-side")
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
    scenario_name: Annotated[str, typer.Option(
        "--scenario", help="whose service and requests (the registry's)")] = "fraud",
) -> None:
    """One run: naive (Postgres SQL), stock (feast serve + model), rtml and floor."""
    sc = scenario(scenario_name, needs="bench_requests")
    from benchmarks import side_by_side as sbs
    from benchmarks.record import RESULTS
    from benchmarks.servers import ServerError

    s = settings(scenario_name)
    need_redis(s)
    try:
        code = sbs.run(s, targets=[t.strip() for t in targets.split(",") if t.strip()],
                       rate=rate, duration=duration, url=url, skew=skew, dsn=pg_dsn,
                       port_base=port_base, out_dir=path_or(results_dir, RESULTS),
                       hist=None if hist == "none" else path_or(hist, sbs.DOCS_HIST),
                       stock_modes=tuple(m.strip() for m in stock_modes.split(",") if m.strip()),
                       service=sc.service)
    except (sbs.PostgresUnavailable, ServerError, ValueError) as exc:
        typer.echo(f"rtml bench: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@app.command("saturate")
def bench_saturate(
    path: Annotated[str, typer.Option(help="/score, /score_batch or both")] = "both",
    budget_ms: Annotated[float, typer.Option(help="stop once p99 exceeds this")] = 50.0,
    start: Annotated[float, typer.Option(help="first /score rate (requests/s)")] = 100.0,
    batch_start: Annotated[float, typer.Option(help="first /score_batch rate (requests/s)")
                           ] = 2.0,
    factor: Annotated[float, typer.Option(help="rate multiplier per step")] = 1.5,
    step_s: Annotated[float, typer.Option(help="seconds per step")] = 10.0,
    batch: Annotated[int, typer.Option(help="rows per /score_batch request (above "
                                             "RTML_<SCENARIO>__BATCH_MAX_SIZE: see "
                                             "docs/benchmarks.md)")] = 50,
    url: str = "http://127.0.0.1:3000",
    compare_batching: Annotated[bool, typer.Option(
        help="start rtml twice, RTML_<SCENARIO>__BATCHING=true and false, and measure "
             "both")] = False,
    port_base: Annotated[int, typer.Option(help="first port for servers it starts")] = 0,
    workers: Annotated[str | None, typer.Option(
        help="start rtml once per worker count (RTML_SERVE_WORKERS), e.g. 1,2")] = None,
    results_dir: Annotated[str | None, typer.Option(help="default benchmarks/results")] = None,
    target: Annotated[str, typer.Option(help="rtml, or naive / stock (their /score)")] = "rtml",
    pg_dsn: Annotated[str, typer.Option(help="Postgres for --target naive")] = (
        "host=127.0.0.1 port=5432 user=postgres dbname=rtml_bench"),
    stock_mode: Annotated[str, typer.Option(help="--target stock: the on-demand view's mode "
                                                 "in feast serve (pandas or python)")] = "pandas",
    scenario_name: Annotated[str, typer.Option(
        "--scenario", help="whose service and requests (the registry's)")] = "fraud",
) -> None:
    """Step the rate until p99 > budget or errors: scored transactions/s (and per core).

    Reports the saturation point under two rules: no request shed, and up to 1% shed (503).
    """
    sc = scenario(scenario_name, needs="bench_requests")
    from benchmarks import saturate as sat
    from benchmarks.record import RESULTS
    from benchmarks.servers import ServerError
    from benchmarks.side_by_side import PostgresUnavailable

    s = settings(scenario_name)
    need_redis(s)
    paths = ["/score", "/score_batch"] if path == "both" else [path]
    try:
        code = sat.run(s, paths=paths, budget_ms=budget_ms, start=start,
                       batch_start=batch_start, factor=factor,
                       step_s=step_s, batch=batch, url=url, compare_batching=compare_batching,
                       port_base=port_base, out_dir=path_or(results_dir, RESULTS),
                       target=target, dsn=pg_dsn, stock_mode=stock_mode, service=sc.service,
                       workers=[int(w) for w in workers.split(",")] if workers else None)
    except (ServerError, ValueError, PostgresUnavailable) as exc:
        typer.echo(f"rtml bench: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@app.command("cost")
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
    out = cost.write(settings(), source=src, capacities=capacity, rule=rule, text=text,
                     out_dir=path_or(results_dir, RESULTS), **options)
    typer.echo(f"results: {out}")


@app.command("offline")
def bench_offline(
    stores: Annotated[str, typer.Option(help="Feast offline stores: duckdb,file,spark,postgres")
                      ] = "duckdb,file",
    rows: Annotated[str, typer.Option(help="entity rows per training set")] = "1000000",
    chunk_days: Annotated[str, typer.Option(help="days per get_historical_features call")] = "7",
    timeout: Annotated[float, typer.Option(help="seconds before one build is stopped")] = 1800,
    sinks: Annotated[str, typer.Option(
        help="parquet (chunk by chunk to a Parquet dataset), frame (one DataFrame in memory)")
    ] = "parquet",
    results_dir: Annotated[str | None, typer.Option(help="default benchmarks/results")] = None,
) -> None:
    """Point-in-time training sets of fraud_model_v2 on each offline store: time and peak RSS."""
    from benchmarks.offline_pit import run

    out = run(settings(scenario="fraud"), stores=stores.split(","),
              rows=[int(r) for r in rows.split(",")],
              chunk_days=[int(c) for c in chunk_days.split(",")], timeout_s=timeout,
              sinks=sinks.split(","), results_dir=Path(results_dir) if results_dir else None)
    typer.echo(f"wrote {out}")


@app.command("depth")
def bench_depth(
    customers: Annotated[int, typer.Option(help="customers in every world")] = 500,
    factors: Annotated[str, typer.Option(help="history depths: payments per customer x these")
                       ] = "1,10,100",
    rate: Annotated[float, typer.Option(help="requests per second")] = 200.0,
    duration: Annotated[float, typer.Option(help="measured seconds per target and depth")] = 30.0,
    days: Annotated[int, typer.Option(help="days of history (the naive SQL reads 30-37)")] = 40,
    targets: Annotated[str, typer.Option(help="naive,rtml")] = "naive,rtml",
    pg_dsn: Annotated[str | None, typer.Option(help="Postgres for the naive target")] = None,
    results_dir: Annotated[str | None, typer.Option(help="default benchmarks/results")] = None,
) -> None:
    """p99 as history deepens: the naive per-request SQL against rtml, same rate and customers."""
    from benchmarks.cost_growth import StepFailed, run_depth
    from benchmarks.naive_server import DEFAULT_DSN
    from benchmarks.record import RESULTS
    from benchmarks.servers import ServerError
    from benchmarks.side_by_side import PostgresUnavailable

    try:
        code, _ = run_depth(customers=customers, factors=floats(factors, option="--factors"),
                            rate=rate, duration=duration, days=days,
                            targets=tuple(targets.split(",")), dsn=pg_dsn or DEFAULT_DSN,
                            out_dir=path_or(results_dir, RESULTS))
    except (StepFailed, ServerError, PostgresUnavailable) as exc:
        typer.echo(f"rtml bench depth: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@app.command("scale")
def bench_scale(
    customers: Annotated[str, typer.Option(help="customer counts")] = "5000,100000,1000000",
    rate: Annotated[float, typer.Option(help="requests per second")] = 200.0,
    duration: Annotated[float, typer.Option(help="measured seconds per count")] = 30.0,
    days: Annotated[int, typer.Option(help="days of history per world")] = 8,
    results_dir: Annotated[str | None, typer.Option(help="default benchmarks/results")] = None,
) -> None:
    """The rtml service's p99 and Redis memory per entity as the customers grow."""
    from benchmarks.cost_growth import StepFailed, run_scale
    from benchmarks.record import RESULTS
    from benchmarks.servers import ServerError

    try:
        code, _ = run_scale(customers=[int(c) for c in customers.split(",")], rate=rate,
                            duration=duration, days=days, out_dir=path_or(results_dir, RESULTS))
    except (StepFailed, ServerError) as exc:
        typer.echo(f"rtml bench scale: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@app.command("chaos")
def bench_chaos(
    rate: Annotated[float, typer.Option(help="requests per second on /score")] = 100.0,
    before: Annotated[float, typer.Option(help="seconds of load before Redis is killed")] = 10.0,
    down: Annotated[float, typer.Option(help="seconds Redis stays down")] = 5.0,
    after: Annotated[float, typer.Option(help="seconds of load after it is back")] = 20.0,
    results_dir: Annotated[str | None, typer.Option(help="default benchmarks/results")] = None,
) -> None:
    """Redis killed under load: failed requests, fallbacks, recovery, p99 per phase.

    Runs on a Valkey of its own (a copy of the configured Redis's keys, on a free port).
    """
    from benchmarks import chaos
    from benchmarks.record import RESULTS
    from benchmarks.servers import ServerError

    s = settings("fraud")
    need_redis(s)
    try:
        out, summary = chaos.run(s, rate=rate, before=before, down=down, after=after,
                                 service=scenario("fraud").service,
                                 out_dir=path_or(results_dir, RESULTS))
    except ServerError as exc:
        typer.echo(f"rtml bench chaos: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(chaos.table(summary))
    typer.echo(f"results: {out}")
    raise typer.Exit(0 if summary["failed"] == 0 else 1)


@app.command("overload")
def bench_overload(
    factor: Annotated[float, typer.Option(help="offered rate as a multiple of capacity")] = 2.0,
    duration: Annotated[float, typer.Option(help="seconds at the offered rate")] = 20.0,
    capacity: Annotated[float | None, typer.Option(
        help="/score requests/s the service holds (default: measured, as saturate's no-shed "
             "point)")] = None,
    budget_ms: Annotated[float, typer.Option(help="the admitted requests' p99 budget")] = 50.0,
    url: Annotated[str, typer.Option(help="a service already running here is used")] = (
        "http://127.0.0.1:3000"),
    results_dir: Annotated[str | None, typer.Option(help="default benchmarks/results")] = None,
) -> None:
    """Offer factor x capacity: shed share, shed answer latency, admitted p99 vs the budget."""
    from benchmarks import overload
    from benchmarks.record import RESULTS
    from benchmarks.servers import ServerError

    s = settings("fraud")
    need_redis(s)
    try:
        out, summary = overload.run(s, factor=factor, duration=duration, capacity=capacity,
                                    url=url, service=scenario("fraud").service,
                                    budget_ms=budget_ms, out_dir=path_or(results_dir, RESULTS))
    except ServerError as exc:
        typer.echo(f"rtml bench overload: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(overload.table(summary))
    typer.echo(f"results: {out}")
    raise typer.Exit(0 if summary["other_failures"] == 0 else 1)


@app.command("soak")
def bench_soak(
    minutes: Annotated[float, typer.Option(help="length of the run")] = 10.0,
    share: Annotated[float, typer.Option(help="offered rate as a share of capacity")] = 0.5,
    capacity: Annotated[float | None, typer.Option(
        help="/score requests/s the service holds (default: measured)")] = None,
    every: Annotated[float, typer.Option(help="seconds per reported interval")] = 60.0,
    stream_rate: Annotated[float, typer.Option(help="events/s the producer sends")] = 200.0,
    results_dir: Annotated[str | None, typer.Option(help="default benchmarks/results")] = None,
) -> None:
    """/score at a share of capacity with the stream running: RSS and p99 per interval."""
    from benchmarks import soak
    from benchmarks.record import RESULTS
    from benchmarks.servers import ServerError

    s = settings("fraud")
    need_redis(s)
    sc = scenario("fraud", needs="flow")
    assert sc.flow is not None
    try:
        out, summary = soak.run(s, minutes=minutes, share=share, capacity=capacity,
                                every_s=min(every, minutes * 60), stream_rate=stream_rate,
                                service=sc.service, flow=sc.flow,
                                out_dir=path_or(results_dir, RESULTS))
    except ServerError as exc:
        typer.echo(f"rtml bench soak: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(soak.table(summary))
    typer.echo(f"results: {out}")
    raise typer.Exit(0 if summary["failed"] == 0 else 1)
