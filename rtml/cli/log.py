"""`rtml log drain`: the prediction stream into partitioned parquet, for monitoring."""

from __future__ import annotations

from typing import Annotated

import typer

from rtml.cli.common import need_redis, scenario, settings
from rtml.redis import connect

app = typer.Typer(no_args_is_help=True, help="The prediction log.")


@app.command("drain")
def log_drain(
    batch: Annotated[int, typer.Option(
        min=1, help="stream entries written and acknowledged at a time")] = 50_000,
    model: Annotated[str, typer.Option(help="whose log (recs: data/predictions/recs/)")] = "fraud",
) -> None:
    """Move the prediction stream into partitioned parquet under data/predictions/."""
    from rtml.serving.predlog import drain

    s = settings(scenario(model).name)
    need_redis(s)
    n = drain(connect(s), stream=s.prediction_stream,
              out_dir=s.predictions_dir, batch=batch)
    typer.echo(f"{n} predictions -> {s.predictions_dir}")
