"""The latency histogram PNG that docs/benchmarks.md embeds, drawn from the results JSON's bins.

Drawn from the stored bin counts (not raw samples) so a results file alone can redraw it; log-x
because the targets this compares differ by orders of magnitude.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_histograms(hists: dict[str, dict[str, Any]], out: Path, *, title: str) -> Path:
    """One step line per label: share of requests per log-spaced latency bin."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server or in CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    lo, hi = float("inf"), 0.0
    for label, h in hists.items():
        edges = np.asarray(h["edges_ms"])
        counts = np.asarray(h["counts"], dtype=np.float64)
        if counts.sum() == 0:
            continue
        share = counts / counts.sum()
        ax.stairs(share, edges, label=label, linewidth=1.6)
        used = np.flatnonzero(counts)
        lo, hi = min(lo, edges[used[0]]), max(hi, edges[used[-1] + 1])
    ax.set_xscale("log")
    if hi > 0:  # the occupied range, not the bins' full 1 us .. 10 s
        ax.set_xlim(lo / 1.5, hi * 1.5)
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("share of requests per bin")
    ax.set_title(title)
    ax.grid(True, which="both", axis="x", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
