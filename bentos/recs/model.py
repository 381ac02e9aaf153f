"""Which scorer serves: the trained ranker from the BentoML model store, else the heuristic.

The ranker is served natively (XGBoost; an XGBRanker does not convert to ONNX, see DESIGN.md)
through the kit's `BoosterModel`, with the features `training.recs` built it on and the MMR
lambda its card records. With no ranker in the store yet, the heuristic answers and says so in
every answer's `model_version` and in the log: a degraded ranking, not a refusal to recommend.
"""

from __future__ import annotations

import logging

import bentoml

from bentos.recs.ranking import DEFAULT_LAMBDA, HeuristicScorer, ModelScorer, Scorer
from rtml.serving.model import BoosterModel
from rtml.settings import Settings

log = logging.getLogger("bentoml.recs")


def load_scorer(settings: Settings) -> Scorer:
    """The ranker named by `model_tag`, or `HeuristicScorer` when there is none (logged)."""
    tag = str(settings.model_tag)
    try:
        model = BoosterModel.load(tag, backend="xgboost")
    except bentoml.exceptions.NotFound:
        log.warning("recs: no model %r in the BentoML model store (train one: `rtml train "
                    "recs`); serving the heuristic ranking", tag)
        return HeuristicScorer()
    model.warm_up()
    scorer = scorer_for(model)
    log.info("recs model %s (MMR lambda %.2f)", model.version, scorer.mmr_lambda)
    return scorer


def scorer_for(model: BoosterModel) -> ModelScorer:
    """The ranker over `training.recs.features.features_for`, columns as its card lists them."""
    from training.recs.features import FEATURE_NAMES, features_for

    if list(model.features) != list(FEATURE_NAMES):
        raise ValueError(f"{model.version}: trained on other columns than "
                         "training.recs.features builds: retrain (`rtml train recs`)")
    lam = float(model.card.thresholds.get("mmr_lambda", DEFAULT_LAMBDA))
    return ModelScorer(version=model.version, mmr_lambda=lam, features=features_for,
                       predict=model.predict)
