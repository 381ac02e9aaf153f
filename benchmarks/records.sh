#!/usr/bin/env bash
# Every benchmark run of record that docs/benchmarks.md cites, in order, then docs/runs.md.
#
#   benchmarks/records.sh            # on a quiet machine, after `make demo`'s setup
#
# Needs: the demo's data, Feast registry, materialized Redis and trained model; Postgres for the
# naive target (default DSN host=127.0.0.1 port=5432 user=postgres dbname=rtml_bench, or
# RTML_BENCH_PG_DSN). Nothing else should run: each results file records the CPU other processes
# used and is marked discarded above 10% (see docs/runs.md). A step that fails is reported at the
# end; the others still run. Expected duration on 2 cores: about 17 minutes.
# RECORDS_DRY_RUN=1 prints the commands instead of running them.
# RECORDS_SET=scale runs issue 13's instead (chaos, overload, workers, offline 10 M / 1 M, depth,
# soak, scale: about 60 minutes; Postgres for the naive side and the Postgres offline store);
# RECORDS_SET=recs the recommendations' (builds `rtml demo recs`'s shop first, which empties the
# shared online store: run `make demo` again before the other sets; about 10 minutes).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DSN=${RTML_BENCH_PG_DSN:-"host=127.0.0.1 port=5432 user=postgres dbname=rtml_bench"}
failed=()
t_all=$SECONDS

step() {  # step "<name>" <expected seconds> <command...>
    local name=$1 expect=$2
    shift 2
    echo
    echo "== $name (expected ~${expect}s; load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
    local t0=$SECONDS
    if [[ -n "${RECORDS_DRY_RUN:-}" ]]; then
        printf 'would run:'; printf ' %q' "$@"; echo
        return
    fi
    if ! "$@"; then
        failed+=("$name")
        echo "!! $name failed"
    fi
    echo "== $name: $((SECONDS - t0))s"
}

SET=${RECORDS_SET:-fraud}
echo "Runs of record ($SET): expected about 17 / 60 / 10 minutes for fraud / scale / recs (2 cores)."
changed=$(git status --porcelain | grep -cvE '^.. (benchmarks/results/|docs/img/|docs/runs.md)')
echo "git: $(git rev-parse --short HEAD), $changed changed files (each results file records them)"

if [[ $SET == fraud ]]; then
# 1. Side by side: naive, stock (pandas and python on-demand modes), rtml, floor; ~3 min each.
step "side-by-side 200 rps" 190 $BIN/rtml bench side-by-side --rate 200 --duration 20 \
    --url http://127.0.0.1:9 --pg-dsn "$DSN" --stock-modes pandas,python
step "side-by-side 50 rps" 180 $BIN/rtml bench side-by-side --rate 50 --duration 20 \
    --url http://127.0.0.1:9 --pg-dsn "$DSN" --stock-modes pandas,python \
    --hist docs/img/side-by-side-50rps.png
# 2. rtml /score open loop (starts its own service: --url points nowhere).
step "/score at 100,200 rps" 75 $BIN/rtml bench --rates 100,200 --duration 20 \
    --url http://127.0.0.1:9
# 3. Saturation (both shed rules in each file): rtml /score and /score_batch, naive, stock.
step "saturate rtml" 90 $BIN/rtml bench saturate --path both --start 150 --factor 1.4 \
    --step-s 5 --batch 100 --batch-start 10 --url http://127.0.0.1:9
step "saturate naive" 50 $BIN/rtml bench saturate --target naive --path /score --start 100 \
    --factor 1.5 --step-s 5 --pg-dsn "$DSN"
step "saturate stock (pandas)" 55 $BIN/rtml bench saturate --target stock --stock-mode pandas \
    --path /score --start 20 --factor 1.5 --step-s 5
step "saturate stock (python)" 55 $BIN/rtml bench saturate --target stock --stock-mode python \
    --path /score --start 20 --factor 1.5 --step-s 5
# 4. Cost from the newest rtml saturation run that was not discarded (0-shed rule).
step "cost" 5 $BIN/rtml bench cost --cache-hit-rate 0.3
# 5. Streaming: a 2-hour backlog (timers fire), 5k/s latency, 100k-customer memory.
step "stream throughput" 120 $BIN/python -m benchmarks.stream_throughput
# 6. The README's claims: writer cost, prediction-log memory, monitoring over 1 M rows.
step "claims" 210 $BIN/python -m benchmarks.claims all
fi
if [[ $SET == scale ]]; then  # issue 13, docs/benchmarks.md "Beyond one machine"
step "chaos" 40 $BIN/rtml bench chaos --rate 100 --before 10 --down 5 --after 20
step "overload" 100 $BIN/rtml bench overload --factor 2 --duration 20 --url http://127.0.0.1:9
step "workers" 140 $BIN/rtml bench saturate --workers 1,2 --path /score --start 150 \
    --factor 1.4 --step-s 5 --url http://127.0.0.1:9
step "offline 10M" 600 $BIN/rtml bench offline --stores duckdb --rows 10000000 \
    --chunk-days 1,3,7 --sinks parquet --timeout 900
step "offline 1M" 570 $BIN/rtml bench offline --stores duckdb,postgres,spark --rows 1000000 \
    --sinks parquet --timeout 900
step "depth" 800 $BIN/rtml bench depth --customers 500 --factors 1,10,100 --rate 200 \
    --duration 30 --pg-dsn "$DSN"
step "soak" 670 $BIN/rtml bench soak --minutes 10
step "scale" 450 $BIN/rtml bench scale --customers 5000,100000
fi
if [[ $SET == recs ]]; then  # issue 11, docs/benchmarks.md "Recommendations"
step "recs demo" 120 $BIN/rtml demo recs
step "recs L2 (1 worker)" 5 $BIN/rtml recs precompute --top 500
step "recs 1 worker" 255 $BIN/rtml bench --scenario recs --rates 100 --duration 30 \
    --skews 0.8,1.0,1.2
step "recs L2 (2 workers)" 5 $BIN/rtml recs precompute --top 500
step "recs 2 workers" 255 env RTML_SERVE_WORKERS=2 $BIN/rtml bench --scenario recs --rates 100 \
    --duration 30 --skews 0.8,1.0,1.2
fi
# 7. The list of every run, bad ones included.
step "docs/runs.md" 2 $BIN/python -m benchmarks.runs

echo
echo "all done in $(((SECONDS - t_all) / 60)) min $(((SECONDS - t_all) % 60)) s"
if ((${#failed[@]})); then
    echo "failed: ${failed[*]}"
    exit 1
fi
