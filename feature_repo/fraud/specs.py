"""Every fraud feature view, declared once: the source of each copy of its contract.

Its Feast schema, offline file schema, serving defaults and push-source join key are generated.
Definitions only (no Feast objects: `feast apply` imports this file and would register them
twice). `transactions.py` / `terminals.py` build their views from these, `pipelines/fraud` writes
files of `parquet_schema(...)` and windows by `CUSTOMER_WINDOWS` / `TERMINAL_WINDOWS`, the
service falls back to `SERVING_DEFAULTS`, and the stream's sink keys rows by `PUSH_JOIN_KEYS`.
`tests/fraud/unit/test_contracts.py` checks that what is deployed equals what these generate.
"""

from __future__ import annotations

from rtml.features.specs import ViewSpec, push_join_keys, serving_defaults, window_view
from rtml.features.windows import WindowSpec

# Nightly windows, in days (pipelines/fraud/batch_features.py computes them).
BATCH_WINDOWS_DAYS = (1, 7, 30)

CUSTOMER_STATS = ViewSpec(
    name="customer_stats", join_key="customer_id",
    features={name: dtype for w in BATCH_WINDOWS_DAYS
              for name, dtype in ((f"cust_tx_count_{w}d", "int64"),
                                  (f"cust_mean_amount_{w}d", "float64"))},
    offline_file="customer_stats.parquet", created=True)
TERMINAL_STATS = ViewSpec(
    name="terminal_stats", join_key="terminal_id",
    features={name: dtype for w in BATCH_WINDOWS_DAYS
              for name, dtype in ((f"term_tx_count_{w}d", "int64"),
                                  (f"term_fraud_rate_{w}d", "float64"))},
    offline_file="terminal_stats.parquet", created=True)

# Streamed windows over each transaction's amount (pipelines/fraud/flow.py, the backfill).
CUSTOMER_WINDOWS = WindowSpec(
    windows={"10m": 600, "1h": 3600},
    features={
        "cust_tx_count_10m": ("count", "10m"),
        "cust_amount_sum_10m": ("sum", "10m"),
        "cust_mean_amount_10m": ("mean", "10m"),
        "cust_tx_count_1h": ("count", "1h"),
        "cust_amount_sum_1h": ("sum", "1h"),
        "cust_mean_amount_1h": ("mean", "1h"),
    },
    values=("amount",),
)
TERMINAL_WINDOWS = WindowSpec(windows={"1h": 3600},
                              features={"term_tx_count_1h": ("count", "1h")})
CUSTOMER_FRESH = window_view("customer_fresh", "customer_id", CUSTOMER_WINDOWS,
                             push_source="customer_fresh_push",
                             offline_file="customer_fresh.parquet")
TERMINAL_FRESH = window_view("terminal_fresh", "terminal_id", TERMINAL_WINDOWS,
                             push_source="terminal_fresh_push",
                             offline_file="terminal_fresh.parquet")

VIEWS = (CUSTOMER_STATS, TERMINAL_STATS, CUSTOMER_FRESH, TERMINAL_FRESH)
STREAMED = (CUSTOMER_FRESH, TERMINAL_FRESH)
# An entity the online store does not know (a new card, a new terminal) has no history: zero
# counts, zero means and rates, exactly what the batch job and the stream write for no activity.
SERVING_DEFAULTS = serving_defaults(VIEWS)
PUSH_JOIN_KEYS = push_join_keys(STREAMED)
