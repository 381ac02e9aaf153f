"""`rtml demo <scenario>`: a scenario end to end on one machine, started and stopped at once."""

from __future__ import annotations

from typing import Annotated

import typer

from rtml.cli.common import scenario, settings
from rtml.cli.scenarios import REGISTRY


def demo(
    model: Annotated[str, typer.Argument(
        metavar="SCENARIO", help=f"which scenario: {', '.join(REGISTRY.names)}")] = "fraud",
    days: int = 90, customers: int = 5000, terminals: int = 10000, replay: int = 1000,
    port: int = 3000,
    stream: Annotated[bool, typer.Option(help="fraud_model_v2 with the live stream")] = True,
    drift_amount: Annotated[float, typer.Option(
        "--drift", help="inject drift: every payment from now on costs this many times more "
                        "(e.g. 1.5); `rtml monitor run` then fails")] = 1.0,
) -> None:
    """Generate, build features, apply, materialize, train, serve, stream, score; print it."""
    sc = scenario(model, needs="demo")
    if not drift_amount > 0:
        raise typer.BadParameter(f"--drift {drift_amount:g}: must be > 0 (1 = no drift)")
    run_demo = sc.load("demo")
    raise typer.Exit(run_demo(settings(sc.name), sc, days=days, customers=customers,
                              terminals=terminals, replay=replay, port=port, stream=stream,
                              drift_amount=drift_amount))
