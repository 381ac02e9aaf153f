"""The one settings object: every knob that changes between machines, read from RTML_* variables.

Built once by the entry point, then passed down as values. No other module reads the environment,
so tests construct a `Settings` with what they need instead of patching `os.environ`.

Two levels. Platform settings (Redis, files, Feast, the stream's snapshots) are `RTML_<NAME>`.
The knobs one scenario tunes for itself (its model, budgets, batching, cache, shedding, streams,
prediction log, monitor limits: `SCENARIO_KNOBS`) are nested under the scenario:
`RTML_<SCENARIO>__MODEL_TIMEOUT_MS`, `RTML_RECS__CACHE_TTL_S`. `Settings(scenario="fraud")` reads
them; the flat spelling of a scenario knob is refused with the nested name to use instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_ADDRESS = "localhost:6379"


class Settings(BaseSettings):
    """Runtime configuration (environment variables prefixed `RTML_`; see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix="RTML_", extra="ignore", frozen=True)

    scenario: str | None = Field(
        None, description="the scenario whose nested knobs (RTML_<SCENARIO>__*) these hold")

    # -- Redis: the online store and the event/prediction streams ---------------------------
    redis_address: str = Field(
        DEFAULT_REDIS_ADDRESS,
        description="host:port of the Redis online store (Feast connection string syntax).",
    )
    redis_embedded: Literal["auto", "never"] = Field(
        "auto",
        description="auto: start an embedded Valkey when nothing answers at a local address.",
    )
    redis_timeout_s: float = Field(0.5, description="socket timeout for the services' Redis calls")
    redis_username: str | None = Field(None, description="Redis ACL user (AUTH)")
    redis_password: SecretStr | None = Field(None, description="Redis password (AUTH)")
    redis_tls: bool = Field(False, description="TLS to Redis (also: a rediss:// address)")
    redis_tls_ca_file: Path | None = Field(None, description="CA bundle for Redis TLS")

    # -- Files ------------------------------------------------------------------------------
    # The Feast repo (feature_store.yaml) and everything generated lives under it; the Feast
    # file sources name paths relative to it, so a copy of the repo is a self-contained sandbox.
    repo_root: Path = REPO_ROOT

    # -- Feast -------------------------------------------------------------------------------
    feast_project: str = "rtml"
    offline_store: Literal["file", "duckdb", "postgres", "spark"] | None = Field(
        None, description="Feast offline store for point-in-time training sets: file (dask), "
        "duckdb, postgres (the team profile; `rtml features load-offline` fills its tables) or "
        "spark (the Parquet files read by Spark: the path to a cluster); unset: as "
        "feature_store.yaml says")
    offline_postgres: str = Field(
        "host=127.0.0.1 port=5432 dbname=rtml_offline user=postgres",
        description="libpq conninfo of the Postgres offline store (offline_store=postgres)")
    offline_spark_master: str = Field(
        "local[*]", description="Spark master of the Spark offline store (offline_store=spark): "
        "local[*] runs in-process; spark://host:7077 or yarn for a cluster")
    registry_url: str | None = Field(
        None, description="SQL registry (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/"
        "rtml_registry) instead of feature_store.yaml's file registry")

    # -- Serving -----------------------------------------------------------------------------
    serve_workers: int = Field(1, description="BentoML worker processes per service")
    model_tag: str | None = Field(
        None, description="BentoML model store tag (default: <scenario>_model:latest)")
    feature_timeout_ms: float = Field(30.0, description="budget for the online feature read")
    model_timeout_ms: float = Field(30.0, description="budget for the model call")
    breaker_probe_ms: float = Field(
        100.0, gt=0, description="feature-store circuit breaker: once open (3 errors in a row), "
        "one request per this many ms tries the store; a success closes it")
    max_body_bytes: int = Field(1_000_000, description="larger request bodies get 413")
    max_batch_rows: int = Field(1000, description="largest /score_batch request")
    batching: bool = Field(True, description="adaptive batching of model calls across requests")
    batch_max_size: int = Field(64, description="adaptive batching: largest model batch")
    batch_max_latency_ms: int = Field(20, description="adaptive batching: queueing budget")
    model_backend: Literal["auto", "xgboost", "onnx", "xgboost-gpu"] = Field(
        "auto", description="where the trees run; auto measures at start-up, per call size")
    cache: bool = Field(False, description="L1 cache of model answers per exact feature vector")
    cache_ttl_s: float = Field(10.0, gt=0, description="L1 cache: seconds an answer stays")
    cache_max_entries: int = Field(100_000, gt=0, description="L1 cache: LRU bound (~300 B each)")
    request_budget_ms: float = Field(
        80.0, gt=0, description="a whole request's budget: a stage that would start past it "
        "answers the fallback instead (recs)")
    entity_cache: bool = Field(True, description="L2: per-entity entries precomputed by a job")
    entity_cache_ttl_s: float = Field(3600.0, gt=0, description="L2: seconds an entry stays")
    http_max_age_s: int = Field(
        30, ge=0, description="L3: Cache-Control max-age of cacheable GET answers")
    max_inflight: int = Field(16, ge=0, description="scoring requests served at once per worker "
                              "before 503 + Retry-After (0: no limit)")
    tracing: bool = Field(False, description="OpenTelemetry spans for the scoring endpoints")
    access_log: bool = Field(False, description="BentoML's access log (a line per request: "
                             "method, path, status, sizes, time; never headers, so no API key)")

    # -- Security (rtml.serving.auth; docs/security.md) -----------------------------------------
    api_keys: SecretStr | None = Field(
        None, description="comma-separated API keys the scoring endpoints accept (several at "
        "once for rotation; each at least 16 characters); unset: no key is asked for")
    metrics_need_api_key: bool = Field(
        False, description="ask for an API key on /metrics too (health probes stay open)")

    # -- Streaming ----------------------------------------------------------------------------
    stream_partitions: int = Field(4, description="transaction streams rtml:tx:0..N-1")
    stream_allowed_lateness_s: float = Field(
        3600.0, description="how far behind a key's newest event an event may arrive and still "
        "count. The default, the longest window, counts every event still inside a window, as "
        "the backfill that training reads does: during a backlog, partitions are read at "
        "different speeds, so a terminal's events arrive out of order by minutes")
    stream_snapshot_s: float = Field(
        30.0, description="Bytewax epoch/snapshot interval: each snapshot stalls the flow for "
        "~50 µs per key changed since the last one; longer = rarer stalls, longer replay")
    stream_writer: Literal["direct", "feast"] = Field(
        "direct", description="direct: Feast's Redis layout written by rtml (pipelines/"
        "online_writer.py, ~6x faster); feast: FeatureStore.push")
    stream_metrics_port: int | None = Field(
        None, description="serve the stream process's Prometheus metrics on this port")

    alert_webhook_url: str | None = Field(
        None, description="also POST each alert (JSON) here, from a background thread: a slow "
        "or failing webhook is logged, never stalls scoring (RTML_SENSORS__ALERT_WEBHOOK_URL)")

    # -- Prediction log ----------------------------------------------------------------------
    prediction_stream: str | None = Field(
        None, description="the prediction log's stream (default: rtml:predictions:<scenario>)")
    # The cap bounds Redis memory between drains: `python -m benchmarks.claims log` measures it.
    prediction_stream_maxlen: int = Field(250_000, description="approximate cap (XADD MAXLEN ~)")
    prediction_log_flush_ms: float = 50.0

    # -- Monitoring (`rtml monitor run`) -------------------------------------------------------
    monitor_webhook_url: str | None = Field(
        None, description="POST the summary here when a check fails (a log line otherwise)")
    monitor_window_days: float = Field(7.0, description="logged predictions this recent")
    monitor_sample_rows: int = Field(
        200_000, description="drift and quality reports sample this many rows at most")
    monitor_drift_share: float = Field(
        0.25, description="feature drift fails when this share of features drifted")
    monitor_p95_ms: float = Field(25.0, description="server-side p95 latency limit")
    monitor_p99_ms: float = Field(50.0, description="server-side p99 latency limit (the budget)")
    monitor_error_rate: float = Field(0.01, description="largest share of error fallbacks")
    monitor_fallback_rate: float = Field(0.02, description="largest share of fallbacks")
    monitor_quality_drop: float = Field(
        0.3, description="precision/recall/PR-AUC may fall this share below the reference")
    monitor_min_labels: int = Field(200, description="fewer labelled predictions: no quality test")
    monitor_stream_max_age_s: float = Field(
        120.0, description="a streamed view whose newest online value is older has stopped")
    monitor_batch_grace_h: float = Field(
        6.0, description="a daily view may be this much older than a day (the nightly run)")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Init values, then the scenario's nested variables, then the platform's."""
        scenario = getattr(init_settings, "init_kwargs", {}).get("scenario")
        sources: list[PydanticBaseSettingsSource] = [init_settings]
        if scenario:
            sources.append(_Only(settings_cls, env_prefix=f"RTML_{scenario.upper()}__",
                                 keep=SCENARIO_KNOBS))
        sources += [_Platform(settings_cls), file_secret_settings]
        return tuple(sources)

    @model_validator(mode="before")
    @classmethod
    def _scenario_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("scenario"):
            name = data["scenario"]
            if not data.get("model_tag"):
                data["model_tag"] = f"{name}_model:latest"
            if not data.get("prediction_stream"):
                data["prediction_stream"] = f"rtml:predictions:{name}"
        return data

    def _host_port(self) -> tuple[str, int]:
        from rtml.redis import parse_address  # rtml.redis imports this module

        where = parse_address(self.redis_address)
        return where.host, where.port

    @property
    def redis_host(self) -> str:
        """Host part of `redis_address` (IPv6 without brackets)."""
        return self._host_port()[0]

    @property
    def redis_port(self) -> int:
        """Port part of `redis_address` (6379 when absent)."""
        return self._host_port()[1]

    @property
    def data_dir(self) -> Path:
        """Generated data, features, the Feast registry, the prediction log."""
        return self.repo_root / "data"

    @property
    def artifacts_dir(self) -> Path:
        """Training metrics and exported models."""
        return self.repo_root / "artifacts"

    @property
    def state_dir(self) -> Path:
        """Embedded Valkey data and pid files."""
        return self.repo_root / ".rtml"

    @property
    def raw_dir(self) -> Path:
        """Generated transactions, customers and terminals."""
        return self.data_dir / "raw"

    @property
    def features_dir(self) -> Path:
        """Offline sources of the Feast batch views."""
        return self.data_dir / "features"

    @property
    def labels_path(self) -> Path:
        """Delayed labels (chargebacks): truth plus the time each becomes visible."""
        return self.data_dir / "labels" / "labels.parquet"

    @property
    def reports_dir(self) -> Path:
        """Monitoring reports, one folder per model and run, and the dashboard page."""
        return self.repo_root / "reports"

    @property
    def predictions_dir(self) -> Path:
        """Partitioned parquet written by the prediction-log drain.

        Fraud's at the top, where it always was; another scenario's in its own sub-folder, so no
        monitor reads another's log.
        """
        base = self.data_dir / "predictions"
        return base if self.scenario in (None, "fraud") else base / self.scenario


# The knobs a scenario tunes for itself: RTML_<SCENARIO>__<KNOB>.
SCENARIO_KNOBS = frozenset({
    "model_tag", "feature_timeout_ms", "model_timeout_ms", "max_body_bytes", "max_batch_rows",
    "breaker_probe_ms",
    "batching", "batch_max_size", "batch_max_latency_ms", "model_backend", "cache", "cache_ttl_s",
    "cache_max_entries", "request_budget_ms", "entity_cache", "entity_cache_ttl_s",
    "http_max_age_s", "max_inflight", "tracing", "stream_partitions",
    "stream_allowed_lateness_s", "stream_writer", "prediction_stream", "prediction_stream_maxlen",
    "alert_webhook_url",
    *(name for name in Settings.model_fields
      if name.startswith("monitor_") and name != "monitor_webhook_url"),
})


class FlatScenarioKnobError(ValueError):
    """A scenario knob spelt at the platform level (`RTML_MODEL_TIMEOUT_MS`)."""


class _Only(EnvSettingsSource):
    """An environment source that yields only the fields in `keep`."""

    def __init__(self, settings_cls: type[BaseSettings], *, env_prefix: str,
                 keep: frozenset[str]) -> None:
        super().__init__(settings_cls, env_prefix=env_prefix)
        self.keep = keep

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in super().__call__().items() if k in self.keep}


class _Platform(EnvSettingsSource):
    """`RTML_<NAME>` for the platform settings; a flat scenario knob is an error, not ignored."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, env_prefix="RTML_")

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        flat = sorted(k for k in values if k in SCENARIO_KNOBS)
        if flat:
            names = ", ".join(f"RTML_{k.upper()}" for k in flat)
            nested = ", ".join(f"RTML_<SCENARIO>__{k.upper()}" for k in flat)
            raise FlatScenarioKnobError(
                f"{names}: a per-scenario setting; set {nested} (e.g. RTML_<SCENARIO>__…) instead")
        return {k: v for k, v in values.items() if k != "scenario"}
