"""The `rtml` command: one entry point for the jobs a user runs by hand or on a schedule."""

from __future__ import annotations

import typer

from rtml.cli import (
    bench,
    data,
    demo,
    edge,
    features,
    log,
    monitor,
    recs,
    redis,
    sensors,
    serve,
    stream,
    train,
)
from rtml.cli.stream import stream_command

__all__ = ["app", "stream_command"]

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.command("apply")(features.apply)
app.command("materialize")(features.materialize)
app.command("train")(train.train)
app.command("serve")(serve.serve)
app.command("demo")(demo.demo)
app.add_typer(data.app, name="data")
app.add_typer(features.app, name="features")
app.add_typer(redis.app, name="redis")
app.add_typer(log.app, name="log")
app.add_typer(stream.app, name="stream")
app.add_typer(monitor.app, name="monitor")
app.add_typer(bench.app, name="bench")
app.add_typer(sensors.app, name="sensors")
app.add_typer(edge.app, name="edge")
app.add_typer(recs.app, name="recs")
