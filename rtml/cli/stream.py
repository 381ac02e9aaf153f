"""`rtml stream`: replay events onto the streams; run a scenario's fresh-features flow."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from rtml.cli.common import need_redis, scenario, settings
from rtml.redis import connect
from rtml.runtime import flow_command
from rtml.settings import Settings

app = typer.Typer(no_args_is_help=True, help="The transaction event stream.")


@app.command("produce")
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

    s = settings()
    need_redis(s)
    tx = pd.read_parquet(s.raw_dir / "transactions.parquet")
    tx = tx[tx["day"] > tx["day"].max() - last_days]
    out = produce(address=s.redis_address, transactions=tx, rate=rate,
                  duration=duration, partitions=s.stream_partitions, own_times=own_times)
    typer.echo(f"sent {out['sent']:,} events in {out['seconds']:.1f}s "
               f"({out['achieved_rate']:,.0f}/s)")


def stream_command(settings: Settings, *, workers: int = 1, process_id: int | None = None,
                   addresses: str | None = None, model: str = "fraud") -> list[str]:
    """The `python -m bytewax.run` line for a scenario's fresh-features flow (`rtml.runtime`).

    Its recovery store is the one of the online store at `RTML_REDIS_ADDRESS`
    (`rtml.features.online_store.recovery_dir`), initialised when new.
    """
    flow = scenario(model, needs="flow").flow
    assert flow is not None
    return flow_command(settings, flow, name=model, workers=workers, process_id=process_id,
                        addresses=addresses, say=lambda m: typer.echo(m, err=True))


@app.command("run")
def stream_run(
    workers: Annotated[int, typer.Option("-w", help="workers in this process")] = 1,
    process_id: Annotated[int | None, typer.Option("-i", help="this process's index")] = None,
    addresses: Annotated[str | None, typer.Option("-a", help='"h:p;h:p" of all')] = None,
    model: Annotated[str, typer.Option("--scenario", help="whose flow")] = "fraud",
) -> None:
    """Run the fresh-features flow (Redis Streams -> windows -> Feast push) until stopped."""
    from rtml.streams.stop import clear_clean_stop

    scenario(model, needs="flow")
    s = settings(model)
    need_redis(s)
    # A flow runs again: its silence is a failure from now on, whatever stopped the last one.
    clear_clean_stop(connect(s))
    cmd = stream_command(s, workers=workers, process_id=process_id, addresses=addresses,
                         model=model)
    typer.echo("running: " + " ".join(cmd), err=True)
    os.chdir(s.repo_root)
    os.execv(cmd[0], cmd)
