"""Every bento builds (`bentos/<s>/bentofile.yaml`), with the Dockerfile `containerize` uses.

No container runtime here: `bentoml containerize <name>:latest` (README "Production profile")
builds the image from `env/docker/Dockerfile` in the bento, which `bentoml build` writes; that
file, its Python, its install of the locked requirements and its entry point are checked here,
and that the bento carries nothing secret or generated (no data, no model, no `.rtml/`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.bentos import Built, bentofiles
from tests.support.secret_scan import scan_files

BIN = Path(sys.executable).parent
NAMES = [f.parent.name for f in bentofiles()]


def test_every_bentofile_is_built_and_listed(built_bentos: dict[str, Built]):
    assert "fraud" in NAMES and sorted(built_bentos) == sorted(NAMES)
    home = next(iter(built_bentos.values())).path.parents[2]
    listed = subprocess.run(
        [str(BIN / "bentoml"), "list", "-o", "json"], check=True, capture_output=True, text=True,
        env={**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}).stdout
    assert sorted(b["tag"].split(":")[0] for b in json.loads(listed)) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_the_bento_serves_what_its_bentofile_names(name: str, built_bentos: dict[str, Built]):
    built = built_bentos[name]
    assert built.info["name"] == built.spec["name"] == name
    assert built.info["service"] == built.spec["service"]
    module = built.spec["service"].split(":")[0]
    assert (built.src / (module.replace(".", "/") + ".py")).is_file()


@pytest.mark.parametrize("name", NAMES)
def test_the_bento_has_a_dockerfile_on_python_311_with_the_locked_requirements(
        name: str, built_bentos: dict[str, Built]):
    built = built_bentos[name]
    text = built.dockerfile.read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 1
    assert "python:3.11" in text or "python3.11" in text or 'PYTHON_VERSION="3.11' in text, text
    assert "requirements.txt" in text and "ENTRYPOINT" in text
    assert (built.dockerfile.parent / "entrypoint.sh").is_file()
    locked = (built.path / "env" / "python" / "requirements.txt").read_text()
    for pin in ("bentoml==", "feast==", "redis==", "xgboost=="):
        assert pin in locked, pin


@pytest.mark.parametrize("name", NAMES)
def test_the_bento_carries_no_data_no_state_and_no_secret(name: str,
                                                        built_bentos: dict[str, Built]):
    built = built_bentos[name]
    top = {p.name for p in built.src.iterdir()}
    assert not top & {"data", "artifacts", ".rtml", "reports", ".venv", ".env", "tests"}, top
    files = sorted(p for p in built.path.rglob("*") if p.is_file())
    assert scan_files(files, root=built.path) == []
