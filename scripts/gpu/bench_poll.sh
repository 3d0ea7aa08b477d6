# Wait up to $1 seconds for the background bench (scripts/gpu/bench_start.sh, same SB and TAG) to finish,
# print its progress, and pack into $OUT: $TAG-results.tgz (results without traces, and the report) and
# the log; with PACK_CACHE=autotune|compiled|all the compilation caches (scripts/gpu/pack_cache.sh).
SB=${SB:-/root/sb}
TAG=${TAG:-bench}
LOG=$SB/$TAG/bench.log
deadline=$((SECONDS + ${1:-540}))
while [ $SECONDS -lt $deadline ] && ! grep -q BENCH_EXIT "$LOG" 2>/dev/null; do sleep 10; done
grep -E "nox > (Running|Command|stage)|time per stage|report:|BENCH_EXIT|wrote" "$LOG" | tail -n 40
tail -c 2500 "$LOG"
nvidia-smi --query-gpu=clocks.sm,temperature.gpu,power.draw,memory.used --format=csv
if [ -n "${OUT:-}" ]; then
  tar -czf "$OUT/$TAG-results.tgz" --exclude="$TAG/results-logs/traces" -C "$SB" "$TAG/results" "$TAG/results-logs" \
    "$TAG/report" 2>/dev/null
  cp "$LOG" "$OUT/$TAG-bench.log"
  source scripts/gpu/pack_cache.sh
  ls -la "$OUT"
fi
