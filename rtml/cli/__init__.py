"""The `rtml` command: one entry point for the jobs a user runs by hand or on a schedule.

The command tree is assembled in `rtml.cli.main`, which imports every command group. `run`, the
console entry, builds it only when needed: `rtml edge ...` runs on a device at the machine and must
start in well under 2 s without loading the server stack, so it goes straight to `rtml.cli.edge`.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["app", "run", "stream_command"]


def run() -> None:
    """The `rtml` console script."""
    if sys.argv[1:2] == ["edge"]:
        from rtml.cli.edge import app as edge

        edge(args=sys.argv[2:], prog_name="rtml edge")
        return
    from rtml.cli.main import app

    app()


def __getattr__(name: str) -> Any:  # `from rtml.cli import app` builds the whole tree
    if name in ("app", "stream_command"):
        from rtml.cli import main

        return getattr(main, name)
    raise AttributeError(f"module 'rtml.cli' has no attribute {name!r}")
