"""Recommendations: `bentoml serve bentos.recs.service:RecsService` from the repo root.

    GET  /recommendations?user_id=42&k=10        the session as the stream has it
    POST /recommendations  {"user_id": 42, "k": 10, "session": {"items": [1017, 52]}}

Per request, each stage inside what is left of `RTML_RECS__REQUEST_BUDGET_MS` (and each Redis
read inside `RTML_RECS__FEATURE_TIMEOUT_MS`): cache (L1 lookup; the user's profile and session
and the L2 entry, read together), candidates (co-visit lists of the session's items, then the
generator, or the session's sources merged into the L2 entry), features (every candidate's item
views: out-of-stock candidates leave here), model, rerank (MMR, then a last stock read so that
only items in stock *now* go out). Each stage's time is in `Server-Timing`. A stage that fails or
would start past the budget answers the fallback: popular items in stock, `fallback: true` with
the reason. An unknown user with no session gets the cold-start list (popular, trending),
flagged. GET answers carry `Cache-Control` and an `ETag` (`If-None-Match` -> 304); every answer
is logged as impressions through the kit's prediction log, off the request path.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, TypeVar

import bentoml
import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from bentos.recs import ranking as rk
from bentos.recs.caching import cache_control, etag, l1_key, not_modified
from bentos.recs.fallback import FallbackLists
from bentos.recs.model import load_scorer
from bentos.recs.online import RecsOnline, as_ints, known, read_l2
from bentos.recs.schemas import (
    EXAMPLE_INPUT,
    BadRequest,
    Recommendation,
    Recommendations,
    parse_body,
    parse_query,
)
from rtml.features.online import load_store
from rtml.metrics import record_request
from rtml.redis import connect_async
from rtml.serving.asgi import NOT_READY, format_server_timing, install
from rtml.serving.cache import L1Cache
from rtml.serving.core import Breaker, service_options
from rtml.serving.predlog import PredictionLog
from rtml.settings import Settings

__all__ = ["EXAMPLE_INPUT", "RecsService"]

SERVICE = "recs"
PATHS = ("/recommendations",)
_settings = Settings(scenario="recs")
app = FastAPI(title="rtml recommendations", openapi_url=None, docs_url=None, redoc_url=None)
T = TypeVar("T")
log = logging.getLogger("bentoml.recs")
# A fallback re-reads the stock of what it answers within this, else answers the list as the
# refresher last checked it (at most bentos.recs.fallback.REFRESH_S old).
FALLBACK_CHECK_MS = 10.0


class StageFailed(RuntimeError):
    """A stage that failed or ran out of budget: the message is the fallback reason."""


@dataclass
class Answer:
    """What one request produced, before it becomes HTTP."""

    user_id: int
    k: int
    items: list[Recommendation] = field(default_factory=list)
    cold_start: bool = False
    fallback: bool = False
    reason: str | None = None
    version: str | None = None
    session: list[int] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def body(self) -> Recommendations:
        """The response model."""
        return Recommendations(user_id=self.user_id, k=self.k, items=self.items,
                               cold_start=self.cold_start, fallback=self.fallback,
                               fallback_reason=self.reason, model_version=self.version)


@bentoml.service(**service_options(_settings, name=SERVICE, paths=PATHS))
@bentoml.asgi_app(app, path="/")
class RecsService:
    """Ranked, diverse, in-stock recommendations inside the budget; see the module docstring."""

    def __init__(self) -> None:
        s = self.settings = _settings
        self.online: RecsOnline | None = None
        try:
            self.online = RecsOnline(load_store(s))
        except Exception as exc:  # a registry that is missing or lacks the services
            NOT_READY[SERVICE] = f"feature services unavailable: {exc} (run `feast apply`)"
        self.scorer = load_scorer(s)
        self.redis = connect_async(s, role="service")
        self.breaker = Breaker()
        self.log = PredictionLog(client=self.redis, stream=str(s.prediction_stream),
                                 maxlen=s.prediction_stream_maxlen,
                                 flush_ms=s.prediction_log_flush_ms)
        self.l1: L1Cache[rk.Ranked] | None = (
            L1Cache(ttl_s=s.cache_ttl_s, max_entries=s.cache_max_entries) if s.cache else None)
        self.lists = FallbackLists(self.online, self.redis)
        gc.collect()
        gc.freeze()  # see rtml.serving.core: long-lived objects out of the collector's walks

    def __is_ready__(self) -> bool:
        return SERVICE not in NOT_READY

    @app.get("/recommendations")
    async def get_recommendations(self, request: Request) -> Response:
        """Recommendations for the user's session as the stream has it."""
        try:
            req = parse_query(dict(request.query_params))
        except BadRequest as exc:
            return JSONResponse(exc.body(), status_code=400)
        answer = await self.recommend(req.user_id, req.k, None)
        return self._respond(answer, request.headers.get("if-none-match"), cacheable=True)

    @app.post("/recommendations")
    async def post_recommendations(self, request: Request) -> Response:
        """Recommendations for an explicit session context (the client's own view of it)."""
        try:
            try:
                payload = json.loads(await request.body())
            except ValueError:
                raise BadRequest("body", "not valid JSON") from None
            req = parse_body(payload)
        except BadRequest as exc:
            return JSONResponse(exc.body(), status_code=400)
        session = req.session.items if req.session is not None else None
        answer = await self.recommend(req.user_id, req.k, session)
        return self._respond(answer, None, cacheable=False)

    def _respond(self, a: Answer, if_none_match: str | None, *, cacheable: bool) -> Response:
        body = a.body().model_dump_json().encode()
        headers = {"Server-Timing": format_server_timing(a.timings, a.notes),
                   "X-Model-Version": a.version or ""}
        if not cacheable:
            headers["Cache-Control"] = "no-store"
            return Response(body, media_type="application/json", headers=headers)
        tag = etag(body)
        headers["ETag"] = tag
        headers["Cache-Control"] = cache_control(personal=not (a.fallback or a.cold_start),
                                                 max_age_s=self.settings.http_max_age_s)
        if not_modified(if_none_match, tag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    # -- the request path ------------------------------------------------------------------

    async def recommend(self, user_id: int, k: int, explicit: list[int] | None) -> Answer:
        """Every stage, or the fallback; timed, logged, never raising."""
        t0 = time.perf_counter()
        await self.lists.ensure()  # once per worker: the shared lists, before the clock runs
        deadline = time.perf_counter() + self.settings.request_budget_ms / 1000
        a = Answer(user_id=user_id, k=k, version=self.scorer.version)
        try:
            if self.online is None:
                raise StageFailed("feature_store_unavailable: feature services not loaded")
            ranked, stock_ids = await self._ranked(a, explicit, deadline)
            online = self.online
            stock = await self._stage(a, "rerank", deadline,
                                      lambda: online.stock_levels(self.redis, stock_ids),
                                      add=True)
            chosen = rk.pick_in_stock(ranked, stock, k)
            if not chosen:
                raise StageFailed("no_candidates: nothing in stock to recommend")
            a.items = [Recommendation(item_id=i, score=round(ranked.scores[i], 6),
                                      source=ranked.sources[i])  # type: ignore[arg-type]
                       for i in chosen]
        except StageFailed as exc:
            await self._fallback(a, str(exc))
        except Exception as exc:  # a bug must cost a ranking, not the answer
            log.exception("recs: request for user %s failed", user_id)
            await self._fallback(a, f"error: {type(exc).__name__}: {exc}"[:200])
        a.timings["total"] = (time.perf_counter() - t0) * 1000
        self._log(a)
        return a

    async def _ranked(self, a: Answer, explicit: list[int] | None, deadline: float
                      ) -> tuple[rk.Ranked, list[int]]:
        assert self.online is not None
        s, online = self.settings, self.online
        # cache: the user's views and the L2 entry together, then the L1 lookup.

        def reads() -> Awaitable[list[Any]]:
            todo: list[Awaitable[Any]] = [online.user(self.redis, a.user_id)]
            if s.entity_cache:
                todo.append(read_l2(self.redis, a.user_id))
            return asyncio.gather(*todo)

        got = await self._stage(a, "cache", deadline, reads)
        user, l2 = got[0], (got[1] if s.entity_cache else None)
        session = list(explicit) if explicit is not None else as_ints(
            user.values.get("session_items"))
        length = len(session) if explicit is not None else int(
            user.values.get("session_length") or 0)
        a.session = session
        a.cold_start = not known(user, "user_profile") and not session and l2 is None
        key = l1_key(self.scorer.version, a.user_id, a.k, session, length)
        hit = self.l1.get(key) if self.l1 is not None else None
        a.notes["cache"] = ("l1" if hit is not None else "l2" if l2 is not None else "miss")
        if hit is not None:
            return hit, hit.order
        # candidates: the anchors' co-visit lists, then the generator (asked for a few more than
        # it keeps: the stock read with the features drops the sold-out ones before ranking)
        known_user = known(user, "user_profile")
        profile = ({**user.values, **l2.user} if l2 is not None else user.values
                   ) if known_user or l2 is not None else None
        history = [] if l2 is not None else as_ints(user.values.get("user_recent_items"))
        t = time.perf_counter()
        anchors = rk.anchors(session, history)
        covisit = (await self._stage(a, "candidates", deadline,
                                     lambda: online.anchor_rows(self.redis, anchors))
                   if anchors else {})
        lists = self.lists
        if l2 is not None:
            ctx = rk.session_context(session=session, covisit=covisit, trending=lists.trending)
        else:
            ctx = rk.full_context(
                session=session, history=history,
                categories=as_ints(user.values.get("user_top_categories")), covisit=covisit,
                popular_by_category=lists.popular.by_category, popular=lists.popular.global_,
                trending=lists.trending)
        cands = rk.generate(ctx)
        if l2 is not None:
            cands = rk.merge(cands, l2.candidates, rk.CANDIDATES + rk.STOCK_SLACK)
        a.timings["candidates"] = (time.perf_counter() - t) * 1000
        # features: every candidate's item views; the sold-out ones leave here, before ranking
        rows = await self._stage(a, "features", deadline,
                                 lambda: online.item_rows(self.redis, [c.item_id for c in cands]))
        cands = [c for c in cands if float(rows[c.item_id].values["stock_level"]) > 0]
        cands = cands[:rk.CANDIDATES]
        if not cands:
            raise StageFailed("no_candidates: none in stock")
        live = {"session_items": session, "session_length": length,
                "session_categories": as_ints(user.values.get("session_categories"))
                if explicit is None else rk.categories_of(session, covisit)}
        # model
        self._budget(a, "model", deadline)
        t = time.perf_counter()
        try:
            scores = self.scorer.score(cands, profile, rows, live)
        except Exception as exc:
            raise StageFailed(f"model_error: {type(exc).__name__}: {exc}"[:200]) from None
        finally:
            a.timings["model"] = (time.perf_counter() - t) * 1000
        # rerank (MMR); the stock read that follows is timed with it
        self._budget(a, "rerank", deadline)
        t = time.perf_counter()
        categories = {c.item_id: int(rows[c.item_id].values.get("item_category", -1))
                      for c in cands}
        ranked = rk.rerank(cands, scores, categories, k=a.k, lam=self.scorer.mmr_lambda)
        a.timings["rerank"] = (time.perf_counter() - t) * 1000
        if self.l1 is not None:
            self.l1.put(key, ranked)
        return ranked, ranked.order

    def _budget(self, a: Answer, stage: str, deadline: float) -> float:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise StageFailed(f"budget: {stage} would start past the "
                              f"{self.settings.request_budget_ms:g} ms request budget")
        return left

    async def _stage(self, a: Answer, stage: str, deadline: float,
                     read: Callable[[], Awaitable[T]], *, add: bool = False) -> T:
        """One Redis stage inside its budget, behind the breaker; its time into `a.timings`."""
        t = time.perf_counter()
        try:
            left = self._budget(a, stage, deadline)
            if not self.breaker.allow():
                raise StageFailed("feature_store_unavailable: circuit open after repeated errors")
            read_s = self.settings.feature_timeout_ms / 1000
            try:
                result = await asyncio.wait_for(read(), min(left, read_s))
            except TimeoutError:
                self.breaker.record(False)
                if left < read_s:
                    raise StageFailed(f"budget: {stage} ran past the "
                                      f"{self.settings.request_budget_ms:g} ms request budget"
                                      ) from None
                raise StageFailed(f"{stage}_timeout: over "
                                  f"{self.settings.feature_timeout_ms:g} ms") from None
            except (redis.RedisError, OSError) as exc:
                self.breaker.record(False)
                raise StageFailed(f"feature_store_unavailable: {type(exc).__name__}: {exc}"
                                  [:200]) from None
            self.breaker.record(True)
            return result
        finally:
            ms = (time.perf_counter() - t) * 1000
            a.timings[stage] = a.timings.get(stage, 0.0) + ms if add else ms

    async def _fallback(self, a: Answer, reason: str) -> None:
        a.fallback, a.reason, a.cold_start = True, reason, False
        t = time.perf_counter()
        check_s = min(self.settings.feature_timeout_ms, FALLBACK_CHECK_MS) / 1000
        items = await self.lists.in_stock_popular(a.k, check=self.breaker.allow(),
                                                  timeout_s=check_s)
        a.items = [Recommendation(item_id=i, score=round(score, 6), source="popular")
                   for i, score in items]
        a.timings["fallback"] = (time.perf_counter() - t) * 1000

    def _log(self, a: Answer) -> None:
        now = datetime.now(UTC).isoformat()
        self.log.append({
            "request_id": uuid.uuid4().hex, "user_id": a.user_id, "k": a.k,
            "items": [r.item_id for r in a.items], "scores": [r.score for r in a.items],
            "sources": [r.source for r in a.items], "session_items": a.session[:20],
            "cold_start": a.cold_start, "fallback": a.fallback, "fallback_reason": a.reason,
            "model_version": a.version, "cache": a.notes.get("cache", "none"),
            "timings_ms": {k: round(v, 3) for k, v in a.timings.items()},
            "total_ms": round(a.timings["total"], 3), "event_timestamp": now, "logged_at": now})
        decision = "fallback" if a.fallback else "cold_start" if a.cold_start else "personal"
        record_request(service=SERVICE, timings_ms=a.timings, event_times=[],
                       decisions=[SimpleNamespace(decision=decision, fallback=a.fallback,
                                                  fallback_reason=a.reason)])


install(RecsService, service=SERVICE, paths=PATHS, max_inflight=_settings.max_inflight,
        max_body_bytes=_settings.max_body_bytes)
