"""Requests and answers of the recommendation service, and the 400 that names the field.

Strict: a user id sent as `"12"` in JSON, `k=0`, `k=101`, `user_id=abc` or a session item `-3` is
a client bug worth a 400 naming the field, not a coercion that recommends for the wrong user.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

MAX_K = 100
MAX_SESSION_ITEMS = 200
ID_MAX = 2**63 - 1

EntityId = Annotated[StrictInt, Field(ge=0, le=ID_MAX)]
Source = Literal["revisit", "covisit", "popular", "trending"]


class SessionContext(BaseModel):
    """What the client knows of the current session (POST): its items, most recent first."""

    model_config = ConfigDict(extra="forbid")

    items: Annotated[list[EntityId], Field(max_length=MAX_SESSION_ITEMS)] = Field(
        default_factory=list)


class RecommendationRequest(BaseModel):
    """One request: whose recommendations, how many, and (POST) an explicit session."""

    model_config = ConfigDict(extra="forbid")

    user_id: EntityId
    k: Annotated[StrictInt, Field(ge=1, le=MAX_K)] = 10
    session: SessionContext | None = None


class Recommendation(BaseModel):
    """One recommended item: the ranker's score and the candidate source that found it."""

    item_id: int
    score: float
    source: Source


class Recommendations(BaseModel):
    """The answer. `fallback` lists are popular in-stock items, not personal; see the reason."""

    user_id: int
    k: int
    items: list[Recommendation]
    cold_start: bool = Field(description="an unknown user with no session: popular/trending")
    fallback: bool
    fallback_reason: str | None = None
    model_version: str | None


class BadRequest(ValueError):
    """A request field that is wrong: `field` names it (`query.k`, `body.session.items.2`)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason

    def body(self) -> dict[str, Any]:
        """The 400 body: one line naming the field, then FastAPI-style detail."""
        return {"error": str(self), "detail": [{"loc": self.field.split("."),
                                                "msg": self.reason}]}


def _first_error(exc: ValidationError, where: str) -> BadRequest:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in (where, *err["loc"]))
    return BadRequest(loc, err["msg"])


def parse_query(params: dict[str, str]) -> RecommendationRequest:
    """GET `?user_id=…&k=…`: integers written in decimal, nothing else accepted."""
    values: dict[str, Any] = {}
    for name in ("user_id", "k"):
        if name not in params:
            if name == "user_id":
                raise BadRequest("query.user_id", "required")
            continue
        text = params[name].strip()
        if not text.isascii() or not text.lstrip("-").isdigit() or len(text) > 20:
            raise BadRequest(f"query.{name}", f"not an integer: {params[name][:40]!r}")
        values[name] = int(text)
    unknown = sorted(set(params) - {"user_id", "k"})
    if unknown:
        raise BadRequest(f"query.{unknown[0]}", "unknown parameter")
    try:
        return RecommendationRequest(**values)
    except ValidationError as exc:
        raise _first_error(exc, "query") from None


def parse_body(payload: Any) -> RecommendationRequest:
    """POST JSON body: `{"user_id": 1, "k": 10, "session": {"items": [3, 2]}}`."""
    if not isinstance(payload, dict):
        raise BadRequest("body", "expected a JSON object")
    try:
        return RecommendationRequest.model_validate(payload)
    except ValidationError as exc:
        raise _first_error(exc, "body") from None


EXAMPLE_INPUT = {"user_id": 42, "k": 10, "session": {"items": [1017, 52]}}
