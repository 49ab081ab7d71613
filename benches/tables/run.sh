#!/usr/bin/env bash
# dagger's tables against polars and DataFusion: the same generated Parquet files, the
# same thread count, interleaved rounds (the engine that goes first rotates), medians.
# Not part of CI. Installs polars, datafusion and pyarrow into a virtual environment.
#
#   benches/tables/run.sh [LINES] [ROUNDS]     env: THREADS (default 2), DATA, VENV
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES=${1:-6000000}
ROUNDS=${2:-5}
THREADS=${THREADS:-2}
DATA=${DATA:-/tmp/dagger-tables-$LINES}
VENV=${VENV:-/tmp/dagger-tables-venv}

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q polars datafusion pyarrow
fi
cargo bench --features table --bench tables --no-run 2>/dev/null
BIN=$(ls -t target/release/deps/tables-* | grep -v '\.d$' | head -1)
[ -d "$DATA/lineitem" ] || "$BIN" gen "$DATA" "$LINES" 16

export DAGGER_THREADS=$THREADS POLARS_MAX_THREADS=$THREADS THREADS
OUT=${OUT:-$(mktemp)}
engines=(dagger polars datafusion)
for round in $(seq 1 "$ROUNDS"); do
    for source in parquet memory; do
        for query in q1 q6 groupby join; do
            for k in 0 1 2; do
                engine=${engines[$(( (k + round) % 3 ))]}
                if [ "$engine" = dagger ]; then
                    line=$("$BIN" run "$DATA" "$query" "$source")
                else
                    line=$("$VENV/bin/python" benches/tables/engines.py "$engine" "$DATA" "$query" "$source")
                fi
                echo "$engine $line" | tee -a "$OUT"
            done
        done
    done
done

echo
echo "lines=$LINES threads=$THREADS rounds=$ROUNDS; allocators: dagger glibc malloc," \
    "polars $("$VENV/bin/python" -c 'import polars; print(polars.__version__)') (jemalloc)," \
    "datafusion $("$VENV/bin/python" -c 'import datafusion; print(datafusion.__version__)') (mimalloc)"
python3 - "$OUT" <<'PY'
import collections, statistics, sys
times = collections.defaultdict(list)
for line in open(sys.argv[1]):
    engine, query, source, ms, rows = line.split()
    times[(query, source, engine)].append(float(ms))
print(f"{'query':8} {'source':8} {'dagger':>9} {'polars':>9} {'datafusion':>11} {'ratio':>6}  (ms, median; ratio = dagger / faster)")
for source in ("parquet", "memory"):
    for query in ("q1", "q6", "groupby", "join"):
        m = {e: statistics.median(times[(query, source, e)]) for e in ("dagger", "polars", "datafusion")}
        best = min(m["polars"], m["datafusion"])
        print(f"{query:8} {source:8} {m['dagger']:9.1f} {m['polars']:9.1f} {m['datafusion']:11.1f} {m['dagger'] / best:6.2f}")
PY
