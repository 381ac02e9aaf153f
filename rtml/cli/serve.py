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
    # The `bentoml` installed beside this interpreter: `.venv/bin/rtml serve` works without an
    # activated venv (a bare "bentoml" looked it up on PATH and failed with a traceback there).
    cmd = serve_command(sc.service, port=port, host=None)
    if not os.access(cmd[0], os.X_OK):
        raise typer.BadParameter(f"no bentoml at {cmd[0]}: run `make venv` (installs the lock)")
    os.execv(cmd[0], cmd)
