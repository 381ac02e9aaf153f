"""`bentoml build` of the fraud bento: the real CLI, a private BentoML home, no model needed.

The service loads its model at start-up, not at import, so a bento builds on a machine with no
trained model (CI); what must hold is that the bento names the service once and carries the kit,
the scenario and the Feast wiring, and nothing of the CLI or the demo.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.bentos import Built

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
ENTRY = "bentos.fraud.service:FraudService"


@pytest.fixture(scope="module")
def bento(built_bentos: dict[str, Built]) -> dict:
    built = built_bentos["fraud"]
    return {"info": built.info, "src": built.src}


def test_the_bento_is_listed_with_the_service_entry_point(bento):
    info = bento["info"]
    assert info["name"] == "fraud"
    assert info["service"] == ENTRY
    assert info["entry_service"] == "fraud"
    assert {r["route"] for r in info["schema"]["routes"]} >= {"/score", "/score_batch"}
    assert info["models"] == []  # loaded from the model store at start-up, not packed in


def test_the_bento_carries_the_kit_the_scenario_and_the_feast_wiring(bento):
    src: Path = bento["src"]
    for path in ("bentos/fraud/service.py", "bentos/fraud/model.py", "bentos/fraud/schemas.py",
                 "rtml/serving/core.py", "rtml/serving/batcher.py", "rtml/features/online.py",
                 "rtml/redis/__init__.py", "feature_repo/fraud/feature_services.py",
                 "feature_store.yaml"):
        assert (src / path).is_file(), path
    assert not (src / "rtml" / "cli").exists() and not (src / "rtml" / "demo").exists()
    assert not list(src.rglob("__pycache__"))


def test_the_service_imports_from_the_bento_alone(bento):
    """The bento's own copy of the kit and scenario is what a container would import."""
    src: Path = bento["src"]
    code = ("import bentos.fraud.service as s, rtml.serving.core as c; "
            "print(s.__file__); print(c.__file__); print(s.EXAMPLE_INPUT['customer_id'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=src, check=True, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "BENTOML_DO_NOT_TRACK": "true"}
                         ).stdout.split()
    assert out[0].startswith(str(src)) and out[1].startswith(str(src))
    assert out[2] == "42"
