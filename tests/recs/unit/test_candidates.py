"""Candidate generation: sources, quotas, stock filtering, cold users."""

import pytest

from pipelines.recs.candidates import Candidate, CandidateContext, candidates

CTX = dict(
    session_items=[5, 3], history_items=[9, 5], top_categories=[1, 2],
    covisit={5: [6, 7, 3], 3: [8, 6]}, covisit_weights={5: [4.0, 2.0, 1.0], 3: [2.0, 1.0]},
    popular_by_category={1: [10, 11, 6], 2: [12]}, popular=[20, 21, 22], trending=[30, 7])


def test_every_source_with_hand_computed_scores_in_source_order():
    got = candidates(CandidateContext(**CTX), limit=100)
    by_id = {c.item_id: c for c in got}
    # revisit: session position p counts 1/(1+p), history position p counts 0.3/(1+p)
    assert by_id[5] == Candidate(5, "revisit", 1.0 + 0.3 / 2, (1.15, 0.0, 0.0, 0.0))
    # 3 is also item 5's third neighbour (1 / 4): listed once, as revisit, with both scores
    assert by_id[3].scores == pytest.approx((0.5, 0.25, 0.0, 0.0))
    assert by_id[9].source_score == pytest.approx(0.3)
    # covisit: anchor 5 (recency 1) weights /4, anchor 3 (recency 1/2) weights /2
    assert by_id[6].source == "covisit"
    assert by_id[6].scores[1] == pytest.approx(1.0 + 0.5 * 0.5)
    assert by_id[6].scores[2] == pytest.approx(1.0 / 1.2)  # also popular in category 1, 3rd
    assert by_id[7].scores == pytest.approx((0.0, 0.5, 0.0, 1.0 / 1.1))
    assert by_id[8].scores[1] == pytest.approx(0.5)
    # popular in category 2 (second category: 1/2)
    assert by_id[12].scores[2] == pytest.approx(0.5)
    assert by_id[30] == Candidate(30, "trending", 1.0, (0.0, 0.0, 0.0, 1.0))
    head = [c.source for c in got[:-3]]
    assert head == sorted(head, key=["revisit", "covisit", "popular", "trending"].index)
    assert len({c.item_id for c in got}) == len(got)
    # a short list is padded at the end with the global popular items
    assert [(c.item_id, c.source) for c in got[-3:]] == [(i, "popular") for i in (20, 21, 22)]


def test_out_of_stock_items_never_come_out_whatever_the_source():
    stock = {5: 0, 6: 0, 10: 0, 30: 0, 20: 0}
    got = candidates(CandidateContext(**CTX, stock=stock), limit=100)
    assert not {c.item_id for c in got} & set(stock)
    assert {3, 9, 7, 8, 11, 12, 21, 22} <= {c.item_id for c in got}
    sold_out = candidates(CandidateContext(**CTX, in_stock_fn=lambda i: i % 2 == 0))
    assert sold_out and all(c.item_id % 2 == 0 for c in sold_out)


def test_cold_user_gets_popular_and_trending_only():
    ctx = CandidateContext(covisit=CTX["covisit"], popular_by_category=CTX["popular_by_category"],
                           popular=[20, 21, 22], trending=[30, 21])
    assert ctx.cold
    got = candidates(ctx)
    assert [(c.item_id, c.source) for c in got] == [
        (20, "popular"), (21, "popular"), (22, "popular"), (30, "trending")]


def test_limit_and_quotas():
    many = CandidateContext(
        session_items=list(range(0, 300)), covisit={0: list(range(1000, 1300))},
        popular=list(range(2000, 2300)), trending=list(range(3000, 3300)))
    got = candidates(many, limit=200)
    assert len(got) == 200
    sources = [c.source for c in got]
    # revisit fills its quota (25%), co-visit its own (45%) ...; nothing is lost from the limit
    assert sources.count("revisit") == 50
    assert sources.count("covisit") == 90
    assert sources.count("popular") == 40 and sources.count("trending") == 20
    # within a source the best scores come first
    revisit = [c for c in got if c.source == "revisit"]
    assert [c.item_id for c in revisit] == list(range(50))


def test_unused_quota_goes_to_the_other_sources():
    ctx = CandidateContext(session_items=[1], popular=list(range(100, 400)))
    got = candidates(ctx, limit=200)
    assert len(got) == 200 and got[0].item_id == 1
