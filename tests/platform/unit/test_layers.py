"""The layering a new scenario relies on.

The kit imports no scenario, a scenario no other scenario, and only the CLI, the demo and the
benchmarks see everything.

The contracts live in pyproject.toml (`[tool.importlinter]`); these tests run the real
`lint-imports` on this tree, check that the contract lists every kit module (a new one cannot
slip past it), and that an injected violation — even an import inside a function — breaks it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from rtml.settings import REPO_ROOT

LINT = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("rtml", "feature_repo", "pipelines", "bentos", "training", "monitoring", "benchmarks")
TOP = {"cli", "demo"}  # the kit's two modules that may import everything


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


def _contracts() -> list[dict]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"]


def test_contracts_hold_on_this_tree() -> None:
    proc = _lint(REPO_ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_every_kit_module_is_in_the_bottom_layer() -> None:
    (layers,) = [c["layers"] for c in _contracts() if c["type"] == "layers"]
    kit = {m.strip().removeprefix("rtml.") for m in layers[-1].split(":")}
    top = {m.strip() for m in layers[0].split(":")}
    on_disk = {p.stem if p.is_file() else p.name
               for p in (REPO_ROOT / "rtml").iterdir()
               if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert on_disk - TOP == kit, f"kit modules not in the contract: {sorted(on_disk - TOP - kit)}"
    assert {"rtml.cli", "rtml.demo", "benchmarks"} <= top


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the Python packages and pyproject.toml, to break on purpose."""
    for pkg in PACKAGES:
        shutil.copytree(REPO_ROOT / pkg, tmp_path / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "results", "*.json"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_a_kit_import_of_a_scenario_breaks_the_contract_even_inside_a_function(tree: Path) -> None:
    (tree / "rtml" / "features" / "leak.py").write_text(
        "def train():\n    from training.fraud import train\n    return train\n")
    proc = _lint(tree)
    assert proc.returncode != 0
    assert "rtml.features.leak -> training.fraud" in proc.stdout


def test_a_scenario_importing_another_breaks_the_contract(tree: Path) -> None:
    (tree / "pipelines" / "recs").mkdir(exist_ok=True)  # recs exists since issue 11
    (tree / "pipelines" / "recs" / "leak.py").write_text("from bentos.fraud import service\n")
    proc = _lint(tree)
    assert proc.returncode != 0
    assert "pipelines.recs.leak -> bentos.fraud" in proc.stdout


def test_a_scenario_importing_the_cli_breaks_the_contract(tree: Path) -> None:
    (tree / "bentos" / "fraud" / "leak.py").write_text("import rtml.cli\n")
    proc = _lint(tree)
    assert proc.returncode != 0
    assert "bentos.fraud.leak -> rtml.cli" in proc.stdout


def test_a_benchmark_importing_the_demo_breaks_the_contract(tree: Path) -> None:
    (tree / "benchmarks" / "leak.py").write_text(
        "def serve():\n    from rtml.demo import run_demo\n    return run_demo\n")
    proc = _lint(tree)
    assert proc.returncode != 0
    assert "benchmarks.leak -> rtml.demo" in proc.stdout
