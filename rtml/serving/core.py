"""The scoring core every BentoML service runs: features, then the model, each inside its budget.

Per request: one Redis round trip for every view of the model's FeatureService (under
`feature_timeout_ms`, behind a circuit breaker) -> the L1 cache when on -> the model through the
adaptive batcher (under `model_timeout_ms`; requests arriving together share one call, on the
backend measured fastest for its size). A slow or failed stage never raises: the request gets a
fallback reason (`feature_timeout: ...`, `model_overloaded: ...`) and the scenario answers its
safe default. Stage times and notes (`model;desc=` the backend, `cache;desc=` hit or miss) feed
`Server-Timing` and the metrics.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import bentoml
import numpy as np

from rtml.features.online import FeatureRow, OnDemand, OnlineReader, load_store
from rtml.metrics import serving_metrics
from rtml.redis import connect_async
from rtml.serving.asgi import NOT_READY, format_server_timing
from rtml.serving.batcher import Batcher, Overloaded
from rtml.serving.cache import L1Cache, row_key
from rtml.serving.model import BackendUnavailable, BoosterModel
from rtml.serving.predlog import PredictionLog
from rtml.settings import Settings

# (scores, {row index: contributions}) for the rows of one call.
ModelOut = tuple[np.ndarray, dict[int, np.ndarray]]


def service_options(settings: Settings, *, name: str, paths: tuple[str, ...]) -> dict[str, Any]:
    """`@bentoml.service(**service_options(...))`: what every scoring service sets the same way.

    Access logs off unless RTML_ACCESS_LOG=true (a log line per request costs more than the
    model). BentoML wraps every request in an OpenTelemetry span even with no exporter
    configured; the scoring `paths` skip it unless RTML_<SCENARIO>__TRACING=true (see
    docs/benchmarks.md).
    """
    return {"name": name, "workers": settings.serve_workers, "traffic": {"timeout": 10},
            "logging": {"access": {"enabled": settings.access_log}},
            "tracing": {"excluded_urls": [] if settings.tracing else list(paths)}}


class Breaker:
    """After `failures` consecutive feature-read errors, skip Redis but probe it every `open_s`.

    Open, every request answers its fallback at once except one every `open_s` seconds, which
    tries the store (half-open): a success closes the breaker, a failure keeps it open. A store
    back from an outage is found again within `open_s` (`rtml bench chaos` measures it), while a
    store that is down or hanging costs one request per `open_s`, not every request.
    """

    def __init__(self, failures: int = 3, open_s: float = 1.0) -> None:
        self.failures, self.open_s = failures, open_s
        self.count, self.open_until = 0, 0.0

    @property
    def open(self) -> bool:
        """True after `failures` errors in a row, until a read succeeds."""
        return self.count >= self.failures

    def allow(self) -> bool:
        """False while open, except for one probe every `open_s` seconds."""
        if not self.open:
            return True
        now = time.monotonic()
        if now < self.open_until:
            return False
        self.open_until = now + self.open_s  # this request is the probe; the next waits
        return True

    def record(self, ok: bool) -> None:
        """One read's outcome; the `failures`-th error in a row opens the breaker."""
        if ok:
            self.count = 0
            return
        self.count += 1
        if self.count == self.failures:
            self.open_until = time.monotonic() + self.open_s


@dataclass
class Scored:
    """One request through the core: what was read, what the model said, or why not."""

    rows: list[FeatureRow] | None  # None: the feature read fell back
    vectors: list[list[float]]  # model column order, one per row read
    scores: np.ndarray | None  # None: a fallback, `reason` says why
    contributions: dict[int, np.ndarray]  # for rows scoring at or above `explain_at`
    reason: str | None
    timings: dict[str, float] = field(default_factory=dict)  # stage -> ms
    notes: dict[str, str] = field(default_factory=dict)  # Server-Timing descriptions

    def server_timing(self) -> str:
        """The `Server-Timing` header value for this request."""
        return format_server_timing(self.timings, self.notes)


