"""`rtml train recs`: the ranker on point-in-time requests, evaluated against four baselines.

Time split: the last `test_days` are the test period (its sessions cut at random, the rest of
each session is the truth), the day before is validation (choose the objective and MMR's lambda),
and `train_days` before that are training; each period's sessions are trimmed at the next
period's start, so no label crosses the split. Every method ranks the full catalogue for every
test request (no sampled negatives): global popularity, re-visit, co-visitation only, the ranker,
and the ranker + MMR. Each seed redraws the requests and refits; metrics are means over seeds
with their spread. The objective (`rank:ndcg`, `rank:pairwise` or pointwise `binary:logistic`)
is the one with the best validation NDCG@10 — measured here on every run, written to
`metrics.json["objective_choice"]`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import bentoml
import numpy as np
import pandas as pd
import xgboost as xgb

from pipelines.recs import batch_features as bf
from pipelines.recs.candidates import Candidate, CandidateContext, candidates, source_scores
from pipelines.recs.rerank import final_in_stock, intra_list_diversity, mmr
from pipelines.recs.timeline import activity_timeline, seconds, stock_timeline
from rtml.serving.card import ModelCard, write_card
from rtml.settings import Settings
from training.recs.dataset import (
    NightlyRows,
    Request,
    World,
    context,
    item_features,
    sample_requests,
)
from training.recs.features import FEATURE_NAMES, features_for
from training.recs.metrics import summarize

log = logging.getLogger(__name__)

MODEL_NAME = "recs_model"
METHODS = ("popularity", "revisit", "covisitation", "ranker", "ranker_mmr")
OBJECTIVES = ("rank:ndcg", "rank:pairwise", "binary:logistic")
LAMBDAS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
NDCG_LOSS = 0.02  # MMR may cost this share of validation NDCG@10 for diversity
MMR_POOL = 50
PARAMS: dict[str, Any] = {"eval_metric": "ndcg@10", "max_depth": 6, "eta": 0.1,
                          "subsample": 0.8, "colsample_bytree": 0.8, "min_child_weight": 1,
                          "tree_method": "hist"}
DAY = pd.Timedelta(days=1)


@dataclass
class Built:
    """One request with its candidates and model rows."""

    req: Request
    ctx: CandidateContext
    cands: list[Candidate]
    x: np.ndarray
    y: np.ndarray


def build(world: World, reqs: Sequence[Request], limit: int = 200) -> list[Built]:
    """Candidates and features for each request, as serving would compute them at its `t`."""
    out = []
    for req in reqs:
        ctx, profile = context(world, req)
        cands = candidates(ctx, limit=limit)
        feats = item_features(world, [c.item_id for c in cands], req.t)
        x = features_for(cands, profile, feats, req.session)
        y = np.array([1.0 if c.item_id in req.truth else 0.0 for c in cands], dtype=np.float32)
        out.append(Built(req, ctx, cands, x, y))
    return out


def _matrix(built: Sequence[Built], *, positives_only: bool) -> xgb.DMatrix:
    keep = [b for b in built if len(b.cands) and (not positives_only or b.y.any())]
    x = np.vstack([b.x for b in keep])
    y = np.concatenate([b.y for b in keep])
    qid = np.repeat(np.arange(len(keep)), [len(b.cands) for b in keep])
    return xgb.DMatrix(x, label=y, qid=qid, feature_names=FEATURE_NAMES)


def fit(train: Sequence[Built], valid: Sequence[Built], *, objective: str, seed: int,
        rounds: int = 300) -> xgb.Booster:
    """XGBoost with early stopping on validation NDCG@10; the trees up to the best round."""
    booster = xgb.train({**PARAMS, "objective": objective, "seed": seed},
                        _matrix(train, positives_only=True), num_boost_round=rounds,
                        evals=[(_matrix(valid, positives_only=True), "valid")],
                        early_stopping_rounds=30, verbose_eval=False)
    return booster[: booster.best_iteration + 1]


def ranked_lists(booster: xgb.Booster, built: Sequence[Built], categories: np.ndarray, *,
                 lam: float | None, k: int = 20) -> list[list[int]]:
    """The ranker's top `k` per request; with `lam`, MMR over its top `MMR_POOL`."""
    out = []
    for b in built:
        if not b.cands:
            out.append([])
            continue
        scores = booster.inplace_predict(b.x)
        order = np.lexsort((np.arange(len(scores)), -scores))
        items = [b.cands[j].item_id for j in order]
        if lam is None:
            out.append(items[:k])
            continue
        pool = order[:MMR_POOL]
        picked = mmr([b.cands[j].item_id for j in pool], scores[pool].tolist(),
                     categories[[b.cands[j].item_id for j in pool]].tolist(), k=k, lam=lam)
        out.append(final_in_stock(picked, b.ctx.in_stock, backup=items, k=k))
    return out


