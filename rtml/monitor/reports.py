"""The Evidently reports of one monitoring run: each a plain function, HTML + JSON, pass/fail.

Every report is an Evidently 0.7 `Report` over a `Dataset` with an explicit `DataDefinition`,
run with keyword arguments; its pass/fail comes from the snapshot's test results (by name and
status, never by position). Evidently has no PR-AUC metric, so the quality section adds that one
figure from scikit-learn and states it as an rtml check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from evidently import BinaryClassification, DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.metrics import (
    MeanValue,
    MinValue,
    Precision,
    QuantileValue,
    Recall,
    RocAuc,
    ValueDrift,
)
from evidently.presets import DataDriftPreset
from evidently.tests import gte, lte
from sklearn.metrics import average_precision_score, precision_score, recall_score

_STATUS = {"SUCCESS": "pass", "FAIL": "fail", "ERROR": "fail", "WARNING": "warn"}


@dataclass
class Section:
    """One report's outcome: checks (pass/fail/warn/skip), key figures, files written."""

    name: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool | None, detail: str, source: str = "rtml") -> None:
        """Add a check; `ok=None` means it could not be evaluated (skip, not a failure)."""
        status = "skip" if ok is None else ("pass" if ok else "fail")
        self.checks.append({"section": self.name, "name": name, "status": status,
                            "detail": detail, "source": source})


