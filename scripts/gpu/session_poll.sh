# Wait up to $1 seconds (default 480) for the plan that scripts/gpu/session.sh started, print its stages and
# the last lines of its log, and pack $SESSION (results, logs) into $OUT/session.tgz; PACK_CACHE=all also
# packs the compilation caches and the built extension for the next machine (scripts/gpu/pack_cache.sh).
SESSION=${SESSION:-/tmp/session}
deadline=$((SECONDS + ${1:-480}))
while [ $SECONDS -lt $deadline ] && ! grep -q CHAIN_EXIT "$SESSION/logs/chain.log" 2>/dev/null; do sleep 10; done
grep -E '^STAGE|^real' "$SESSION/logs/chain.log"
grep -E '^\[[0-9]+/[0-9]+\]' "$SESSION/logs/chain.log" | tail -n 6 | cut -c1-160
tail -n 3 "$SESSION/logs/chain.log" | cut -c1-200
for log in "$SESSION"/logs/*.log; do
  [ "$log" = "$SESSION/logs/chain.log" ] || echo "$(basename "$log"): $(tail -n 1 "$log" | cut -c1-160)"
done
# each training's last evaluation (its worker log: suites/recall/train.py and classify print one per evaluation)
find "$SESSION/runs" -name worker.log 2>/dev/null | while read -r log; do
  label=${log#"$SESSION"/runs/}
  echo "${label%%/*}: $(grep -E '^step ' "$log" | tail -n 1 | cut -c1-150)"
done
nvidia-smi --query-gpu=utilization.gpu,memory.used,power.draw --format=csv,noheader
if [ -n "${OUT:-}" ]; then
  tar -czf "$OUT/session.tgz" -C "$SESSION" runs logs $( [ -d "$SESSION/check" ] && echo check )
  # a long grid's results under $SB (plans/zoology.sh): back to this machine, and to the next one as
  # .carry/restore/zoology.tgz, where restore_carry.sh unpacks it for --resume
  [ -d "${SB:-/root/sb}/zoology" ] && tar -czf "$OUT/zoology.tgz" -C "${SB:-/root/sb}" zoology
  source scripts/gpu/pack_cache.sh
  ls -la "$OUT"
fi
