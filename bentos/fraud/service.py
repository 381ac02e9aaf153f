"""Fraud scoring service: `bentoml serve bentos.fraud.service:FraudService` from the repo root.

Per request: validate -> one Redis round trip for every view of the model's FeatureService ->
the L1 cache (when on) -> the model through BentoML's adaptive batcher (requests arriving together
share one call, on the backend measured fastest for its size) -> decision and reasons. A slow or
failed feature read or model call answers `approve` with `fallback: true` and the reason: a
payment is never blocked by our outage. Every response carries
`Server-Timing` with its stage times (`model;desc=` names the backend, `cache;desc=` hit or
miss); every decision goes to the prediction log off the path. Past `RTML_MAX_INFLIGHT` scoring
requests in flight, new ones get 503 + `Retry-After` at once (`rtml.serving.asgi.Admission`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import bentoml
import numpy as np
from bentoml._internal.marshal.dispatcher import CorkDispatcher
from pydantic import BaseModel, Field

from bentos.fraud.model import BackendUnavailable, FraudModel
from bentos.fraud.schemas import EXAMPLE_TRANSACTION, Transaction
from feature_repo.fraud.request_features import ON_DEMAND
from feature_repo.fraud.specs import SERVING_DEFAULTS
from rtml.features.online import OnlineReader, load_store
from rtml.metrics import record_request, serving_metrics
from rtml.redis import connect_async
from rtml.serving.asgi import NOT_READY, Admission, BodyLimit, Readiness, format_server_timing
from rtml.serving.cache import L1Cache, row_key
from rtml.serving.predlog import PredictionLog
from rtml.settings import Settings

SERVICE = "fraud"
EXAMPLE_INPUT = dict(EXAMPLE_TRANSACTION)
# What the model sees for an entity the online store does not know (a new card, a new terminal):
# no history, generated from the view specs (feature_repo/fraud/specs.py).
DEFAULT_FEATURES: dict[str, float] = SERVING_DEFAULTS
_OVERLOADED = object()
_settings = Settings()
SCORING_PATHS = ("/score", "/score_batch")
# A child of "bentoml": BentoML configures that logger in each worker, so the line is seen.
log = logging.getLogger(f"bentoml.{SERVICE}")


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


class _Breaker:
    """After `failures` consecutive feature-read errors, skip Redis for `open_s` seconds."""

    def __init__(self, failures: int = 3, open_s: float = 1.0) -> None:
        self.failures, self.open_s = failures, open_s
        self.count, self.open_until = 0, 0.0

    def allow(self) -> bool:
        return time.monotonic() >= self.open_until

    def record(self, ok: bool) -> None:
        self.count = 0 if ok else self.count + 1
        if self.count >= self.failures:
            self.open_until, self.count = time.monotonic() + self.open_s, 0


@bentoml.service(
    name=SERVICE,
    workers=_settings.serve_workers,
    traffic={"timeout": 10},
    logging={"access": {"enabled": False}},  # per-request log lines cost more than the model
    # BentoML wraps every request in an OpenTelemetry span even with no exporter configured;
    # the scoring paths skip it unless RTML_TRACING=true (see docs/benchmarks.md).
    tracing={"excluded_urls": [] if _settings.tracing else list(SCORING_PATHS)},
)
class FraudService:
    """Scores card payments inside the 50 ms budget; see the module docstring."""

    def __init__(self) -> None:
        s = self.settings = _settings
        self.model: FraudModel | None = None
        self.reader: OnlineReader | None = None
        problems = []
        try:
            self.model = FraudModel.load(s.fraud_model_tag, backend=s.model_backend)
            log.info("fraud model %s: %s", self.model.version, self.model.router.describe())
        except bentoml.exceptions.NotFound:
            problems.append(f"no model {s.fraud_model_tag!r} in the BentoML model store "
                            "(train one: `rtml train fraud`)")
        except BackendUnavailable as exc:
            problems.append(f"model backend: {exc}")
        if self.model is not None:
            try:
                self.reader = OnlineReader(store=load_store(s),
                                           service_name=self.model.feature_service,
                                           defaults=DEFAULT_FEATURES, on_demand=ON_DEMAND)
                if self.reader.feature_names != self.model.features:
                    problems.append(f"feature service {self.model.feature_service!r} no longer "
                                    "matches the model's feature list: retrain or re-apply")
            except Exception as exc:  # a registry that is missing or lacks the service
                problems.append(f"feature service unavailable: {exc} (run `feast apply`)")
        if problems:
            NOT_READY[SERVICE] = "; ".join(problems)
        elif self.model is not None:  # first-call costs (predictor set-up) before traffic
            warm = np.zeros((1, len(self.model.features)), dtype=np.float32)
            self.model.predict(warm)
            self.model.contributions(warm)
        self.redis = connect_async(s, role="service")
        self.breaker = _Breaker()
        self.log = PredictionLog(client=self.redis, stream=s.prediction_stream,
                                 maxlen=s.prediction_stream_maxlen,
                                 flush_ms=s.prediction_log_flush_ms)
        self.batch_size_hist, self.cache_lookups = serving_metrics()
        self.cache: L1Cache[tuple[float, np.ndarray | None]] | None = (
            L1Cache(ttl_s=s.cache_ttl_s, max_entries=s.cache_max_entries) if s.cache else None)
        # Feast, BentoML and XGBoost leave ~10^6 long-lived objects; a full collection walking
        # them stalled the loop for 30-300 ms every few seconds under load. Freeze them out of the
        # collector's view now, and again once the first requests have built BentoML's lazy state.
        gc.collect()
        gc.freeze()
        self._requests = 0
        self._dispatch = CorkDispatcher(
            max_latency_in_ms=s.batch_max_latency_ms, max_batch_size=s.batch_max_size,
            fallback=lambda: _OVERLOADED, get_batch_size=lambda x: len(x),
        )(self._predict_batch)

    def __is_ready__(self) -> bool:
        return SERVICE not in NOT_READY

    async def _predict_batch(self, inputs: tuple[np.ndarray, ...]) -> list[Any]:
        """One model call for every request the batcher gathered.

        Runs inline on the event loop: a 0.2 ms XGBoost call costs less than the hop to a worker
        thread and back. Contributions (reasons) only for the rows the thresholds flag.
        """
        assert self.model is not None
        x = np.vstack(inputs) if len(inputs) > 1 else inputs[0]
        self.batch_size_hist.observe(len(x))
        scores = self.model.predict(x)
        flagged = np.flatnonzero(scores >= self.model.review_threshold)
        contribs = self.model.contributions(x[flagged]) if len(flagged) else None
        backend = self.model.backend_for(len(x))
        out, i = [], 0
        for part in inputs:
            n = len(part)
            mine = {int(j) - i: contribs[k] for k, j in enumerate(flagged)
                    if i <= j < i + n} if contribs is not None else {}
            out.append((scores[i:i + n], mine, backend))
            i += n
        return out

    async def _features(self, rows: list[dict[str, Any]], timings: dict[str, float]):
        t0 = time.perf_counter()
        try:
            if self.reader is None:
                return None, "model_unavailable"
            if not self.breaker.allow():
                return None, "feature_store_unavailable: circuit open after repeated errors"
            budget = self.settings.feature_timeout_ms / 1000
            result = await asyncio.wait_for(self.reader.read(self.redis, rows), budget)
            self.breaker.record(True)
            return result, None
        except TimeoutError:
            self.breaker.record(False)
            return None, f"feature_timeout: over {self.settings.feature_timeout_ms:g} ms"
        except Exception as exc:
            self.breaker.record(False)
            return None, f"feature_store_unavailable: {type(exc).__name__}: {exc}"[:200]
        finally:
            timings["features"] = (time.perf_counter() - t0) * 1000

    async def _model(self, x: np.ndarray, timings: dict[str, float], notes: dict[str, str]):
        """(scores, {row: contributions}) for the rows of `x`, or (None, fallback reason)."""
        t0 = time.perf_counter()
        try:
            if self.cache is None:
                return await self._call_model(x, notes)
            return await self._cached(x, notes)
        finally:
            timings["model"] = (time.perf_counter() - t0) * 1000

    async def _call_model(self, x: np.ndarray, notes: dict[str, str]):
        try:
            # A request at least a full batch long is a batch already: the dispatcher cannot
            # fit it (it answered such requests with a malformed result or an overload).
            if self.settings.batching and len(x) < self.settings.batch_max_size:
                # BentoML's dispatcher answers a cancelled wait with its fallback (`_OVERLOADED`)
                # instead of raising, so `wait_for` reported a model over budget as overloaded:
                # whether the budget ran out is the deadline's to say.
                async with asyncio.timeout(self.settings.model_timeout_ms / 1000) as budget:
                    result = await self._dispatch(x)
                if budget.expired():
                    raise TimeoutError
            else:
                result = (await self._predict_batch((x,)))[0]
            if result is _OVERLOADED or result is None:
                return None, "model_overloaded: batch could not meet its latency budget"
            scores, contribs, notes["model"] = result
            return (scores, contribs), None
        except TimeoutError:
            return None, f"model_timeout: over {self.settings.model_timeout_ms:g} ms"
        except Exception as exc:
            return None, f"model_error: {type(exc).__name__}: {exc}"[:200]

    async def _cached(self, x: np.ndarray, notes: dict[str, str]):
        """Rows answered within the TTL come from the L1 cache; only the others reach the model."""
        assert self.cache is not None and self.model is not None
        keys = [row_key(self.model.version, row) for row in x]
        found = [self.cache.get(k) for k in keys]
        missed = [i for i, f in enumerate(found) if f is None]
        hits = len(keys) - len(missed)
        if hits:
            self.cache_lookups.labels(result="hit").inc(hits)
        if missed:
            self.cache_lookups.labels(result="miss").inc(len(missed))
        notes["cache"] = "hit" if not missed else "miss" if not hits else "partial"
        if missed:
            result, reason = await self._call_model(x[missed] if hits else x, notes)
            if result is None:
                return None, reason
            scores, contribs = result
            for j, i in enumerate(missed):
                found[i] = (float(scores[j]), contribs.get(j))
                self.cache.put(keys[i], found[i])
        return (np.array([f[0] for f in found]),
                {i: f[1] for i, f in enumerate(found) if f[1] is not None}), None

    async def _score(self, txs: list[Transaction], ctx: bentoml.Context) -> list[Decision]:
        t0 = time.perf_counter()
        self._requests += 1
        if self._requests in (1, 200):
            gc.freeze()  # cheap (no collection): moves today's survivors out of every pass
        timings: dict[str, float] = {}
        notes: dict[str, str] = {}  # Server-Timing descriptions: backend, cache hit/miss
        rows = [tx.model_dump() for tx in txs]
        feats, reason = await self._features(rows, timings)
        model_out = None
        vectors: list[list[float]] = []
        if feats is not None:
            assert self.reader is not None
            vectors = [self.reader.vector(f) for f in feats]
            model_out, reason = await self._model(np.asarray(vectors, dtype=np.float32), timings,
                                                  notes)
        decisions = []
        for i, tx in enumerate(txs):
            if model_out is None:
                decisions.append(Decision(
                    transaction_id=str(tx.transaction_id), decision="approve", score=None,
                    fallback=True, fallback_reason=reason,
                    model_version=self.model.version if self.model else None))
                continue
            assert self.model is not None and feats is not None
            scores, contribs = model_out
            decisions.append(Decision(
                transaction_id=str(tx.transaction_id), decision=self.model.decide(scores[i]),
                score=round(float(scores[i]), 6), fallback=False,
                model_version=self.model.version,
                reasons=self.model.reasons(contribs[i], vectors[i]) if i in contribs else [],
                defaults_used=feats[i].missing_views))
        timings["total"] = (time.perf_counter() - t0) * 1000
        ctx.response.headers["Server-Timing"] = format_server_timing(timings, notes)
        self._log(txs, decisions, feats, timings)
        record_request(service=SERVICE, timings_ms=timings, decisions=decisions,
                       event_times=[f.event_times for f in feats] if feats else [])
        return decisions

    def _log(self, txs, decisions, feats, timings) -> None:
        now = datetime.now(UTC).isoformat()
        for i, (tx, d) in enumerate(zip(txs, decisions, strict=True)):
            self.log.append({
                "request_id": uuid.uuid4().hex, "transaction_id": d.transaction_id,
                "customer_id": tx.customer_id, "terminal_id": tx.terminal_id,
                "amount": tx.amount, "event_timestamp": tx.timestamp.isoformat(),
                "features": feats[i].values if feats else {},
                "feature_event_times": feats[i].event_times if feats else {},
                "score": d.score, "decision": d.decision, "fallback": d.fallback,
                "fallback_reason": d.fallback_reason, "model_version": d.model_version,
                "features_ms": round(timings.get("features", 0.0), 3),
                "model_ms": round(timings.get("model", 0.0), 3),
                "total_ms": round(timings["total"], 3), "batch_rows": len(txs),
                "logged_at": now,
            })

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


# Outermost first: a shed request costs no body read.
FraudService.add_asgi_middleware(Admission, max_inflight=_settings.max_inflight,
                                 paths=SCORING_PATHS)
FraudService.add_asgi_middleware(BodyLimit, max_bytes=_settings.max_body_bytes)
FraudService.add_asgi_middleware(Readiness, service=SERVICE)
