"""`rtml recs`: the recommendation scenario's own jobs (L2 precompute, replay, stream backfill)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from rtml.cli.common import need_redis, settings

app = typer.Typer(no_args_is_help=True, help="Recommendation jobs.")


@app.command("precompute")
def precompute(
    top: Annotated[int, typer.Option(help="the most active users to precompute")] = 10_000,
) -> None:
    """L2: candidates and profile of the most active users, for an hour; the popular lists."""
    from pipelines.recs.precompute import precompute as run

    s = settings("recs")
    need_redis(s)
    r = run(s, top=top)
    typer.echo(f"L2: {r.written:,} of {r.users:,} users in {r.seconds:.1f}s "
               f"(TTL {s.entity_cache_ttl_s:g}s); popular list of {r.popular}")


@app.command("produce")
def produce(
    rate: Annotated[float, typer.Option(help="events per second")] = 1000.0,
    duration: Annotated[float | None, typer.Option(help="seconds (default: all rows)")] = None,
    last_hours: Annotated[float, typer.Option(help="replay the last N hours of history")] = 24,
    own_times: Annotated[bool, typer.Option(
        help="keep each event's own time (default: stamp it with the send time)")] = False,
) -> None:
    """Replay simulated shop events onto `rtml:recs:events`."""
    import pandas as pd

    from pipelines.recs.produce import produce as run

    s = settings("recs")
    need_redis(s)
    events = pd.read_parquet(s.data_dir / "recs" / "events.parquet")
    events = events[events["ts"] > events["ts"].max() - pd.Timedelta(hours=last_hours)]
    out = run(settings=s, events=events, rate=rate, duration=duration, own_times=own_times)
    typer.echo(f"sent {out['sent']:,} events in {out['seconds']:.1f}s "
               f"({out['achieved_rate']:,.0f}/s)")


@app.command("stream-backfill")
def stream_backfill(
    until: Annotated[str | None, typer.Option(help="ISO time (default: the last event)")] = None,
) -> None:
    """The streamed views' offline files: stock as of `until`, empty session/trending files."""
    import pandas as pd

    from pipelines.recs.stream_backfill import write_stock

    s = settings("recs")
    folder = s.data_dir / "recs"
    events = pd.read_parquet(folder / "events.parquet")
    at = (datetime.fromisoformat(until).astimezone(UTC) if until
          else pd.Timestamp(events["ts"].max()).to_pydatetime())
    path = write_stock(pd.read_parquet(folder / "items.parquet"), events, at, s.features_dir)
    typer.echo(f"stock as of {at.isoformat()} -> {path}")
