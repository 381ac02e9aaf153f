"""Reading the prediction log and the training reference for a monitoring run.

The log can be large (a busy day is millions of rows) and its `features` column is JSON text, the
expensive part to decode. One Arrow scan reads the window; the cheap numeric columns (latency,
score, decision, fallback) are kept for every row, so health figures are exact; the JSON columns
are decoded only for a seeded random sample, which is what drift and quality reports run on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from rtml.serving.card import CardError, ModelCard, load_card

# Every service's log has these (`rtml.serving.predlog`); a scenario adds its own columns (its
# request id, an amount...) through its monitor spec.
LIGHT = ["logged_at", "event_timestamp", "score", "decision", "fallback", "fallback_reason",
         "model_version", "features_ms", "model_ms", "total_ms"]
NUMERIC = ["score", "features_ms", "model_ms", "total_ms"]
HEAVY = ["features", "feature_event_times"]
# Fallbacks caused by something broken (not by load): these count as errors.
ERROR_REASONS = ("feature_store_unavailable", "model_error", "model_unavailable")


class NoPredictionsError(RuntimeError):
    """The window holds no logged predictions."""


@dataclass(frozen=True)
class LogData:
    """One window of the prediction log."""

    rows: pd.DataFrame  # every row, light columns (+ is_error, is_fallback)
    sample: pd.DataFrame  # sampled rows: light columns, decoded features, per-view ages (s)
    total: int
    sampled: bool
    views: list[str]  # views seen in feature_event_times


def _dataset(predictions_dir: Path) -> ds.Dataset:
    files = sorted(predictions_dir.glob("date=*/*.parquet"))
    if not files:
        raise NoPredictionsError(f"no prediction log under {predictions_dir} "
                                 "(score some requests, then `rtml log drain`)")
    # Drained batches differ in columns (a batch without fallbacks has no fallback_reason).
    schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    return ds.dataset([str(f) for f in files], schema=schema, format="parquet")


def _flags(rows: pd.DataFrame) -> pd.DataFrame:
    fallback = rows["fallback"].fillna(False).astype(bool)
    reason = rows["fallback_reason"].fillna("").astype(str)
    rows["is_fallback"] = fallback.astype("int8")
    rows["is_error"] = (fallback & reason.str.startswith(ERROR_REASONS)).astype("int8")
    rows["fallback_kind"] = reason.str.split(":").str[0].where(fallback, "")
    return rows


def _decode(values: list[str | None]) -> list[dict[str, Any]]:
    return [json.loads(v) if v else {} for v in values]


def load_log(predictions_dir: Path, *, since: datetime, sample_rows: int, seed: int = 0,
             columns: Sequence[str] = (), numeric: Sequence[str] = ()) -> LogData:
    """Predictions logged at or after `since`; JSON columns decoded for <= `sample_rows` rows.

    `columns`: the scenario's own light columns (kept for every row, None where a batch lacks
    one); `numeric`: those of them read as numbers.
    """
    dataset = _dataset(predictions_dir)
    names = set(dataset.schema.names)
    light = [*columns, *(c for c in LIGHT if c not in columns)]
    cols = [c for c in light + HEAVY if c in names]
    table = dataset.to_table(columns=cols,
                             filter=ds.field("logged_at") >= pa.scalar(pd.Timestamp(since)))
    total = table.num_rows
    if total == 0:
        raise NoPredictionsError(f"no predictions logged since {since.isoformat()} under "
                                 f"{predictions_dir}")
    rows = table.select([c for c in light if c in names]).to_pandas()
    for col in light:
        if col not in rows:
            rows[col] = None
    for col in [*numeric, *NUMERIC]:
        rows[col] = pd.to_numeric(rows[col], errors="coerce")
    rows["logged_at"] = pd.to_datetime(rows["logged_at"], utc=True)
    rows = _flags(rows)

    sampled = total > sample_rows
    idx = (np.sort(np.random.default_rng(seed).choice(total, sample_rows, replace=False))
           if sampled else np.arange(total))
    sample = rows.iloc[idx].reset_index(drop=True)
    feats = (_decode(table.column("features").take(pa.array(idx)).to_pylist())
             if "features" in names else [{}] * len(idx))
    times = (_decode(table.column("feature_event_times").take(pa.array(idx)).to_pylist())
             if "feature_event_times" in names else [{}] * len(idx))
    feat_df = pd.DataFrame.from_records(feats, index=sample.index).astype("float64")
    time_df = pd.DataFrame.from_records(times, index=sample.index).astype("float64")
    logged_s = (sample["logged_at"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    ages = pd.DataFrame({f"age_s:{view}": logged_s - time_df[view] for view in time_df.columns},
                        index=sample.index)
    sample = pd.concat([sample, feat_df, ages], axis=1)
    return LogData(rows=rows, sample=sample, total=total, sampled=sampled,
                   views=sorted(time_df.columns))


@dataclass(frozen=True)
class Reference:
    """What the model was trained and validated on (written by `rtml train`)."""

    frame: pd.DataFrame
    card: ModelCard

    @property
    def features(self) -> list[str]:
        """The model's columns, in its order."""
        return self.card.features

    @property
    def feature_service(self) -> str:
        """The FeatureService the model was trained on."""
        return self.card.feature_service

    @property
    def thresholds(self) -> dict[str, float]:
        """Score cut-offs chosen at training time."""
        return self.card.thresholds

    @property
    def model_tag(self) -> str:
        """The BentoML tag of the model the reference belongs to."""
        return self.card.version or ""


def load_reference(artifacts_dir: Path, model: str) -> Reference:
    """The held-out reference sample and the model card written beside it."""
    folder = artifacts_dir / model
    ref_path = folder / "reference.parquet"
    if not ref_path.exists():
        raise FileNotFoundError(f"no training reference {ref_path} (train first: "
                                f"`rtml train {model}`)")
    try:
        card = load_card(folder)
    except CardError as exc:
        raise FileNotFoundError(f"{exc} (train first: `rtml train {model}`)") from exc
    return Reference(frame=pd.read_parquet(ref_path), card=card)
