"""CI's dependency audit (`.ci/audit.py`): its verdict on pip-audit reports, and its known list.

The reports are in pip-audit's JSON format (2.x: `dependencies[].vulns[]`, `skip_reason`); a run
of the real pip-audit through `run` is checked with a stand-in executable that prints a report,
since the vulnerability databases may be out of reach.
"""

from __future__ import annotations

import importlib.util
import json
import stat
import sys
from pathlib import Path

from rtml.settings import REPO_ROOT

_spec = importlib.util.spec_from_file_location("ci_audit", REPO_ROOT / ".ci" / "audit.py")
audit = importlib.util.module_from_spec(_spec)
sys.modules["ci_audit"] = audit  # its dataclasses look their module up there
_spec.loader.exec_module(audit)

VULN = {"id": "GHSA-aaaa-bbbb-cccc", "aliases": ["CVE-2026-0001"], "fix_versions": ["2.0.1"],
        "description": "…"}


def _report(*deps: dict) -> dict:
    return {"dependencies": list(deps), "fixes": []}


def test_a_finding_not_listed_fails_and_names_package_id_and_fix():
    verdict = audit.judge(_report({"name": "lib", "version": "2.0.0", "vulns": [VULN]},
                                  {"name": "ok", "version": "1", "vulns": []}), ignored=[])
    assert verdict.code == 1
    assert "2 of 2 locked packages audited, 1 unlisted" in verdict.lines[0]
    assert "lib==2.0.0: GHSA-aaaa-bbbb-cccc (fixed in 2.0.1)" in verdict.lines[1]


def test_a_finding_listed_by_its_id_or_an_alias_passes():
    for listed in ("GHSA-aaaa-bbbb-cccc", "CVE-2026-0001"):
        verdict = audit.judge(_report({"name": "lib", "version": "2.0.0", "vulns": [VULN]}),
                              ignored=[listed])
        assert verdict.code == 0 and listed in verdict.lines[0]


def test_nothing_audited_is_one_line_that_says_so_and_does_not_fail():
    skip = "Dependency not found on PyPI and could not be audited: lib (2.0.0)"
    verdict = audit.judge(_report({"name": "lib", "version": "2.0.0", "skip_reason": skip}),
                          ignored=[])
    assert verdict.code == 0 and len(verdict.lines) == 1
    assert "could not reach a vulnerability database" in verdict.lines[0]
    assert "not audited" in verdict.lines[0]


def test_the_known_ids_are_read_from_their_section_only():
    text = ("# Security\nsee `GHSA-xxxx-yyyy-zzzz` elsewhere\n## Known findings\n"
            "| `PYSEC-2026-12` | lib | not reachable from our code |\n"
            "| `GHSA-aaaa-bbbb-cccc` | other | … |\n## Later\n`CVE-2026-9999`\n")
    assert audit.known_ids(text) == ["GHSA-aaaa-bbbb-cccc", "PYSEC-2026-12"]
    assert isinstance(audit.known_ids((REPO_ROOT / "docs" / "security.md").read_text()), list)


def _fake_pip_audit(tmp_path: Path, stdout: str, code: int) -> Path:
    exe = tmp_path / "pip-audit"
    exe.write_text("#!/bin/sh\n" f"echo \"$@\" > {tmp_path / 'args'}\n"
                   f"cat <<'EOF'\n{stdout}\nEOF\nexit {code}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def test_run_passes_the_lock_and_the_ignores_and_judges_the_output(tmp_path):
    report = json.dumps(_report({"name": "lib", "version": "2.0.0", "vulns": [VULN]}))
    exe = _fake_pip_audit(tmp_path, report, 1)
    verdict = audit.run(exe, REPO_ROOT / "requirements.lock", ["PYSEC-2026-12"])
    args = (tmp_path / "args").read_text().split()
    assert args[:2] == ["-r", str(REPO_ROOT / "requirements.lock")]
    assert {"--no-deps", "--disable-pip"} <= set(args)
    assert args[args.index("--ignore-vuln") + 1] == "PYSEC-2026-12"
    assert verdict.code == 1


def test_run_without_a_report_says_why_in_one_line(tmp_path):
    exe = _fake_pip_audit(tmp_path, "", 1)
    verdict = audit.run(exe, REPO_ROOT / "requirements.lock", [])
    assert verdict.code == 0 and len(verdict.lines) == 1 and "not audited" in verdict.lines[0]
    missing = audit.run(tmp_path / "absent", REPO_ROOT / "requirements.lock", [])
    assert missing.code == 0 and "did not run" in missing.lines[0]
