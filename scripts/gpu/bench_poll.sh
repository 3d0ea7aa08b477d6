# Wait up to $1 seconds for the background bench (scripts/gpu/bench_start.sh, same SB and TAG) to finish,
# print its progress, and pack into $OUT: $TAG-results.tgz (results without traces, and the report) and
# the log; with PACK_CACHE=autotune Triton's autotuning results (~0.3 MB); with PACK_CACHE=all the
# compilation caches without intermediate IR (PACK_CACHE=all: and the built CUDA extension), xz-compressed
# in 15 MiB parts (cache.txz.part-aa, ...: what comes back from a device call is limited to 16 MiB a file).
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
  if [ "${PACK_CACHE:-0}" = autotune ] || [ "${PACK_CACHE:-0}" = all ]; then
    (cd "$SB/cache/seqbench/triton" && find . -name '*.autotune.json' | tar czf "$OUT/triton-autotune.tgz" -T -)
  fi
  if [ "${PACK_CACHE:-0}" = all ] || [ "${PACK_CACHE:-0}" = compiled ]; then
    # Loading a compiled Triton kernel needs its binary (.cubin) and metadata (.json, __grp__*.json);
    # the IR kept beside them for inspection (.ttir, .ttgir, .llir, .ptx, .source) is most of the cache.
    (cd "$SB/cache" && du -sh seqbench/* && find seqbench/triton seqbench/inductor -type f \
      ! -name '*.ttir' ! -name '*.ttgir' ! -name '*.llir' ! -name '*.ptx' ! -name '*.source' ! -name '*.ll' \
      > /tmp/cache-files && { [ "$PACK_CACHE" = compiled ] || find seqbench/kernels -name '*.so' >> /tmp/cache-files; } \
      && tar cf - -T /tmp/cache-files | xz -T0 -6 | split -b 15m - "$OUT/cache.txz.part-")
  fi
  ls -la "$OUT"
fi
