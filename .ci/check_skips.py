"""CI's skip gate: fail when a test skipped that the allow-list does not name.

A skipped test reads as green in a summary nobody opens, so a missing server or tool would
silently switch a check off. pytest writes a junit XML; this reads every `<skipped>` in it
(xfails included: they are not passes either) and compares each with `.ci/allowed-skips.txt`.
It also fails when the file is missing or records no test at all (pytest's exit 5), so a
collection that found nothing cannot pass.

Usage: python .ci/check_skips.py JUNIT_XML [--allowed FILE]   (standard library only)
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from fnmatch import fnmatchcase
from pathlib import Path

DEFAULT_ALLOWED = Path(__file__).with_name("allowed-skips.txt")


def read_allowed(path: Path) -> list[tuple[str, str]]:
    """`(test id pattern, reason pattern)` per line `<id> | <reason>`; `#` starts a comment."""
    entries = []
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        test_id, sep, reason = (part.strip() for part in line.partition("|"))
        if not sep or not test_id or not reason:
            raise ValueError(f"{path}:{n}: expected `<test id> | <reason>`, got {raw!r}")
        entries.append((test_id, reason))
    return entries


def skipped_tests(junit: Path) -> tuple[int, list[tuple[str, str]]]:
    """Number of test cases, and `(test id, reason)` of each skipped one.

    The id is junit's `classname::name` (e.g. `tests.unit.test_x::test_y[1]`); a module skipped
    at collection has no classname and is named by its module alone.
    """
    root = ET.parse(junit).getroot()
    cases = list(root.iter("testcase"))
    skipped = []
    for case in cases:
        for skip in case.iter("skipped"):
            classname, name = case.get("classname", ""), case.get("name", "")
            test_id = f"{classname}::{name}" if classname else name
            reason = skip.get("message") or ""
            if skip.get("type") == "pytest.xfail":
                reason = f"xfail: {reason}"
            elif reason == "collection skipped":
                reason = (skip.text or reason).strip()
            skipped.append((test_id, reason))
    return len(cases), skipped


def unexpected(skipped: list[tuple[str, str]],
               allowed: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The skips no allow-list entry matches (both id and reason, shell-style patterns)."""
    return [(t, r) for t, r in skipped
            if not any(fnmatchcase(t, tp) and fnmatchcase(r, rp) for tp, rp in allowed)]


def main(argv: list[str] | None = None) -> int:
    """0 when every skip is allowed and at least one test ran; 1 otherwise, saying which."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("junit", type=Path, help="pytest --junitxml output")
    p.add_argument("--allowed", type=Path, default=DEFAULT_ALLOWED, help="allow-list file")
    args = p.parse_args(argv)
    if not args.junit.is_file():
        print(f"skip gate: no junit file at {args.junit} (did pytest run?)", file=sys.stderr)
        return 1
    total, skipped = skipped_tests(args.junit)
    if total == 0:
        print(f"skip gate: {args.junit} records no test (pytest collected nothing)",
              file=sys.stderr)
        return 1
    bad = unexpected(skipped, read_allowed(args.allowed))
    if bad:
        print(f"skip gate: {len(bad)} test(s) skipped that {args.allowed} does not allow:",
              file=sys.stderr)
        for test_id, reason in bad:
            print(f"  {test_id} | {reason}", file=sys.stderr)
        return 1
    print(f"skip gate: {total} tests, {len(skipped)} skipped, all allowed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
