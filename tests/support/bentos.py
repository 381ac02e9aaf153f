"""`bentoml build` of every bento in the repo (each `bentos/<s>/bentofile.yaml`), once a session.

The real CLI, a private BentoML home, no model needed (services load theirs at start-up). A new
scenario's bento is picked up by its bentofile alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from rtml.settings import REPO_ROOT

BIN = Path(sys.executable).parent


def bentofiles(root: Path = REPO_ROOT) -> list[Path]:
    """Every bento's build file, in name order."""
    return sorted(root.glob("bentos/*/bentofile.yaml"))


@dataclass(frozen=True)
class Built:
    """One built bento: what its bentofile asked for and what `bentoml get` reports."""

    bentofile: Path
    spec: dict
    info: dict
    path: Path  # the bento folder: bento.yaml, src/, env/

    @property
    def src(self) -> Path:
        """The build context the bento carries (what a container imports)."""
        return self.path / "src"

    @property
    def dockerfile(self) -> Path:
        """The Dockerfile `bentoml containerize` builds from."""
        return self.path / "env" / "docker" / "Dockerfile"


def build_all(home: Path) -> dict[str, Built]:
    """Build every bento into the BentoML home `home`; name -> `Built`."""
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    out: dict[str, Built] = {}
    for bentofile in bentofiles():
        spec = yaml.safe_load(bentofile.read_text())
        proc = subprocess.run(
            [str(BIN / "bentoml"), "build", "-f", str(bentofile.relative_to(REPO_ROOT)), "."],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"bentoml build {bentofile}:\n{proc.stdout}\n{proc.stderr}"
        got = subprocess.run([str(BIN / "bentoml"), "get", f"{spec['name']}:latest", "-o", "json"],
                             env=env, check=True, capture_output=True, text=True).stdout
        info = json.loads(got)
        out[spec["name"]] = Built(bentofile=bentofile, spec=spec, info=info,
                                  path=home / "bentos" / spec["name"] / info["version"])
    return out