def _save(section: Section, snapshot: Snapshot, out_dir: Path, stem: str,
          advisory: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Write HTML + JSON and turn the snapshot's tests into checks.

    Tests whose id is in `advisory` are reported as `warn` when they fail (e.g. one column's
    drift inside a dataset-level drift test), so only the deciding test fails the run.
    """
    snapshot.save_html(str(out_dir / f"{stem}.html"))
    snapshot.save_json(str(out_dir / f"{stem}.json"))
    section.files += [f"{stem}.html", f"{stem}.json"]
    for test in snapshot.tests_results:
        status = _STATUS.get(getattr(test.status, "value", str(test.status)), "fail")
        if status == "fail" and test.id in advisory:
            status = "warn"
        section.checks.append({"section": section.name, "name": test.name, "status": status,
                               "detail": test.description, "source": "evidently"})


def _metric_values(snapshot: Snapshot, kind: str) -> list[dict[str, Any]]:
    """Metrics of one Evidently type from the snapshot dict: config plus value."""
    out = []
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(f":{kind}"):
            out.append({**config, "value": metric.get("value")})
    return out


def feature_drift(*, current: pd.DataFrame, reference: pd.DataFrame, features: list[str],
                  drift_share: float, out_dir: Path) -> Section:
    """Drift of the served features against the training reference (Evidently's default tests)."""
    section = Section("feature_drift")
    cols = [c for c in features if c in current and c in reference
            and current[c].notna().any() and reference[c].nunique() > 1]
    if not cols or current.empty:
        section.check("feature drift", None, "no logged feature values in the window")
        return section
    definition = DataDefinition(numerical_columns=cols)
    report = Report(metrics=[DataDriftPreset(columns=cols, drift_share=drift_share)],
                    include_tests=True)
    snapshot = report.run(
        current_data=Dataset.from_pandas(current[cols], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[cols], data_definition=definition))
    _save(section, snapshot, out_dir, "feature_drift", advisory={"drift"})
    drift = {m["column"]: {"score": m["value"], "threshold": m["threshold"], "method": m["method"]}
             for m in _metric_values(snapshot, "ValueDrift")}
    section.figures = {
        "features": len(cols),
        "drifted": sorted(c for c, d in drift.items() if d["score"] >= d["threshold"]),
        "drift_share_limit": drift_share,
        "by_feature": drift,
    }
    section.figures["drifted_share"] = len(section.figures["drifted"]) / len(cols)
    return section


def prediction_drift(*, current: pd.DataFrame, reference: pd.DataFrame, out_dir: Path
                     ) -> Section:
    """Score distribution and decision mix against the reference (model answers only)."""
    section = Section("prediction_drift")
    cur = current.loc[current["score"].notna(), ["score", "decision"]]
    if cur.empty:
        section.check("prediction drift", None, "no model answers in the window (all fallbacks)")
        return section
    ref = reference[["score", "decision"]]
    definition = DataDefinition(numerical_columns=["score"], categorical_columns=["decision"])
    report = Report(metrics=[ValueDrift(column="score"), ValueDrift(column="decision")],
                    include_tests=True)
    snapshot = report.run(current_data=Dataset.from_pandas(cur, data_definition=definition),
                          reference_data=Dataset.from_pandas(ref, data_definition=definition))
    _save(section, snapshot, out_dir, "prediction_drift")
    mix = {name: frame["decision"].value_counts(normalize=True).round(4).to_dict()
           for name, frame in (("current", cur), ("reference", ref))}
    section.figures = {
        "score_mean": {"current": float(cur["score"].mean()),
                       "reference": float(ref["score"].mean())},
        "decision_mix": mix,
        "drift": {m["column"]: m["value"] for m in _metric_values(snapshot, "ValueDrift")},
    }
    return section


def _quality(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    flagged = (score >= threshold).astype(int)
    return {
        "precision": float(precision_score(y, flagged, zero_division=0)),
        "recall": float(recall_score(y, flagged, zero_division=0)),
        "pr_auc": float(average_precision_score(y, score)) if y.any() else float("nan"),
    }


def quality(*, labelled: pd.DataFrame, reference: pd.DataFrame, threshold: float,
            reference_label: str, max_drop: float, min_labels: int, out_dir: Path,
            min_positives: int = 5, positives: str = "positives") -> Section:
    """Precision, recall (at `threshold`) and PR-AUC on labelled predictions, by day.

    Each must stay within `max_drop` (relative) of its value on the training reference, whose
    truth is its `reference_label` column. `positives` names a positive in messages.
    """
    section = Section("quality")
    rows = labelled[labelled["label"].notna() & labelled["score"].notna()].copy()
    rows["label"] = rows["label"].astype(int)
    ref = _quality(reference[reference_label].to_numpy(), reference["score"].to_numpy(),
                   threshold)
    by_day = []
    for day, part in rows.groupby(rows["logged_at"].dt.strftime("%Y-%m-%d"), sort=True):
        figures = _quality(part["label"].to_numpy(), part["score"].to_numpy(), threshold)
        by_day.append({"day": day, "rows": len(part), "positives": int(part["label"].sum()),
                       **figures})
    section.figures = {"reference": ref, "by_day": by_day, "threshold": threshold,
                       "labelled_rows": len(rows), "positives": int(rows["label"].sum())}
    n_positive = int(rows["label"].sum())
    if len(rows) < min_labels or n_positive < min_positives:
        section.check("classification quality", None,
                      f"{len(rows)} labelled predictions with {n_positive} {positives}: need "
                      f"{min_labels} and {min_positives} (labels arrive late)")
        return section
    floor = {k: v * (1 - max_drop) for k, v in ref.items()}
    definition = DataDefinition(
        numerical_columns=["score"],
        classification=[BinaryClassification(target="label", prediction_probas="score",
                                              pos_label=1)])
    report = Report(metrics=[
        Precision(probas_threshold=threshold, tests=[gte(floor["precision"])]),
        Recall(probas_threshold=threshold, tests=[gte(floor["recall"])]),
        RocAuc(),
    ])
    snapshot = report.run(current_data=Dataset.from_pandas(rows[["label", "score"]],
                                                           data_definition=definition))
    _save(section, snapshot, out_dir, "quality")
    current = _quality(rows["label"].to_numpy(), rows["score"].to_numpy(), threshold)
    section.figures["current"] = current
    section.check("PR-AUC", current["pr_auc"] >= floor["pr_auc"],
                  f"PR-AUC {current['pr_auc']:.3f} vs reference {ref['pr_auc']:.3f} "
                  f"(floor {floor['pr_auc']:.3f})", source="sklearn")
    return section


def health(*, rows: pd.DataFrame, p95_ms: float, p99_ms: float, error_rate: float,
           fallback_rate: float, out_dir: Path) -> Section:
    """Server-side latency percentiles, error and fallback rates over every logged row."""
    section = Section("health")
    cols = ["total_ms", "features_ms", "model_ms", "is_error", "is_fallback"]
    definition = DataDefinition(numerical_columns=cols)
    report = Report(metrics=[
        QuantileValue(column="total_ms", quantile=0.95, tests=[lte(p95_ms)]),
        QuantileValue(column="total_ms", quantile=0.99, tests=[lte(p99_ms)]),
        MeanValue(column="is_error", tests=[lte(error_rate)]),
        MeanValue(column="is_fallback", tests=[lte(fallback_rate)]),
    ])
    snapshot = report.run(current_data=Dataset.from_pandas(rows[cols],
                                                           data_definition=definition))
    _save(section, snapshot, out_dir, "health")
    total = rows["total_ms"].dropna().to_numpy()
    edges = np.geomspace(0.1, max(1000.0, float(total.max()) if total.size else 1.0), 41)
    counts, _ = np.histogram(np.clip(total, edges[0], edges[-1]), bins=edges)
    span = rows["logged_at"].max() - rows["logged_at"].min()
    freq = "1min" if span <= pd.Timedelta(hours=6) else "1h"
    buckets = rows.groupby(rows["logged_at"].dt.floor(freq)).agg(
        rows=("is_error", "size"), error_rate=("is_error", "mean"),
        fallback_rate=("is_fallback", "mean"))
    section.figures = {
        "rows": len(rows),
        "latency_ms": {f"p{q}": float(np.percentile(total, q)) if total.size else None
                       for q in (50, 95, 99)},
        "limits": {"p95_ms": p95_ms, "p99_ms": p99_ms, "error_rate": error_rate,
                   "fallback_rate": fallback_rate},
        "error_rate": float(rows["is_error"].mean()),
        "fallback_rate": float(rows["is_fallback"].mean()),
        "fallbacks_by_kind": rows.loc[rows["is_fallback"] == 1, "fallback_kind"]
        .value_counts().to_dict(),
        "latency_histogram": {"edges": edges.round(4).tolist(), "counts": counts.tolist()},
        "by_bucket": {"freq": freq, "rows": [
            {"at": at.isoformat(), "rows": int(r.rows), "error_rate": float(r.error_rate),
             "fallback_rate": float(r.fallback_rate)} for at, r in buckets.iterrows()]},
    }
    return section


def freshness_report(*, ages: pd.DataFrame, limits: dict[str, float | None], stem: str,
                     statistic: str, section: Section, out_dir: Path) -> None:
    """Ages (seconds) per view against each view's limit; `statistic` is `p95` or `newest`.

    At request time the p95 age of what was served is what matters; in the online store now,
    the newest value tells whether the writer (nightly job, stream) is still running.
    """
    cols = [c for c in ages.columns if ages[c].notna().any()]
    if not cols:
        return
    definition = DataDefinition(numerical_columns=cols)
    metrics: list[Any] = []
    for col in cols:
        limit = limits.get(col)
        tests = [lte(limit)] if limit is not None else []
        if statistic == "newest":
            metrics.append(MinValue(column=col, tests=tests))
        else:
            metrics.append(QuantileValue(column=col, quantile=0.95, tests=tests))
    snapshot = Report(metrics=metrics).run(
        current_data=Dataset.from_pandas(ages[cols], data_definition=definition))
    _save(section, snapshot, out_dir, stem)