def baseline_lists(built: Sequence[Built], method: str, k: int = 20) -> list[list[int]]:
    """Popularity, re-visit or co-visitation lists, in stock, padded with popular items."""
    out = []
    for b in built:
        ctx = b.ctx
        if method == "popularity":
            head: list[int] = []
        elif method == "revisit":
            head = list(dict.fromkeys([*ctx.session_items, *ctx.history_items]))
        elif method == "covisitation":
            cov = source_scores(ctx)["covisit"]
            head = sorted(cov, key=lambda i, c=cov: (-c[i], i))
        else:
            raise ValueError(method)
        out.append(final_in_stock(head, ctx.in_stock, backup=ctx.popular, k=k))
    return out


def evaluate(lists: Sequence[Sequence[int]], built: Sequence[Built], categories: np.ndarray,
             world: World) -> dict[str, float]:
    """Quality (`metrics.summarize`), intra-list diversity, coverage and in-stock share at 10."""
    m = summarize(lists, [b.req.truth for b in built])
    top = [list(lst[:10]) for lst in lists]
    m["ild@10"] = float(np.mean([intra_list_diversity(categories[t].tolist()) for t in top]))
    m["coverage@10"] = len({i for t in top for i in t}) / world.n_items
    shown = sum(len(t) for t in top)
    ok = sum(int((world.stock.total(np.asarray(t, dtype=np.int64), b.req.t) > 0).sum())
             for t, b in zip(top, built, strict=True) if t)
    m["in_stock_share"] = ok / shown if shown else 1.0
    return m


def choose_lambda(booster: xgb.Booster, valid: Sequence[Built], categories: np.ndarray,
                  world: World) -> tuple[float, list[dict[str, float]]]:
    """The most diverse lambda whose validation NDCG@10 is within `NDCG_LOSS` of lam = 1."""
    table = []
    for lam in LAMBDAS:
        m = evaluate(ranked_lists(booster, valid, categories, lam=lam), valid, categories, world)
        table.append({"lambda": lam, "ndcg@10": m["ndcg@10"], "ild@10": m["ild@10"]})
    best = table[0]["ndcg@10"]
    ok = [row for row in table if row["ndcg@10"] >= (1 - NDCG_LOSS) * best]
    return max(ok, key=lambda r: (r["ild@10"], r["lambda"]))["lambda"], table


def _world(events: pd.DataFrame, items: pd.DataFrame, frames: dict[str, pd.DataFrame],
           base: pd.Timestamp) -> World:
    ev = events[events["type"] != "restock"]
    act_t = seconds(ev["ts"], base)
    order = np.argsort(act_t, kind="stable")
    return World(nightly=NightlyRows(frames, base), stock=stock_timeline(items, events, base),
                 activity=activity_timeline(events, base), act_t=act_t[order],
                 act_item=ev["item_id"].to_numpy(np.int64)[order],
                 n_items=int(items["item_id"].max()) + 1)


