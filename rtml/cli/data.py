"""`rtml data`: a scenario's synthetic data.

fraud: payments with their delayed labels; recs: a shop's sessions, items and stock; sensors: a
plant with injected faults.
"""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Annotated

import typer

from rtml.cli.common import parse_every, scenario, settings

app = typer.Typer(no_args_is_help=True, help="Synthetic data.")


@app.command("generate")
def data_generate(
    days: Annotated[int | None, typer.Option(help="days of history (fraud: 90, recs: 21)")] = None,
    customers: Annotated[int, typer.Option(help="number of customers")] = 5000,
    terminals: Annotated[int, typer.Option(help="number of terminals")] = 10000,
    tx_scale: Annotated[float, typer.Option(
        help="fraud: payments per customer a day x this (history depth)")] = 1.0,
    seed: Annotated[int, typer.Option(help="random seed: same seed, same data")] = 0,
    start: Annotated[str | None, typer.Option(help="first day YYYY-MM-DD (default: "
                                                    "so the data ends yesterday)")] = None,
    drift_from_day: Annotated[int | None, typer.Option(
        help="inject drift from this day index on (0 = first day)")] = None,
    drift_amount: Annotated[float, typer.Option(
        help="with --drift-from-day: multiply amounts by this factor")] = 1.5,
    users: Annotated[int, typer.Option(help="recs: number of users")] = 20_000,
    items: Annotated[int, typer.Option(help="recs: number of items")] = 10_000,
    user_skew: Annotated[float, typer.Option(
        help="recs: Zipf exponent of user activity (sets the cache hit rate)")] = 1.0,
    sessions_per_day: Annotated[int, typer.Option(
        help="recs: sessions a day (~18 events each: 2750 a day for 21 days is ~1 M events)")]
    = 2750,
    label_delay: Annotated[str, typer.Option(
        help="labels (chargebacks) become visible this long after the payment, e.g. 2d")] = "2d",
    scenario_name: Annotated[str, typer.Option(
        "--scenario", help="whose data: fraud (payments), recs (a shop) or sensors (a plant)")
    ] = "fraud",
    machines: Annotated[int, typer.Option(help="sensors: number of machines")] = 6,
    hours: Annotated[float, typer.Option(help="sensors: hours of readings")] = 1.5,
    rate_hz: Annotated[float | None, typer.Option(
        help="sensors: every machine's rate (default: each draws 1, 2, 5 or 10 Hz)")] = None,
) -> None:
    """Simulate a scenario's data: fraud (default), recs or sensors (`--scenario`)."""
    if scenario_name == "recs":
        _generate_recs(days=days or 21, users=users, items=items, seed=seed,
                       user_skew=user_skew, drift_from_day=drift_from_day,
                       sessions_per_day=sessions_per_day)
        return
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
    days = days or 90
    from monitoring.fraud.labels import write_labels
    from pipelines.fraud.simulate import default_start, simulate, write

    s = settings()
    first = date.fromisoformat(start) if start else default_start(days)
    delay = parse_every(label_delay, option="--label-delay")
    t0 = time.perf_counter()
    try:
        data = simulate(customers=customers, terminals=terminals, days=days, start=first,
                        seed=seed, progress=True, drift_from_day=drift_from_day,
                        drift_amount=drift_amount if drift_from_day is not None else 1.0,
                        tx_scale=tx_scale)
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


def _generate_recs(*, days: int, users: int, items: int, seed: int, user_skew: float,
                   drift_from_day: int | None, sessions_per_day: int) -> None:
    from pipelines.recs.simulate import simulate

    s = settings("recs")
    t0 = time.perf_counter()
    try:
        cat = simulate(s, seed=seed, n_users=users, n_items=items, days=days,
                       user_skew=user_skew, drift_from_day=drift_from_day,
                       sessions_per_day=sessions_per_day)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    counts = cat.events["type"].value_counts()
    kinds = ", ".join(f"{counts.get(t, 0):,} {t}" for t in ("click", "cart", "order", "restock"))
    typer.echo(f"{len(cat.events):,} events ({kinds}) "
               f"of {users:,} users on {items:,} items over {days} days in "
               f"{time.perf_counter() - t0:.1f}s -> {s.data_dir / 'recs'}")
