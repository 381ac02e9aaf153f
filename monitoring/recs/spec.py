"""The recommendation scenario's monitor: `rtml monitor run --model recs`.

The kit's runner (`rtml.monitor.run`) does health (latency, errors, fallbacks over every logged
answer) and freshness (the streamed views' newest values, the nightly views' age); this spec adds
what a ranked list needs instead of a score's drift and precision:

- **quality**: Evidently's `RecsysPreset` (precision/recall/F-beta/MAP/NDCG/MRR/HitRate at k,
  score distribution, personalisation, popularity bias, novelty, diversity over category and
  price) on the logged impressions graded by the clicks that followed them
  (`monitoring.recs.labels`: delayed labels, `LABEL_HORIZON_S` after each answer). NDCG@10 is
  tested against the offline `ranker_mmr` NDCG@10 of the model card (`RTML_MONITOR_QUALITY_DROP`)
  once `RTML_MONITOR_MIN_LABELS` impressions are labelled; before, it is reported, not tested.
- **feature_drift**: what shoppers click now (item category, price, popularity) against the
  training history's last week (`data/recs/events.parquet`), Evidently's `DataDriftPreset`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Recsys, Report
from evidently.presets import DataDriftPreset, RecsysPreset

from monitoring.recs.labels import grade, ranking_rows, read_clicks
from rtml.monitor import reports
from rtml.monitor.reports import Section
from rtml.monitor.run import MonitorContext, MonitorSpec
from rtml.redis import connect

K = 10
LABEL_HORIZON_S = 1800.0  # a click this long after an answer grades it
TRAIN_ROWS = 50_000  # training clicks sampled for novelty and popularity bias
REFERENCE_ROWS = 20_000
DRIFT_COLUMNS = ["category", "price", "popularity"]
# Evidently's NDCG result lists rank labels one past the k it computed (0.7.x); the values are in
# k order, so figures are read by position (value i is @i+1).
_TOPK = {"NDCG": "ndcg", "HitRate": "hitrate", "MAP": "map", "RecallTopK": "recall",
         "PrecisionTopK": "precision", "MRR": "mrr"}
_SINGLE = {"Personalization": "personalisation", "PopularityBiasMetric": "popularity_bias",
           "Novelty": "novelty", "Diversity": "diversity", "ScoreDistribution": "score_entropy"}


def _definition(extra: list[str]) -> DataDefinition:
    return DataDefinition(numerical_columns=["score", "target", *extra],
                          ranking=[Recsys(user_id="user_id", item_id="item_id", target="target",
                                          prediction="score", recommendations_type="score")])


def ranking_figures(rows: pd.DataFrame, *, items: pd.DataFrame | None,
                    train: pd.DataFrame | None, k: int = K, out_dir: Path | None = None,
                    section: Section | None = None) -> dict[str, Any]:
    """Evidently's RecsysPreset on `ranking_rows`; the @k figures and the list-level ones."""
    features = ["category", "price"] if items is not None else None
    cur = rows if items is None else rows.merge(items[["item_id", *features]], on="item_id",
                                                how="left")
    definition = _definition(features or [])
    extra = {}
    if train is not None and len(train):
        t = train if items is None else train.merge(items[["item_id", *features]],
                                                    on="item_id", how="left")
        extra = {"current_train_data": Dataset.from_pandas(t, data_definition=definition)}
    report = Report(metrics=[RecsysPreset(k=k, no_feedback_users=True, item_features=features)])
    snapshot = report.run(current_data=Dataset.from_pandas(cur, data_definition=definition),
                          additional_data=extra or None)
    if out_dir is not None and section is not None:
        reports._save(section, snapshot, out_dir, "ranking")
    out: dict[str, Any] = {}
    for metric in snapshot.dict()["metrics"]:
        kind = metric.get("config", {}).get("type", "").rsplit(":", 1)[-1]
        value = metric.get("value")
        if kind in _TOPK and isinstance(value, dict):
            values = list(value["value"].values())
            if len(values) >= k:
                out[f"{_TOPK[kind]}@{k}"] = float(values[k - 1])
        elif kind in _SINGLE and isinstance(value, int | float):
            out[_SINGLE[kind]] = None if np.isnan(value) else float(value)
    return out


def _timings(rows: pd.DataFrame) -> None:
    """The health report's stage columns from the log's `timings_ms` (in place)."""
    if "timings_ms" not in rows:
        return
    t = rows["timings_ms"].map(lambda v: json.loads(v) if isinstance(v, str) and v else {})
    rows["features_ms"] = pd.to_numeric(t.map(lambda d: d.get("features")), errors="coerce")
    rows["model_ms"] = pd.to_numeric(t.map(lambda d: d.get("model")), errors="coerce")


def _shop(ctx: MonitorContext) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    folder = ctx.settings.data_dir / "recs"
    if not (folder / "items.parquet").exists() or not (folder / "events.parquet").exists():
        return None, None
    items = pd.read_parquet(folder / "items.parquet", columns=["item_id", "category", "price"])
    events = pd.read_parquet(folder / "events.parquet",
                             columns=["user_id", "item_id", "type", "ts"])
    return items, events[events["type"].isin(["click", "cart", "order"])]