def train(settings: Settings, *, service_name: str = "recs_ranker_v1",
          seeds: list[int] | None = None, test_days: int = 2, train_days: int = 5,
          n_train: int = 2000, n_valid: int = 1000, n_test: int = 2000) -> dict[str, Any]:
    """Fit, evaluate, save `recs_model` with its card; write `artifacts/recs/metrics.json`."""
    seeds = list(seeds) if seeds else [0, 1, 2]
    raw = settings.data_dir / "recs"
    items = pd.read_parquet(raw / "items.parquet")
    events = pd.read_parquet(raw / "events.parquet")
    base = events["ts"].min().floor("D")
    end = events["ts"].max().floor("D") + DAY
    test_start = end - test_days * DAY
    valid_start = test_start - DAY
    train_start = valid_start - train_days * DAY
    if train_start <= base + DAY:
        raise ValueError(f"{(end - base).days} days of events leave no training days; "
                         "generate more days")
    days = list(pd.date_range(train_start, end, freq="D"))
    frames = bf.nightly(events, items, days)
    bf.write(frames, settings.features_dir)  # the offline sources Feast materializes
    world = _world(events, items, frames, base)
    categories = np.full(world.n_items, -1, dtype=np.int64)
    categories[items["item_id"].to_numpy()] = items["category"].to_numpy()
    ev = bf.user_events(events, items)

    per_seed: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
    choice: dict[str, float] = {}
    lambda_table: list[dict[str, float]] = []
    objective, lam = OBJECTIVES[0], 1.0
    saved_booster: xgb.Booster | None = None
    rows: dict[str, int] = {}
    for n, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)

        def sample(start: pd.Timestamp, stop: pd.Timestamp, limit: int,
                   rng: np.random.Generator = rng) -> list[Built]:
            return build(world, sample_requests(ev, base, start=start, end=stop, cut=stop,
                                                rng=rng, limit=limit))

        train_b = sample(train_start, valid_start, n_train)
        valid_b = sample(valid_start, test_start, n_valid)
        test_b = sample(test_start, end, n_test)
        if n == 0:
            boosters = {}
            for obj in OBJECTIVES:
                boosters[obj] = fit(train_b, valid_b, objective=obj, seed=seed)
                choice[obj] = evaluate(ranked_lists(boosters[obj], valid_b, categories,
                                                    lam=None), valid_b, categories,
                                       world)["ndcg@10"]
            objective = max(OBJECTIVES, key=lambda o: choice[o])
            booster = boosters[objective]
            lam, lambda_table = choose_lambda(booster, valid_b, categories, world)
            saved_booster = booster
            rows = {"train_requests": len(train_b), "valid_requests": len(valid_b),
                    "test_requests": len(test_b),
                    "train_rows": int(sum(len(b.cands) for b in train_b))}
        else:
            booster = fit(train_b, valid_b, objective=objective, seed=seed)
        lists: dict[str, list[list[int]]] = {
            m: baseline_lists(test_b, m) for m in ("popularity", "revisit", "covisitation")}
        lists["ranker"] = ranked_lists(booster, test_b, categories, lam=None)
        lists["ranker_mmr"] = ranked_lists(booster, test_b, categories, lam=lam)
        for m in METHODS:
            per_seed[m].append(evaluate(lists[m], test_b, categories, world))
        log.info("seed %s: %s", seed, {m: round(per_seed[m][-1]["ndcg@10"], 4)
                                      for m in METHODS})
    metrics = _report(per_seed, seeds=seeds)
    assert saved_booster is not None
    metrics.update({
        "model": MODEL_NAME, "feature_service": service_name, "features": FEATURE_NAMES,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"), "device": "cpu",
        "objective": objective, "objective_choice": {"valid_ndcg@10": choice,
                                                     "rule": "best validation NDCG@10"},
        "mmr_lambda": lam, "lambda_choice": {"table": lambda_table, "rule": (
            f"most diverse lambda within {NDCG_LOSS:.0%} of lambda=1 validation NDCG@10")},
        "windows": {"train": [str(train_start.date()), str((valid_start - DAY).date())],
                    "valid": [str(valid_start.date())] * 2,
                    "test": [str(test_start.date()), str((end - DAY).date())]},
        "rows": rows, "rounds": saved_booster.num_boosted_rounds(),
    })
    metrics["lift"] = {
        "ndcg@10_vs_covisitation": metrics["ranker"]["ndcg@10"]
        / max(metrics["covisitation"]["ndcg@10"], 1e-12),
        "ndcg@10_vs_popularity": metrics["ranker"]["ndcg@10"]
        / max(metrics["popularity"]["ndcg@10"], 1e-12)}
    _save(settings, saved_booster, metrics, service_name=service_name, lam=lam)
    return metrics


