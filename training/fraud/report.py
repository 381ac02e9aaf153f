"""What `rtml train fraud` prints: the model beside its baselines, and the spread over seeds.

A scenario's own summary (the registry's `train_summary`): the CLI knows no metric names.
"""

from __future__ import annotations

from typing import Any


def summary_lines(m: dict[str, Any]) -> list[str]:
    """The metrics table (xgboost, logistic, rules, amount rule) and one line per seed spread."""
    columns = {"xgboost": m["xgboost"], "logistic": m["baseline_logistic_regression"],
               "rules": m["baseline_rules"], "amount rule": m["baseline_amount_rule"]}
    lines = [f"  {'':24s}" + "".join(f"{name:>13s}" for name in columns)]
    for k in m["xgboost"]:
        lines.append(f"  {k:24s}" + "".join(f"{c[k]:13.3f}" for c in columns.values()))
    for name, spread in m.get("seeds", {}).items():
        values = ", ".join(f"{v:.3f}" for v in spread["ap"])
        lines.append(f"  average precision over seeds {spread['seeds']}: {name} "
                     f"{spread['mean']:.3f} ± {spread['std']:.3f} ({values})")
    return lines
