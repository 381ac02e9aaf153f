"""`rtml train <scenario>`: the scenario's trainer, from the registry, and its summary."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from rtml.cli.common import scenario, settings
from rtml.cli.scenarios import REGISTRY


def train(
    model: Annotated[str, typer.Argument(
        help=f"which model: {', '.join(REGISTRY.names)}")] = "fraud",
    service: Annotated[str | None, typer.Option(
        help="Feast FeatureService (default: the scenario's first: "
             + ", ".join(f"{s.default_feature_service} for {s.name}" for s in REGISTRY)
             + ")")] = None,
    seeds: Annotated[str | None, typer.Option(
        help="also refit with each seed, e.g. 0,1,2, and report average precision per seed "
             "with its spread (the model saved is the first seed's)")] = None,
) -> None:
    """Train on a point-in-time training set; save to the BentoML store; write metrics."""
    sc = scenario(model)
    seed_list = _parse_seeds(seeds) if seeds is not None else None
    trainer = sc.load("trainer")
    s = settings(model)
    t0 = time.perf_counter()
    m = trainer(s, service_name=service or sc.default_feature_service, seeds=seed_list)
    made = m.get("bentoml_tag") or m.get("model_path")  # a BentoML tag, or a model file
    typer.echo(f"trained {made} in {time.perf_counter() - t0:.1f}s on {m['device']}")
    if sc.train_summary:
        for line in sc.load("train_summary")(m):
            typer.echo(line)


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"--seeds {text!r}: use integers separated by commas, "
                                 "e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise typer.BadParameter(f"--seeds {text!r}: give distinct integers, e.g. 0,1,2")
    return seeds