def _report(per_seed: dict[str, list[dict[str, float]]], *, seeds: list[int],
            ) -> dict[str, Any]:
    out: dict[str, Any] = {"seeds": seeds}
    for m, runs in per_seed.items():
        keys = [k for k in runs[0] if k != "requests"]
        entry: dict[str, Any] = {k: float(np.mean([r[k] for r in runs])) for k in keys}
        entry["std"] = {k: float(np.std([r[k] for r in runs], ddof=1)) if len(runs) > 1
                        else 0.0 for k in keys}
        entry["per_seed"] = {k: [r[k] for r in runs] for k in [*keys, "requests"]}
        out[m] = entry
    out["in_stock_share"] = float(min(r["in_stock_share"] for r in per_seed["ranker_mmr"]))
    return out


def _save(settings: Settings, booster: xgb.Booster, metrics: dict[str, Any], *,
          service_name: str, lam: float) -> None:
    quality = ("ndcg@10", "hitrate@10", "recall@20", "ild@10", "coverage@10", "in_stock_share")
    card = ModelCard(
        name=MODEL_NAME, feature_service=service_name, features=FEATURE_NAMES,
        thresholds={"mmr_lambda": lam},
        periods={k: (v[0], v[1]) for k, v in metrics["windows"].items()},
        metrics={k: metrics["ranker_mmr"][k] for k in quality},
        baselines={m: {k: metrics[m][k] for k in quality} for m in METHODS
                   if m != "ranker_mmr"},
        backends=["xgboost"], trained_at=metrics["trained_at"], device="cpu")
    saved = bentoml.xgboost.save_model(MODEL_NAME, booster,
                                       labels={"feature_service": service_name},
                                       metadata=card.to_metadata())
    metrics["bentoml_tag"] = str(saved.tag)
    folder = settings.artifacts_dir / "recs"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_card(card.model_copy(update={"version": str(saved.tag)}), folder)


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    """The lift table `rtml train recs` prints."""
    lines = [f"objective {metrics['objective']} (validation NDCG@10: " + ", ".join(
        f"{k} {v:.4f}" for k, v in metrics["objective_choice"]["valid_ndcg@10"].items())
        + f"); MMR lambda {metrics['mmr_lambda']}",
        f"{'method':<14}{'NDCG@10':>18}{'HitRate@10':>12}{'Recall@20':>11}{'ILD@10':>8}"
        f"{'cover@10':>10}"]
    for m in METHODS:
        e = metrics[m]
        lines.append(f"{m:<14}{e['ndcg@10']:>10.4f} ± {e['std']['ndcg@10']:.4f}"
                     f"{e['hitrate@10']:>12.4f}{e['recall@20']:>11.4f}{e['ild@10']:>8.3f}"
                     f"{e['coverage@10']:>10.3f}")
    lift = metrics["lift"]
    lines.append(f"lift NDCG@10: x{lift['ndcg@10_vs_covisitation']:.2f} vs co-visitation, "
                 f"x{lift['ndcg@10_vs_popularity']:.2f} vs popularity; in-stock share "
                 f"{metrics['in_stock_share']:.3f}; seeds {metrics['seeds']}")
    return lines

