"""What `feast apply` registers for recs equals the view specs the builders and features use."""

from __future__ import annotations

import pytest
from feast import FeatureView

from feature_repo.recs import entities, items, specs, users
from feature_repo.recs.feature_services import recs_ranker_v1
from rtml.features.specs import key_value_type

VIEWS = {v.name: v for v in (users.user_profile, items.item_stats, items.item_covisit)}
DTYPE = {"Int64": "int64", "Float64": "float64", "Array(Int64)": "int64_list",
         "Array(Float64)": "float64_list"}


@pytest.mark.parametrize("spec", specs.NIGHTLY, ids=lambda s: s.name)
def test_feast_views_are_the_specs(spec):
    view: FeatureView = VIEWS[spec.name]
    assert [(f.name, DTYPE[str(f.dtype)]) for f in view.features] == list(spec.features.items())
    (entity,) = [e for e in (entities.user, entities.item) if [e.name] == view.entities]
    assert entity.join_key == spec.join_key and entity.value_type == key_value_type(spec)
    assert view.batch_source.path == f"data/features/{spec.offline_file}"
    assert view.batch_source.created_timestamp_column == "created"
    assert view.tags["refresh"] == "daily"


def test_the_feature_service_reads_every_nightly_view():
    assert [p.name for p in recs_ranker_v1.feature_view_projections][:3] == [
        "user_profile", "item_stats", "item_covisit"]
