"""CI's dependency audit: `pip-audit` on requirements.lock, known findings from docs/security.md.

Fails (exit 1) on a known vulnerability in a locked package that docs/security.md does not list
with its reason. pip-audit needs a vulnerability database (PyPI's JSON API or OSV); where the
network gives it none -- pip-audit cannot connect, or every package comes back "not found on
PyPI", which is how a mirror without the JSON API answers -- it says so in one line and passes:
an audit that could not look is reported, not mistaken for a clean one.

Usage: python .ci/audit.py [--pip-audit PATH] [--lock FILE] [--known docs/security.md]
(standard library only)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ID = re.compile(r"`((?:GHSA|PYSEC|CVE|OSV)-[A-Za-z0-9-]+)`")
KNOWN_HEADING = "## Known findings"


def known_ids(security_md: str) -> list[str]:
    """The vulnerability ids in backticks under "## Known findings" (up to the next heading)."""
    if KNOWN_HEADING not in security_md:
        raise ValueError(f"no {KNOWN_HEADING!r} section")
    section = security_md.split(KNOWN_HEADING, 1)[1].split("\n## ", 1)[0]
    return sorted(set(ID.findall(section)))


@dataclass(frozen=True)
class Verdict:
    """What the audit found: the exit code and the lines to print."""

    code: int
    lines: list[str]


def judge(report: dict, *, ignored: list[str]) -> Verdict:
    """A pip-audit JSON report -> pass, fail with the findings, or "could not audit"."""
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    audited = [d for d in deps if not d.get("skip_reason")]
    if not audited:
        reason = skipped[0]["skip_reason"] if skipped else "no packages in the report"
        return Verdict(0, [f"ci: pip-audit could not reach a vulnerability database "
                           f"({len(skipped)} of {len(deps)} packages unaudited, e.g. "
                           f"{reason!r}); requirements.lock was not audited this run"])
    found = [(d["name"], d["version"], v) for d in audited for v in d.get("vulns", [])
             if v["id"] not in ignored and not set(v.get("aliases", [])) & set(ignored)]
    lines = [f"ci: pip-audit: {len(audited)} of {len(deps)} locked packages audited, "
             f"{len(found)} unlisted finding(s); listed in docs/security.md: "
             f"{', '.join(ignored) or 'none'}"]
    for name, version, vuln in found:
        fix = ", ".join(vuln.get("fix_versions", [])) or "no fixed version"
        lines.append(f"  {name}=={version}: {vuln['id']} (fixed in {fix}): add the fix to "
                     "requirements.lock, or list the id in docs/security.md with why")
    return Verdict(1 if found else 0, lines)


def run(pip_audit: Path, lock: Path, ignored: list[str]) -> Verdict:
    """Run pip-audit on the lock file (no resolution: the lock is complete) and judge it."""
    cmd = [str(pip_audit), "-r", str(lock), "--no-deps", "--disable-pip", "-f", "json",
           "--progress-spinner", "off"]
    for vid in ignored:
        cmd += ["--ignore-vuln", vid]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Verdict(0, [f"ci: pip-audit did not run ({exc}); requirements.lock was not "
                           "audited this run"])
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return Verdict(0, [f"ci: pip-audit could not reach a vulnerability database ({last}); "
                           "requirements.lock was not audited this run"])
    return judge(report, ignored=ignored)


def main(argv: list[str] | None = None) -> int:
    """Print the verdict's lines; return its exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pip-audit", type=Path, default=ROOT / ".venv" / "bin" / "pip-audit")
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    parser.add_argument("--known", type=Path, default=ROOT / "docs" / "security.md")
    args = parser.parse_args(argv)
    verdict = run(args.pip_audit, args.lock, known_ids(args.known.read_text()))
    print("\n".join(verdict.lines))
    return verdict.code


if __name__ == "__main__":
    sys.exit(main())
