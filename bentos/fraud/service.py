"""Fraud scoring service: `bentoml serve bentos.fraud.service:FraudService` from the repo root.

The kit's scoring core (`rtml.serving.core`) reads the features and calls the model, each inside
its budget; this file says what a score means for a payment. A slow or failed stage answers
`approve` with `fallback: true` and the reason: a payment is never blocked by our outage. Every
response carries `Server-Timing`; every decision goes to the prediction log off the path. Past
`RTML_FRAUD__MAX_INFLIGHT` scoring requests in flight, new ones get 503 + `Retry-After` at once.
With `RTML_API_KEYS` set, both scoring endpoints answer 401 without one of the keys.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import bentoml
from pydantic import BaseModel, Field

from bentos.fraud.model import FraudModel
from bentos.fraud.schemas import EXAMPLE_TRANSACTION, Transaction
from feature_repo.fraud.request_features import ON_DEMAND
from feature_repo.fraud.specs import SERVING_DEFAULTS
from rtml.metrics import record_request
from rtml.serving.asgi import install
from rtml.serving.core import Scored, ScoringCore, service_options
from rtml.settings import Settings

SERVICE = "fraud"
EXAMPLE_INPUT = dict(EXAMPLE_TRANSACTION)
# What the model sees for an entity the online store does not know (a new card, a new terminal):
# no history, generated from the view specs (feature_repo/fraud/specs.py).
DEFAULT_FEATURES: dict[str, float] = SERVING_DEFAULTS
_settings = Settings(scenario="fraud")
SCORING_PATHS = ("/score", "/score_batch")


class Reason(BaseModel):
    """A feature that pushed the score up."""

    feature: str
    value: float
    contribution: float


class Decision(BaseModel):
    """The answer for one transaction."""

    transaction_id: str
    decision: Literal["approve", "review", "decline"]
    score: float | None
    fallback: bool
    fallback_reason: str | None = None
    model_version: str | None
    reasons: list[Reason] = Field(default_factory=list, description="for review and decline")
    defaults_used: list[str] = Field(default_factory=list, description="views with no entity row")


def decide(tx: Transaction, i: int, s: Scored, model: FraudModel | None) -> Decision:
    """Row `i`'s answer: the model's decision, or approve when a stage fell back."""
    version = model.version if model else None
    if s.scores is None or model is None or s.rows is None:
        return Decision(transaction_id=str(tx.transaction_id), decision="approve", score=None,
                        fallback=True, fallback_reason=s.reason, model_version=version)
    c = s.contributions.get(i)
    return Decision(transaction_id=str(tx.transaction_id), decision=model.decide(s.scores[i]),
                    score=round(float(s.scores[i]), 6), fallback=False, model_version=version,
                    reasons=model.reasons(c, s.vectors[i]) if c is not None else [],
                    defaults_used=s.rows[i].missing_views)


def log_entry(tx: Transaction, d: Decision, i: int, s: Scored, n: int, now: str) -> dict:
    """One prediction-log row (monitoring's input: see rtml.monitor.data)."""
    return {"request_id": uuid.uuid4().hex, "transaction_id": d.transaction_id,
            "customer_id": tx.customer_id, "terminal_id": tx.terminal_id, "amount": tx.amount,
            "event_timestamp": tx.timestamp.isoformat(),
            "features": s.rows[i].values if s.rows else {},
            "feature_event_times": s.rows[i].event_times if s.rows else {},
            "score": d.score, "decision": d.decision, "fallback": d.fallback,
            "fallback_reason": d.fallback_reason, "model_version": d.model_version,
            "features_ms": round(s.timings.get("features", 0.0), 3),
            "model_ms": round(s.timings.get("model", 0.0), 3),
            "total_ms": round(s.timings["total"], 3), "batch_rows": n, "logged_at": now}


@bentoml.service(**service_options(_settings, name=SERVICE, paths=SCORING_PATHS))
class FraudService:
    """Scores card payments inside the 50 ms budget; see the module docstring."""

    def __init__(self) -> None:
        self.settings = _settings
        self.core = ScoringCore(_settings, service=SERVICE, model_class=FraudModel,
                                model_tag=_settings.model_tag, defaults=DEFAULT_FEATURES,
                                on_demand=ON_DEMAND,
                                train_hint="rtml train fraud",
                                explain_at=lambda m: m.review_threshold)

    def __is_ready__(self) -> bool:
        return self.core.ready

    async def _score(self, txs: list[Transaction], ctx: bentoml.Context) -> list[Decision]:
        t0 = time.perf_counter()
        s = await self.core.score([tx.model_dump() for tx in txs])
        model: FraudModel | None = self.core.model  # type: ignore[assignment]
        decisions = [decide(tx, i, s, model) for i, tx in enumerate(txs)]
        s.timings["total"] = (time.perf_counter() - t0) * 1000
        ctx.response.headers["Server-Timing"] = s.server_timing()
        now = datetime.now(UTC).isoformat()
        for i, (tx, d) in enumerate(zip(txs, decisions, strict=True)):
            self.core.log.append(log_entry(tx, d, i, s, len(txs), now))
        record_request(service=SERVICE, timings_ms=s.timings, decisions=decisions,
                       event_times=[f.event_times for f in s.rows] if s.rows else [])
        return decisions

    @bentoml.api(route="/score", input_spec=Transaction)
    async def score(self, ctx: bentoml.Context, **tx: Any) -> Decision:
        """Score one transaction."""
        return (await self._score([Transaction.model_construct(**tx)], ctx))[0]

    @bentoml.api(route="/score_batch")
    async def score_batch(self, transactions: list[Transaction], ctx: bentoml.Context
                          ) -> list[Decision]:
        """Score many transactions with one feature read and one model call."""
        if len(transactions) > self.settings.max_batch_rows:
            raise bentoml.exceptions.InvalidArgument(
                f"transactions: at most {self.settings.max_batch_rows} per request, "
                f"got {len(transactions)}")
        return await self._score(transactions, ctx)


install(FraudService, service=SERVICE, paths=SCORING_PATHS, max_inflight=_settings.max_inflight,
        max_body_bytes=_settings.max_body_bytes, settings=_settings)
