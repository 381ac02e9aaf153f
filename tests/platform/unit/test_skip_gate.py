"""CI's skip gate (`.ci/check_skips.py`) on junit files written by a real pytest run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rtml.settings import REPO_ROOT

GATE = REPO_ROOT / ".ci" / "check_skips.py"

SAMPLE = '''
import pytest

def test_passes():
    pass

@pytest.mark.skipif(True, reason="no CUDA GPU visible to XGBoost")
def test_gpu():
    pass

@pytest.mark.parametrize("x", [1, 2])
def test_param(x):
    if x == 2:
        pytest.skip("no Redis at localhost:6379")
'''


def _pytest(folder: Path, source: str, *args: str) -> Path:
    """Run pytest on one generated test module; the junit file it wrote."""
    (folder / "test_sample.py").write_text(source)
    junit = folder / "junit.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "-o", "addopts=", f"--junitxml={junit}", *args, str(folder)],
                   cwd=folder, capture_output=True, text=True, timeout=120)
    return junit


def _gate(junit: Path, allowed: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GATE), str(junit), "--allowed", str(allowed)],
                          capture_output=True, text=True, timeout=60)


def _allow(folder: Path, *lines: str) -> Path:
    path = folder / "allowed.txt"
    path.write_text("# comment line\n\n" + "\n".join(lines) + "\n")
    return path


def test_an_unexpected_skip_fails_and_is_named(tmp_path: Path):
    junit = _pytest(tmp_path, SAMPLE)
    allowed = _allow(tmp_path, "test_sample::test_gpu | no CUDA GPU visible to XGBoost")
    out = _gate(junit, allowed)
    assert out.returncode == 1
    assert "1 test(s) skipped" in out.stderr
    assert "test_sample::test_param[2] | no Redis at localhost:6379" in out.stderr
    assert "test_gpu" not in out.stderr


def test_only_allowed_skips_pass(tmp_path: Path):
    junit = _pytest(tmp_path, SAMPLE)
    allowed = _allow(tmp_path, "test_sample::test_gpu | no CUDA GPU*",
                     "test_sample::test_param[[]2] | no Redis at *  # escaped bracket")
    out = _gate(junit, allowed)
    assert out.returncode == 0, out.stderr
    assert "4 tests, 2 skipped, all allowed" in out.stdout


def test_an_allowed_test_skipped_for_another_reason_fails(tmp_path: Path):
    source = SAMPLE.replace("no CUDA GPU visible to XGBoost", "cannot import xgboost")
    junit = _pytest(tmp_path, source, "-k", "gpu")
    out = _gate(junit, _allow(tmp_path, "test_sample::test_gpu | no CUDA GPU*"))
    assert out.returncode == 1
    assert "test_sample::test_gpu | cannot import xgboost" in out.stderr


def test_module_skips_and_xfails_count_as_skips(tmp_path: Path):
    source = ('import pytest\npytest.skip("whole module off", allow_module_level=True)\n'
              "def test_never():\n    pass\n")
    junit = _pytest(tmp_path, source)
    out = _gate(junit, _allow(tmp_path, "x | y"))
    assert out.returncode == 1 and "whole module off" in out.stderr

    xfail = ('import pytest\n@pytest.mark.xfail(reason="known bug")\n'
             "def test_broken():\n    assert False\n")
    out = _gate(_pytest(tmp_path, xfail), _allow(tmp_path, "x | y"))
    assert out.returncode == 1 and "test_sample::test_broken | xfail: known bug" in out.stderr


def test_no_tests_collected_fails(tmp_path: Path):
    junit = _pytest(tmp_path, "def helper():\n    pass\n")  # pytest exits 5
    out = _gate(junit, _allow(tmp_path, "x | y"))
    assert out.returncode == 1 and "records no test" in out.stderr


def test_a_missing_junit_file_fails(tmp_path: Path):
    out = _gate(tmp_path / "absent.xml", _allow(tmp_path, "x | y"))
    assert out.returncode == 1 and "no junit file" in out.stderr


def test_a_malformed_allow_list_line_is_an_error(tmp_path: Path):
    junit = _pytest(tmp_path, SAMPLE)
    out = _gate(junit, _allow(tmp_path, "test_sample::test_gpu"))
    assert out.returncode != 0 and "expected `<test id> | <reason>`" in out.stderr


def test_the_committed_allow_list_allows_only_the_gpu_test(tmp_path: Path):
    # A renamed GPU test would fail CI (its new id is not listed): fail-safe, so ids suffice.
    junit = _pytest(tmp_path, SAMPLE.replace("def test_gpu", "def test_gpu_booster_matches_cpu"))
    committed = GATE.with_name("allowed-skips.txt")
    out = _gate(junit, committed)
    assert out.returncode == 1  # the sample's module is not tests.fraud.unit.test_fraud_backends
    assert "test_sample::test_gpu_booster_matches_cpu | no CUDA GPU" in out.stderr
    lines = [ln for ln in committed.read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines == ["tests.fraud.unit.test_fraud_backends::test_gpu_booster_matches_cpu | "
                     "no CUDA GPU visible to XGBoost"]
