"""`rtml data`: synthetic data (fraud: history and delayed labels; sensors: a plant)."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Annotated

import typer

from rtml.cli.common import parse_every, scenario, settings

app = typer.Typer(no_args_is_help=True, help="Synthetic data.")


@app.command("generate")
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
    scenario_name: Annotated[str, typer.Option(
        "--scenario", help="whose data: fraud (transactions) or sensors (a plant)")] = "fraud",
    machines: Annotated[int, typer.Option(help="sensors: number of machines")] = 6,
    hours: Annotated[float, typer.Option(help="sensors: hours of readings")] = 1.5,
    rate_hz: Annotated[float | None, typer.Option(
        help="sensors: every machine's rate (default: each draws 1, 2, 5 or 10 Hz)")] = None,
) -> None:
    """Simulate a scenario's data: fraud (default) or sensors (`--scenario sensors`)."""
    if scenario_name != "fraud":
        gen = scenario(scenario_name, needs="generator").load("generator")
        s = settings(scenario_name)
        try:
            lines = gen(s.raw_dir / scenario_name, machines=machines, hours=hours, seed=seed,
                        rate_hz=rate_hz)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        for line in lines:
            typer.echo(line)
        return
    from monitoring.fraud.labels import write_labels
    from pipelines.fraud.simulate import default_start, simulate, write

    s = settings()
    first = date.fromisoformat(start) if start else default_start(days)
    delay = parse_every(label_delay, option="--label-delay")
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
