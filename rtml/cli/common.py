"""What every command group shares: settings, the Redis check, option parsing, scenario lookup."""

from __future__ import annotations

from pathlib import Path

import typer

from rtml.redis.embedded import RedisUnavailableError, ensure_redis
from rtml.scenarios import Scenario, UnknownScenarioError
from rtml.settings import Settings

DEFAULT_SCENARIO = "fraud"


def settings(scenario: str | None = DEFAULT_SCENARIO) -> Settings:
    """The environment's settings for `scenario`, read when a command runs (never at import).

    The scenario's own knobs are `RTML_<SCENARIO>__*` (rtml/settings.py).
    """
    return Settings(scenario=scenario)


def need_redis(s: Settings) -> None:
    """Use the configured Redis or start the embedded one; one line and exit 2 when neither."""
    try:
        ensure_redis(s, say=lambda m: typer.echo(m, err=True))
    except RedisUnavailableError as exc:
        typer.echo(f"rtml: {exc}", err=True)
        raise typer.Exit(2) from None


def scenario(name: str, *, needs: str | None = None) -> Scenario:
    """The registered scenario `name` (and its part `needs`), or one line naming the known ones.

    Exit 2 like any bad argument, without a traceback.
    """
    from rtml.cli.scenarios import REGISTRY

    try:
        found = REGISTRY.get(name)
        if needs is not None and getattr(found, needs) is None:
            raise UnknownScenarioError(f"scenario {name!r} has no {needs}; with one: "
                                       + ", ".join(s.name for s in REGISTRY
                                                   if getattr(s, needs) is not None))
    except UnknownScenarioError as exc:
        typer.echo(f"rtml: {exc}", err=True)
        raise typer.Exit(2) from None
    return found


def parse_every(text: str, option: str = "--every") -> float:
    """Seconds in a period like 30s, 10m, 24h or 2d."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        value = float(text[:-1]) * units[text[-1]]
    except (KeyError, ValueError, IndexError):
        raise typer.BadParameter(f"{option} {text!r}: use a number and s/m/h/d, e.g. 24h") from None
    if value < 0:
        raise typer.BadParameter(f"{option} {text!r}: must not be negative")
    return value


def floats(text: str, option: str) -> list[float]:
    """Comma-separated numbers."""
    try:
        return [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise typer.BadParameter(f"{option} {text!r}: comma-separated numbers") from None


def path_or(value: str | None, default: Path) -> Path:
    """An optional path option, or its default."""
    return Path(value) if value else default