def _quality(ctx: MonitorContext, graded: pd.DataFrame, items: pd.DataFrame | None,
             history: pd.DataFrame | None, counts: dict[str, int]) -> Section:
    section = Section("quality")
    s = ctx.settings
    offline = ctx.card.metrics.get("ndcg@10")
    section.figures = {"k": K, "horizon_s": LABEL_HORIZON_S,
                       "reference": {"ndcg@10": offline} if offline is not None else {}}
    done = graded[graded["labelled"] & (graded["items"].map(len) >= K)]
    train = None
    if history is not None and len(history):
        sample = history.tail(TRAIN_ROWS)
        train = pd.DataFrame({"user_id": sample["user_id"].astype(str),
                              "item_id": sample["item_id"], "score": 1.0, "target": 1})
    by_day = []
    for day, part in done.groupby(done["logged_at"].dt.strftime("%Y-%m-%d"), sort=True):
        f = ranking_figures(ranking_rows(part, k=K), items=None, train=None)
        by_day.append({"day": day, "rows": len(part),
                       "positives": int((part["clicked"].map(len) > 0).sum()),
                       **{m: f.get(m) for m in ("ndcg@10", "hitrate@10", "map@10")}})
    section.figures["by_day"] = by_day
    if done.empty:
        section.check("ranking quality", None,
                      f"no labelled impressions yet ({counts['pending']} pending: a click grades "
                      f"an answer {LABEL_HORIZON_S:.0f}s after it)")
        return section
    current = ranking_figures(ranking_rows(done, k=K), items=items, train=train,
                              out_dir=ctx.out_dir, section=section)
    section.figures["current"] = current
    section.figures["labelled_rows"] = len(done)
    if len(done) < s.monitor_min_labels or offline is None:
        section.check("NDCG@10", None, f"{len(done)} labelled impressions: need "
                      f"{s.monitor_min_labels} to test NDCG@10 (labels arrive late)")
        return section
    floor = offline * (1 - s.monitor_quality_drop)
    section.check("NDCG@10", current["ndcg@10"] >= floor,
                  f"NDCG@10 {current['ndcg@10']:.4f} on {len(done)} impressions vs offline "
                  f"{offline:.4f} (floor {floor:.4f})")
    return section


def _drift(ctx: MonitorContext, clicks: pd.DataFrame, items: pd.DataFrame | None,
           history: pd.DataFrame | None) -> Section:
    section = Section("feature_drift")
    if items is None or history is None or clicks.empty:
        section.check("feature drift", None, "no clicks in the window or no shop data "
                      "(data/recs/) to compare them with")
        return section
    popularity = history["item_id"].value_counts()

    def frame(ev: pd.DataFrame) -> pd.DataFrame:
        out = ev[["item_id"]].merge(items, on="item_id", how="left")
        out["popularity"] = np.log1p(out["item_id"].map(popularity).fillna(0).to_numpy())
        return out[DRIFT_COLUMNS]

    last = history[history["ts"] >= history["ts"].max() - pd.Timedelta(days=7)]
    ref = frame(last.sample(min(len(last), REFERENCE_ROWS), random_state=0))
    cur = frame(clicks.tail(REFERENCE_ROWS))
    definition = DataDefinition(numerical_columns=["price", "popularity"],
                                categorical_columns=["category"])
    share = ctx.settings.monitor_drift_share
    snapshot = Report(metrics=[DataDriftPreset(columns=DRIFT_COLUMNS, drift_share=share)],
                      include_tests=True).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition))
    reports._save(section, snapshot, ctx.out_dir, "feature_drift", advisory={"drift"})
    drift = {m["column"]: {"score": m["value"], "threshold": m["threshold"], "method": m["method"]}
             for m in reports._metric_values(snapshot, "ValueDrift")}
    drifted = sorted(c for c, d in drift.items() if d["score"] >= d["threshold"])
    section.figures = {"features": len(DRIFT_COLUMNS), "drifted": drifted,
                       "drifted_share": len(drifted) / len(DRIFT_COLUMNS),
                       "drift_share_limit": share, "by_feature": drift,
                       "current_clicks": len(cur), "reference_clicks": len(ref)}
    return section


def sections(ctx: MonitorContext) -> tuple[list[Section], dict[str, Any]]:
    """Quality on delayed clicks and click drift; the log's stage timings for health."""
    _timings(ctx.data.rows)
    client = ctx.redis_client or connect(ctx.settings, role="monitor")
    clicks = read_clicks(client, since=ctx.since)
    graded = grade(ctx.data.rows, clicks, now=ctx.now, horizon_s=LABEL_HORIZON_S)
    items, history = _shop(ctx)
    return ([_drift(ctx, clicks, items, history),
             _quality(ctx, graded.impressions, items, history, graded.counts)],
            graded.counts)


MONITOR = MonitorSpec(
    name="recs",
    log_columns=("request_id", "user_id", "k", "items", "cold_start", "cache", "timings_ms"),
    sections=sections,
)
