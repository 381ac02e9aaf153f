"""Train the fraud model on a point-in-time training set of one FeatureService.

Time split with the label delay: a model deployed on day T has only seen labels up to T - 7 days,
so the training period ends `gap_days` before the held-out period begins. The model is compared
on the held-out period with the rule most processors start from (flag large amounts) and with two
competitive baselines (`training.fraud.baselines`): a hand-written rule set and a logistic
regression.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import average_precision_score

from rtml.features import pit
from rtml.features.online import load_store, service_feature_names
from rtml.serving.accel import xgboost_device
from rtml.serving.backends import ONNX_TOLERANCE, check_onnx, to_onnx
from rtml.serving.card import ModelCard, write_card
from rtml.settings import Settings
from training.fraud.baselines import fit_logistic, logistic_score, rules_score
from training.fraud.metrics import evaluate, threshold_at_fpr

log = logging.getLogger(__name__)

MODEL_NAME = "fraud_model"
# Review queue sized for 1% of genuine traffic; decline only where 0.1% of genuine would be hit.
REVIEW_FPR = 0.01
DECLINE_FPR = 0.001
PARAMS: dict[str, Any] = {
    "objective": "binary:logistic",
    "eval_metric": "aucpr",
    "max_depth": 6,
    "eta": 0.1,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 1,
    "tree_method": "hist",
}


@dataclass(frozen=True)
class Split:
    """Day ranges (days since the data start, half-open) of one training run."""

    train: tuple[int, int]
    valid: tuple[int, int]
    test: tuple[int, int]


def make_split(n_days: int, *, warmup_days: int = 30, gap_days: int = 7, test_days: int = 14,
               valid_days: int = 7, train_days: int | None = None) -> Split:
    """Warm-up (30-day windows fill) | train | valid | label-delay gap | test.

    `train_days` keeps only the most recent days before validation (None: all after warm-up).
    """
    test = (n_days - test_days, n_days)
    valid_end = test[0] - gap_days
    valid = (valid_end - valid_days, valid_end)
    first = warmup_days if train_days is None else max(warmup_days, valid[0] - train_days)
    train = (first, valid[0])
    if train[1] - train[0] < 7:
        raise ValueError(f"{n_days} days leave under a week to train on; generate more days")
    return Split(train, valid, test)


def training_frame(settings: Settings, service_name: str, *, first_day: int,
                   chunk_days: int = 7) -> pd.DataFrame:
    """Point-in-time features of the service for every transaction from `first_day` on."""
    tx = pd.read_parquet(settings.raw_dir / "transactions.parquet")
    tx = tx[tx["day"] >= first_day]
    entity_df = tx[["transaction_id", "event_timestamp", "customer_id", "terminal_id", "amount",
                    "is_fraud", "day"]].copy()
    return point_in_time_features(load_store(settings), service_name, entity_df,
                                  chunk_days=chunk_days)


def point_in_time_features(store: Any, service_name: str, entity_df: pd.DataFrame, *,
                           chunk_days: int = 7) -> pd.DataFrame:
    """The service's features for each payment as serving would read them when it is scored.

    `entity_df`: one row per payment (`transaction_id`, `event_timestamp`, the entity ids,
    `amount`, anything else to carry along); returned with the features, by `transaction_id`.
    """
    return pit.point_in_time_features(store, service_name, entity_df, id_column="transaction_id",
                                      chunk_days=chunk_days)


def fit_booster(train_df: pd.DataFrame, valid_df: pd.DataFrame, features: list[str], *,
                seed: int, rounds: int, device: str) -> xgb.Booster:
    """XGBoost with early stopping on the validation days; the trees up to the best round."""
    dtrain = xgb.DMatrix(train_df[features], label=train_df["is_fraud"], feature_names=features)
    dvalid = xgb.DMatrix(valid_df[features], label=valid_df["is_fraud"], feature_names=features)
    booster = xgb.train(
        {**PARAMS, "seed": seed, "device": device},
        dtrain,
        num_boost_round=rounds,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=30,
        verbose_eval=False,
    )
    booster = booster[: booster.best_iteration + 1]
    booster.set_param({"device": "cpu"})  # the saved model loads anywhere; serving picks device
    return booster


def seed_spread(train_df: pd.DataFrame, valid_df: pd.DataFrame, test_df: pd.DataFrame,
                features: list[str], *, seeds: list[int], rounds: int, device: str,
                first: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Test average precision of each scorer refitted per seed: values, mean, std (ddof=1).

    Only the models are refitted; the training frame and split are the same for every seed.
    `first` holds the APs already measured with `seeds[0]`. XGBoost's seed drives its row and
    column subsampling; the logistic regression (lbfgs) and the rules do not depend on it, so
    their spread is zero by construction and listed for a like-for-like table.
    """
    y = test_df["is_fraud"].to_numpy()
    ap: dict[str, list[float]] = {name: [value] for name, value in first.items()}
    for seed in seeds[1:]:
        booster = fit_booster(train_df, valid_df, features, seed=seed, rounds=rounds,
                              device=device)
        pred = booster.inplace_predict(test_df[features].to_numpy(dtype=np.float32))
        ap["xgboost"].append(float(average_precision_score(y, pred)))
        lr = fit_logistic(train_df, features, seed=seed)
        ap["logistic_regression"].append(
            float(average_precision_score(y, logistic_score(lr, test_df, features))))
        ap["rules"].append(first["rules"])
        ap["amount_rule"].append(first["amount_rule"])
    return {name: {"seeds": list(seeds), "ap": values, "mean": float(np.mean(values)),
                   "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
            for name, values in ap.items()}


def train(settings: Settings, *, service_name: str = "fraud_model_v1", rounds: int = 300,
          seed: int = 0, train_days: int | None = None, test_days: int = 14,
          seeds: list[int] | None = None) -> dict[str, Any]:
    """Build the training set, fit, evaluate against the baselines, save model, card, metrics.

    The model card (`rtml.serving.card`) goes into the BentoML model's metadata and to
    `artifacts/fraud/card.json`; `metrics.json` is the full report for a reviewer.

    `seeds` (e.g. [0, 1, 2]): also refit the models with each seed on the same training frame
    and report test average precision per seed with its spread (`metrics["seeds"]`); the model
    saved is the one fitted with `seeds[0]`. None: one fit with `seed`.
    """
    seeds = list(seeds) if seeds else [seed]
    store = load_store(settings)
    features = service_feature_names(store, service_name)
    n_days = int(pd.read_parquet(settings.raw_dir / "transactions.parquet", columns=["day"])
                 ["day"].max()) + 1
    split = make_split(n_days, train_days=train_days, test_days=test_days)
    frame = training_frame(settings, service_name, first_day=split.train[0])

    def part(days: tuple[int, int]) -> pd.DataFrame:
        return frame[(frame["day"] >= days[0]) & (frame["day"] < days[1])]

    train_df, valid_df, test_df = part(split.train), part(split.valid), part(split.test)
    device = xgboost_device()
    booster = fit_booster(train_df, valid_df, features, seed=seeds[0], rounds=rounds,
                          device=device)

    def score(df: pd.DataFrame) -> np.ndarray:
        return booster.inplace_predict(df[features].to_numpy(dtype=np.float32))

    valid_score = score(valid_df)
    y_valid = valid_df["is_fraud"].to_numpy()
    thresholds = {
        "review": threshold_at_fpr(y_valid, valid_score, REVIEW_FPR),
        "decline": threshold_at_fpr(y_valid, valid_score, DECLINE_FPR),
    }
    model_metrics = evaluate(test_df, score(test_df))
    # Serving may run the trees in ONNX Runtime: export now and refuse a graph that scores the
    # held-out payments differently (raises OnnxMismatchError; nothing is saved).
    onnx_model = to_onnx(booster, len(features))
    onnx_diff = check_onnx(booster, onnx_model, test_df[features].to_numpy(dtype=np.float32))
    baseline_metrics = evaluate(test_df, test_df["amount"].to_numpy())
    rules_metrics = evaluate(test_df, rules_score(test_df))
    logistic = fit_logistic(train_df, features, seed=seeds[0])
    logistic_metrics = evaluate(test_df, logistic_score(logistic, test_df, features))
    start = pd.read_parquet(settings.raw_dir / "transactions.parquet", columns=["event_timestamp"])[
        "event_timestamp"].min().normalize()

    def window(days: tuple[int, int]) -> list[str]:
        return [str((start + pd.Timedelta(days=d)).date()) for d in (days[0], days[1] - 1)]

    metrics = {
        "model": MODEL_NAME,
        "feature_service": service_name,
        "features": features,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": device,
        "rounds": booster.num_boosted_rounds(),
        "windows": {"train": window(split.train), "valid": window(split.valid),
                    "test": window(split.test)},
        "rows": {"train": len(train_df), "valid": len(valid_df), "test": len(test_df)},
        "fraud_share_test": float(test_df["is_fraud"].mean()),
        "thresholds": thresholds,
        "onnx": {"max_abs_diff_test": onnx_diff, "tolerance": ONNX_TOLERANCE,
                 "bytes": len(onnx_model)},
        "xgboost": model_metrics,
        "baseline_amount_rule": baseline_metrics,
        "baseline_rules": rules_metrics,
        "baseline_logistic_regression": logistic_metrics,
    }
    if len(seeds) > 1:
        first = {"xgboost": model_metrics["average_precision"],
                 "logistic_regression": logistic_metrics["average_precision"],
                 "rules": rules_metrics["average_precision"],
                 "amount_rule": baseline_metrics["average_precision"]}
        metrics["seeds"] = seed_spread(train_df, valid_df, test_df, features, seeds=seeds,
                                       rounds=rounds, device=device, first=first)
    card = ModelCard(
        name=MODEL_NAME, feature_service=service_name, features=features, thresholds=thresholds,
        periods={k: (v[0], v[1]) for k, v in metrics["windows"].items()},
        metrics=model_metrics,
        baselines={"amount_rule": baseline_metrics, "rules": rules_metrics,
                   "logistic_regression": logistic_metrics},
        backends=["xgboost", "xgboost-gpu", "onnx"], trained_at=metrics["trained_at"],
        device=device)
    saved = bentoml.xgboost.save_model(
        MODEL_NAME,
        booster,
        labels={"feature_service": service_name},
        custom_objects={"onnx": onnx_model},  # the same trees for ONNX Runtime, checked above
        metadata=card.to_metadata(),
    )
    metrics["bentoml_tag"] = str(saved.tag)
    write_reference(settings, test_df, features=features, scores=score(test_df),
                    thresholds=thresholds, seed=seed)
    out = write_metrics(settings, metrics)
    write_card(card.model_copy(update={"version": str(saved.tag)}),
               settings.artifacts_dir / "fraud")
    log.info("saved %s; metrics in %s", saved.tag, out)
    return metrics


REFERENCE_ROWS = 50_000


def write_reference(settings: Settings, frame: pd.DataFrame, *, features: list[str],
                    scores: np.ndarray, thresholds: dict[str, float], seed: int = 0) -> Path:
    """`artifacts/fraud/reference.parquet`: what monitoring compares live traffic with.

    The held-out period as the model saw it (features, score, decision, truth), sampled to
    `REFERENCE_ROWS`: drift reports need the training-time distributions, and rebuilding them
    from Feast at monitoring time would cost minutes.
    """
    ref = frame[["transaction_id", "event_timestamp", "day", "is_fraud", *features]].copy()
    ref["score"] = scores.astype(np.float64)
    ref["decision"] = np.where(scores >= thresholds["decline"], "decline",
                               np.where(scores >= thresholds["review"], "review", "approve"))
    if len(ref) > REFERENCE_ROWS:
        ref = ref.sample(n=REFERENCE_ROWS, random_state=seed)
    out = settings.artifacts_dir / "fraud" / "reference.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    ref.reset_index(drop=True).to_parquet(out, index=False)
    return out


def write_metrics(settings: Settings, metrics: dict[str, Any]) -> Path:
    """`artifacts/fraud/metrics.json`, the file a reviewer opens first."""
    out = settings.artifacts_dir / "fraud" / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics, indent=2) + "\n")
    return out
