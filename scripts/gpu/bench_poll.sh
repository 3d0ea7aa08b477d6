# Wait up to $1 seconds for the background bench (scripts/gpu/bench_start.sh) to finish, print its
# progress, and pack results, report and (with PACK_CACHE=autotune) Triton's autotuning results into $OUT.
SB=${SB:-/root/sb}
deadline=$((SECONDS + ${1:-540}))
while [ $SECONDS -lt $deadline ] && ! grep -q BENCH_EXIT "$SB/bench.log" 2>/dev/null; do sleep 10; done
grep -E "nox > (Running|Command)|time per stage|report:|BENCH_EXIT|rows|Summary|ok " "$SB/bench.log" | tail -n 60
tail -c 3000 "$SB/bench.log"
nvidia-smi --query-gpu=clocks.sm,temperature.gpu,power.draw,memory.used --format=csv
if [ -n "${OUT:-}" ]; then
  tar -czf "$OUT/results.tgz" -C "$SB" results report 2>/dev/null
  cp "$SB/bench.log" "$OUT/bench.log"
  if [ "${PACK_CACHE:-0}" = autotune ]; then  # Triton's autotuning results only: ~0.3 MB, not ~600 MB
    (cd "$SB/cache/seqbench/triton" && find . -name '*.autotune.json' | tar czf "$OUT/triton-autotune.tgz" -T -)
  fi
  ls -la "$OUT"
fi
