"""`rtml edge`: the sensors detector at the machine, with no Redis, Feast or BentoML at run time.

Everything heavy is imported inside the commands, and only the edge's own modules: `rtml edge run`
must start in well under 2 s on a small device and never load the server stack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(no_args_is_help=True, help="The sensors detector at the machine (edge mode).")


def _central(address: str) -> Any:
    from rtml.redis import connect
    from rtml.settings import Settings

    # AUTH/TLS from RTML_REDIS_* like every client; the address is the central plant Redis.
    return connect(Settings(scenario="sensors"), role="cli", address=address, timeout_s=2.0)


@app.command("run")
def edge_run(
    input_: Annotated[str, typer.Option("--input", help="'-' (stdin) or a file of readings: "
                                        "JSON lines or CSV (machine_id,channel,timestamp,value)")],
    alerts: Annotated[Path, typer.Option(help="alerts appended here as JSON lines")],
    outbox: Annotated[Path, typer.Option(help="SQLite outbox: alerts kept until forwarded")],
    model: Annotated[str | None, typer.Option(
        help="detector model file (default: the newest trained sensors model)")] = None,
    follow: Annotated[bool, typer.Option(help="keep reading what is appended to the file")] = False,
    central: Annotated[str | None, typer.Option(
        help="central Redis (redis://host:port) whose rtml:alerts gets each alert once")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Score readings locally; alerts to a JSON-lines file and a durable outbox."""
    from pipelines.sensors.detect import load_detector
    from pipelines.sensors.edge import run
    from pipelines.sensors.readings import parse_reading

    if input_ != "-" and not Path(input_).exists():
        typer.echo(f"rtml edge: no input file {input_}", err=True)
        raise typer.Exit(2)
    try:
        detector = load_detector(model)
    except (FileNotFoundError, OSError, ValueError) as exc:
        typer.echo(f"rtml edge: cannot load the detector model: {exc}", err=True)
        raise typer.Exit(2) from None
    stats = run(detector=detector, parse=parse_reading, source=input_, alerts_path=alerts,
                outbox_path=outbox, follow=follow,
                central=(lambda: _central(central)) if central else None,
                err=lambda m: typer.echo(m, err=True))
    out = stats.summary()
    if as_json:
        typer.echo(json.dumps(out))
    else:
        typer.echo(f"{out['readings']:,} readings ({out['bad']:,} bad), {out['alerts']:,} alerts, "
                   f"{out['forwarded']:,} forwarded, {out['pending']:,} pending in {outbox}; "
                   f"processing p50 {out['process_p50_us']} µs, p99 {out['process_p99_us']} µs")


@app.command("forward")
def edge_forward(
    outbox: Annotated[Path, typer.Option(help="the SQLite outbox of `rtml edge run`")],
    central: Annotated[str, typer.Option(help="central Redis (redis://host:port)")],
) -> None:
    """Forward what an outbox still holds to the central rtml:alerts (each alert once)."""
    import redis

    from pipelines.sensors.edge import forward

    if not outbox.exists():
        typer.echo(f"rtml edge: no outbox {outbox}", err=True)
        raise typer.Exit(2)
    try:
        out = forward(outbox_path=outbox, client=_central(central))
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        typer.echo(f"rtml edge: central Redis {central} unreachable ({exc}); alerts stay in "
                   f"{outbox}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(out))
