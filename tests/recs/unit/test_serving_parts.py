"""The service's pure parts: request validation, cache keys and headers, the L2 merge, re-rank.

Expected values are written out by hand for small cases.
"""

from __future__ import annotations

import numpy as np
import pytest

from bentos.recs.caching import cache_control, etag, l1_key, not_modified
from bentos.recs.online import L2Entry, Popular
from bentos.recs.ranking import HeuristicScorer, Ranked, merge, pick_in_stock, rerank
from bentos.recs.schemas import BadRequest, parse_body, parse_query
from pipelines.recs.candidates import Candidate
from rtml.features.online import FeatureRow


@pytest.mark.parametrize(("params", "field"), [
    ({"user_id": "abc"}, "query.user_id"),
    ({"user_id": "1.5"}, "query.user_id"),
    ({"user_id": "-3"}, "query.user_id"),
    ({"user_id": "1", "k": "0"}, "query.k"),
    ({"user_id": "1", "k": "101"}, "query.k"),
    ({"user_id": "1", "k": "ten"}, "query.k"),
    ({"k": "10"}, "query.user_id"),
    ({"user_id": "1", "kk": "10"}, "query.kk"),
    ({"user_id": "99999999999999999999999"}, "query.user_id"),
])
def test_a_bad_query_is_refused_naming_the_field(params, field):
    with pytest.raises(BadRequest) as err:
        parse_query(params)
    assert err.value.field == field
    assert err.value.body()["error"].startswith(field + ":")


def test_a_good_query_parses_with_k_defaulting_to_ten():
    assert parse_query({"user_id": "7"}).k == 10
    req = parse_query({"user_id": "7", "k": "100"})
    assert (req.user_id, req.k, req.session) == (7, 100, None)


@pytest.mark.parametrize(("body", "field"), [
    ({"user_id": "12"}, "body.user_id"),  # a string is not an id
    ({"user_id": True}, "body.user_id"),
    ({"user_id": 1, "k": 0}, "body.k"),
    ({"user_id": 1, "session": {"items": [3, -1]}}, "body.session.items.1"),
    ({"user_id": 1, "session": {"items": "3"}}, "body.session.items"),
    ({"user_id": 1, "session": {"itemz": []}}, "body.session.itemz"),
    ([1, 2], "body"),
])
def test_a_bad_body_is_refused_naming_the_field(body, field):
    with pytest.raises(BadRequest) as err:
        parse_body(body)
    assert err.value.field == field


def test_the_l1_key_changes_with_the_session_and_the_model():
    base = l1_key("m1", 5, 10, [3, 2], 4)
    assert l1_key("m1", 5, 10, [3, 2], 4) == base
    assert l1_key("m1", 5, 10, [9, 3, 2], 5) != base  # a click
    assert l1_key("m1", 5, 10, [3, 2], 5) != base  # a re-visit of the same item
    assert l1_key("m2", 5, 10, [3, 2], 4) != base
    assert l1_key("m1", 5, 11, [3, 2], 4) != base


def test_http_caching_headers():
    assert cache_control(personal=True, max_age_s=30) == "private, max-age=30"
    assert cache_control(personal=False, max_age_s=30) == "public, max-age=30"
    tag = etag(b'{"a":1}')
    assert tag == etag(b'{"a":1}') and tag != etag(b'{"a":2}')
    assert tag.startswith('"') and tag.endswith('"')
    assert not_modified(tag, tag) and not_modified(f'"x", W/{tag}', tag)
    assert not_modified("*", tag)
    assert not not_modified(None, tag) and not not_modified('"other"', tag)


def _c(item: int, source: str, scores: tuple[float, float, float, float]) -> Candidate:
    return Candidate(item, source, max(scores), scores)  # type: ignore[arg-type]


def test_merge_puts_the_session_first_and_keeps_each_sources_best_score():
    fresh = [_c(1, "revisit", (1.0, 0, 0, 0)), _c(2, "covisit", (0, 0.5, 0, 0))]
    cached = [_c(2, "popular", (0, 0.2, 0.9, 0)), _c(3, "popular", (0, 0, 0.8, 0)),
              _c(4, "trending", (0, 0, 0, 0.7))]
    out = merge(fresh, cached, limit=3)
    assert [c.item_id for c in out] == [1, 2, 3]
    assert out[1].source == "covisit" and out[1].scores == (0, 0.5, 0.9, 0)


def test_l2_entries_and_popular_lists_round_trip():
    entry = L2Entry(built_at=12.5, user={"user_events_7d": 3.0, "user_top_categories": [4, 1]},
                    candidates=[_c(5, "covisit", (0.1, 0.25, 0.0, 0.0)),
                                _c(9, "trending", (0, 0, 0, 1.0))])
    assert L2Entry.decode(entry.encode()) == entry
    assert L2Entry.decode(None) is None
    assert L2Entry.decode(b'{"v": 0}') is None  # another layout: rebuilt by the next run
    pop = Popular(global_=[3, 1], by_category={2: [3], 5: [1]})
    assert Popular.decode(pop.encode()) == pop
    assert Popular.decode(None) == Popular()


def test_rerank_diversifies_then_the_stock_check_refills_in_order():
    # Items 0..5, scores descending; categories: 0,1,2 share category 7.
    cands = [_c(i, "popular", (0, 0, 1.0 - i / 10, 0)) for i in range(6)]
    scores = np.array([1.0, 0.95, 0.9, 0.5, 0.4, 0.1])
    categories = {0: 7, 1: 7, 2: 7, 3: 8, 4: 9, 5: 9}
    ranked = rerank(cands, scores, categories, k=3, lam=0.5)
    # lam 0.5: after 0, a same-category item scores 0.5*rel - 0.5, another category 0.5*rel.
    assert ranked.order[:3] == [0, 3, 4]
    assert ranked.order[3:] == [1, 2, 5]  # the refill: the rest by score
    assert rerank(cands, scores, categories, k=3, lam=1.0).order[:3] == [0, 1, 2]
    assert pick_in_stock(ranked, {0: 1, 3: 0, 4: 2, 1: 5, 2: 1, 5: 1}, 3) == [0, 4, 1]
    assert pick_in_stock(Ranked(order=[1, 2], scores={}, sources={}), {1: 0}, 3) == []


def test_the_heuristic_weights_sources_and_a_little_trending():
    cands = [_c(1, "revisit", (1.0, 0, 0, 0)), _c(2, "popular", (0, 0, 1.0, 0))]
    rows = {1: FeatureRow(values={"trend_events_1h": 0}),
            2: FeatureRow(values={"trend_events_1h": np.e - 1})}
    got = HeuristicScorer().score(cands, None, rows, {})
    assert got == pytest.approx([3.0, 1.1])