class ScoringCore:
    """Loads a model and its FeatureService reader, then scores rows of entity keys.

    Never raises on start: what is missing goes to `NOT_READY[service]` (served by `/readyz`) and
    every request falls back with `model_unavailable`.
    """

    def __init__(self, settings: Settings, *, service: str, model_class: type[BoosterModel],
                 model_tag: str, defaults: Mapping[str, float], train_hint: str,
                 on_demand: Mapping[str, OnDemand] | None = None,
                 explain_at: Callable[[Any], float] | None = None) -> None:
        s = self.settings = settings
        self.service = service
        self.model: BoosterModel | None = None
        self.reader: OnlineReader | None = None
        problems = []
        try:
            self.model = model_class.load(model_tag, backend=s.model_backend)
            # A child of "bentoml": BentoML configures that logger in each worker, so it is seen.
            logging.getLogger(f"bentoml.{service}").info(
                "%s model %s: %s", service, self.model.version, self.model.router.describe())
        except bentoml.exceptions.NotFound:
            problems.append(f"no model {model_tag!r} in the BentoML model store "
                            f"(train one: `{train_hint}`)")
        except BackendUnavailable as exc:
            problems.append(f"model backend: {exc}")
        if self.model is not None:
            try:
                self.reader = OnlineReader(store=load_store(s),
                                           service_name=self.model.feature_service,
                                           defaults=defaults, on_demand=on_demand)
                if self.reader.feature_names != self.model.features:
                    problems.append(f"feature service {self.model.feature_service!r} no longer "
                                    "matches the model's feature list: retrain or re-apply")
            except Exception as exc:  # a registry that is missing or lacks the service
                problems.append(f"feature service unavailable: {exc} (run `feast apply`)")
        if problems:
            NOT_READY[service] = "; ".join(problems)
        elif self.model is not None:
            self.model.warm_up()
        self.explain_at = (explain_at(self.model) if explain_at and self.model else math.inf)
        self.redis = connect_async(s, role="service")
        self.breaker = Breaker(open_s=s.breaker_probe_ms / 1000)
        self.log = PredictionLog(client=self.redis, stream=s.prediction_stream,
                                 maxlen=s.prediction_stream_maxlen,
                                 flush_ms=s.prediction_log_flush_ms)
        self.batch_size_hist, self.cache_lookups = serving_metrics()
        self.cache: L1Cache[tuple[float, np.ndarray | None]] | None = (
            L1Cache(ttl_s=s.cache_ttl_s, max_entries=s.cache_max_entries) if s.cache else None)
        self.batcher = Batcher(self._predict_batch, max_latency_ms=s.batch_max_latency_ms,
                               max_batch_size=s.batch_max_size)
        # Feast, BentoML and XGBoost leave ~10^6 long-lived objects; a full collection walking
        # them stalled the loop for 30-300 ms every few seconds under load. Freeze them out of the
        # collector's view now, and again once the first requests have built BentoML's lazy state.
        gc.collect()
        gc.freeze()
        self._requests = 0

    @property
    def ready(self) -> bool:
        """What the service's `__is_ready__` answers."""
        return self.service not in NOT_READY

    async def score(self, rows: list[Mapping[str, Any]]) -> Scored:
        """Features for `rows` (entity keys and request values), then the model's answer."""
        self._requests += 1
        if self._requests in (1, 200):
            gc.freeze()  # cheap (no collection): moves today's survivors out of every pass
        out = Scored(rows=None, vectors=[], scores=None, contributions={}, reason=None)
        out.rows, out.reason = await self._features(rows, out.timings)
        if out.rows is not None:
            assert self.reader is not None
            out.vectors = [self.reader.vector(f) for f in out.rows]
            x = np.asarray(out.vectors, dtype=np.float32)
            t0 = time.perf_counter()
            try:
                result, out.reason = await (self._cached(x, out.notes) if self.cache is not None
                                            else self._call_model(x, out.notes))
            finally:
                out.timings["model"] = (time.perf_counter() - t0) * 1000
            if result is not None:
                out.scores, out.contributions = result
        return out

    async def _features(self, rows: list[Mapping[str, Any]], timings: dict[str, float]
                        ) -> tuple[list[FeatureRow] | None, str | None]:
        t0 = time.perf_counter()
        try:
            if self.reader is None:
                return None, "model_unavailable"
            if not self.breaker.allow():
                return None, "feature_store_unavailable: circuit open after repeated errors"
            budget = self.settings.feature_timeout_ms / 1000
            result = await asyncio.wait_for(self.reader.read(self.redis, list(rows)), budget)
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

    async def _predict_batch(self, inputs: tuple[np.ndarray, ...] | list[np.ndarray]
                             ) -> list[tuple[np.ndarray, dict[int, np.ndarray], str]]:
        """One model call for every request the batcher gathered.

        Runs inline on the event loop: a 0.2 ms XGBoost call costs less than the hop to a worker
        thread and back. Contributions only for the rows at or above `explain_at`.
        """
        assert self.model is not None
        x = np.vstack(inputs) if len(inputs) > 1 else inputs[0]
        self.batch_size_hist.observe(len(x))
        scores = self.model.predict(x)
        flagged = np.flatnonzero(scores >= self.explain_at)
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

    async def _call_model(self, x: np.ndarray, notes: dict[str, str]
                          ) -> tuple[ModelOut | None, str | None]:
        s = self.settings
        try:
            if s.batching:
                result = await self.batcher(x, timeout_s=s.model_timeout_ms / 1000)
            else:
                result = (await self._predict_batch((x,)))[0]
            scores, contribs, notes["model"] = result
            return (scores, contribs), None
        except Overloaded:
            return None, "model_overloaded: batch could not meet its latency budget"
        except TimeoutError:
            return None, f"model_timeout: over {s.model_timeout_ms:g} ms"
        except Exception as exc:
            return None, f"model_error: {type(exc).__name__}: {exc}"[:200]

    async def _cached(self, x: np.ndarray, notes: dict[str, str]
                      ) -> tuple[ModelOut | None, str | None]:
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

