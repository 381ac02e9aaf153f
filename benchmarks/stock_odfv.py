"""The stock set-up's on-demand view in either of Feast's Python modes, measured, not assumed.

feature_repo declares `transaction_request_features` (the amount and its ratio to the customer's
30-day mean, computed at request time) with `mode="pandas"`: `feast serve` builds DataFrames for
every request. Feast also offers `mode="python"`, where the function gets plain lists. Which one
a team would pick for a feature server is a fair question, so the harness measures both: for
`python` it copies the registry, replaces the view by its twin below (same name, sources, schema
and arithmetic) and points that `feast serve` at the copy. Neither the repo's registry nor the
online store is touched (an on-demand view that is not written online has no Redis table).
"""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path
from typing import Any

import yaml

from rtml.settings import Settings

MODES = ("pandas", "python")
VIEW = "transaction_request_features"


def transaction_request_features_python(inputs: dict[str, Any]) -> dict[str, Any]:
    """Python-mode twin of feature_repo's view: lists in, lists out, 0.0 ratio without history."""
    ratios = []
    for amount, mean in zip(inputs["amount"], inputs["cust_mean_amount_30d"], strict=True):
        m = 0.0 if mean is None or mean != mean else float(mean)  # missing or NaN: no history
        ratios.append(float(amount) / m if m > 0 else 0.0)
    return {"tx_amount": [float(a) for a in inputs["amount"]], "amount_vs_cust_mean_30d": ratios}


def feast_yaml(settings: Settings, *, registry: Path | None = None, name: str = "feature_store"
               ) -> Path:
    """The repo's feature_store.yaml for `feast serve`: the configured Redis, an absolute registry.

    `registry` replaces the registry path (a copy the harness owns).
    """
    raw = yaml.safe_load((settings.repo_root / "feature_store.yaml").read_text())
    raw["online_store"]["connection_string"] = settings.redis_address
    reg = raw["registry"]
    if isinstance(reg, dict):
        path = Path(reg["path"]) if registry is None else registry
        reg["path"] = str(path if path.is_absolute() else settings.repo_root / path)
    out = settings.state_dir / "bench" / f"{name}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(raw))
    return out


def python_mode_registry(settings: Settings) -> Path:
    """A copy of the registry whose `transaction_request_features` runs in Python mode."""
    from feast import FeatureStore, RepoConfig
    from feast.on_demand_feature_view import OnDemandFeatureView

    source_yaml = feast_yaml(settings)
    raw = yaml.safe_load(source_yaml.read_text())
    copy = settings.state_dir / "bench" / "registry-odfv-python.db"
    shutil.copy(raw["registry"]["path"], copy)
    raw["registry"]["path"] = str(copy)
    config = RepoConfig(**raw)
    config.repo_path = settings.repo_root
    store = FeatureStore(repo_path=str(settings.repo_root), config=config)
    view = store.get_on_demand_feature_view(VIEW)
    sources = [store.get_feature_view(name) for name in view.source_feature_view_projections]
    twin = OnDemandFeatureView(
        name=view.name, schema=view.features,
        sources=[*sources, *view.source_request_sources.values()], mode="python",
        udf=transaction_request_features_python,
        udf_string=inspect.getsource(transaction_request_features_python),
        description=view.description, tags=view.tags, owner=view.owner)
    store.apply([twin])
    return copy


def feast_yaml_for(settings: Settings, mode: str) -> Path:
    """The feature_store.yaml a `feast serve` in `mode` reads (pandas: the repo's registry)."""
    if mode not in MODES:
        raise ValueError(f"on-demand view mode {mode!r}: one of {', '.join(MODES)}")
    if mode == "pandas":
        return feast_yaml(settings)
    return feast_yaml(settings, registry=python_mode_registry(settings),
                      name="feature_store-python")
