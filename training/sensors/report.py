"""What `rtml train sensors` prints: every detector at the fixed threshold and at equal recall."""

from __future__ import annotations

from typing import Any


def summary_lines(m: dict[str, Any]) -> list[str]:
    """One row per detector (test plant, threshold fixed on the fit plant) and the ratio table."""
    test = m["plants"]["test"]
    lines = [f"  test plant: {test['machines']} machines x 4 channels, {test['hours']} h, "
             f"{test['readings']:,} readings, {test['windows']} faults (seed {test['seed']}); "
             f"thresholds fixed on the fit plant at recall {m['recall_target']:.0%}",
             f"  {'detector':12s}{'threshold':>11s}{'recall':>8s}{'FA/h':>8s}"
             f"{'FA/machine-h':>14s}  median delay s per kind"]
    for kind, r in m["detectors"].items():
        t = r["test"]
        delays = ", ".join(f"{k} {_s(v['median_delay_s'])}" for k, v in t["per_kind"].items())
        mark = " *" if kind == m["chosen"] else ""
        lines.append(f"  {kind + mark:12s}{r['threshold']:11.3f}{t['recall']:8.2f}"
                     f"{t['false_alarms_per_hour']:8.1f}{t['false_alarms_per_machine_hour']:14.2f}"
                     f"  {delays}")
    recalls = list(next(iter(m["detectors"].values()))["test_equal_recall"])
    lines.append(f"  false alarms/h at equal recall (test plant), x of {m['baseline']}: "
                 + "   ".join(f"R={r}" for r in recalls))
    for kind, r in m["detectors"].items():
        cells = []
        for rec in recalls:
            e, ratio = r["test_equal_recall"][rec], r["fa_ratio_vs_baseline"][rec]
            cells.append("     n/a" if e is None else
                         f"{e['false_alarms_per_hour']:6.1f} ({_x(ratio)})")
        lines.append(f"  {kind:12s}" + "  ".join(cells))
    lines.append(f"  saved {m['chosen']} (*) -> {m['model_path']}")
    return lines


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"
