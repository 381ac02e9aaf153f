"""`rtml redis`: use the configured Redis, or start and stop the embedded Valkey."""

from __future__ import annotations

import typer

from rtml.cli.common import need_redis, settings
from rtml.redis.embedded import stop_embedded

app = typer.Typer(no_args_is_help=True, help="The Redis online store / embedded Valkey.")


@app.command("ensure")
def redis_ensure() -> None:
    """Use the Redis at RTML_REDIS_ADDRESS, or start the embedded one there."""
    s = settings()
    need_redis(s)
    typer.echo(f"redis: {s.redis_address} answers")


@app.command("stop")
def redis_stop() -> None:
    """Stop the embedded Valkey rtml started (a Redis rtml did not start is left alone)."""
    s = settings()
    stopped = stop_embedded(s)
    typer.echo("stopped" if stopped else f"no embedded server of rtml's on {s.redis_address}")
