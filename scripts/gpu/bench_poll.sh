# Wait up to $1 seconds for the background bench (scripts/gpu/bench_start.sh) to finish, print its
# progress, and pack results, report and (with PACK_CACHE=1) the compile caches into $OUT.
SB=${SB:-/root/sb}
deadline=$((SECONDS + ${1:-540}))
while [ $SECONDS -lt $deadline ] && ! grep -q BENCH_EXIT "$SB/bench.log" 2>/dev/null; do sleep 10; done
grep -E "nox > (Running|Command)|time per stage|report:|BENCH_EXIT|rows|Summary|ok " "$SB/bench.log" | tail -n 60
tail -c 3000 "$SB/bench.log"
nvidia-smi --query-gpu=clocks.sm,temperature.gpu,power.draw,memory.used --format=csv
if [ -n "${OUT:-}" ]; then
  tar -czf "$OUT/results.tgz" -C "$SB" results report 2>/dev/null
  cp "$SB/bench.log" "$OUT/bench.log"
  if [ "${PACK_CACHE:-0}" = 1 ]; then  # at most 6 parts of 15 MB come back (8 files in all)
    tar -czf - -C "$SB/cache" --exclude=seqbench/kernels seqbench | split -b 15M -d - "$OUT/cache.part"
    du -sh "$SB/cache/seqbench"/*
  fi
  ls -la "$OUT"
fi
