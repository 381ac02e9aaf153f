"""`rtml serve <scenario>`: `bentoml serve` the scenario's service, in this process."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from rtml.cli.common import need_redis, scenario, settings
from rtml.cli.scenarios import REGISTRY
from rtml.runtime import serve_command


def serve(
    model: Annotated[str, typer.Argument(
        help=f"which service: {', '.join(REGISTRY.names)}")] = "fraud",
    port: int = 3000,
) -> None:
    """`bentoml serve` the scenario's service (the registry's) from the repo root."""
    sc = scenario(model)
    s = settings(model)
    need_redis(s)
    os.chdir(s.repo_root)
    cmd = serve_command(sc.service, port=port, host=None, bentoml="bentoml")
    os.execvp(cmd[0], cmd)
