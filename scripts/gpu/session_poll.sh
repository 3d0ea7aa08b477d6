# Wait up to $1 seconds (default 480) for scripts/gpu/speed_session.sh's chain, print its stages and the
# last lines of its log, and pack $SESSION (results, logs) into $OUT/session.tgz.
SESSION=${SESSION:-/tmp/session}
deadline=$((SECONDS + ${1:-480}))
while [ $SECONDS -lt $deadline ] && ! grep -q CHAIN_EXIT "$SESSION/logs/chain.log" 2>/dev/null; do sleep 10; done
grep -E '^STAGE|^real' "$SESSION/logs/chain.log"
tail -n 5 "$SESSION/logs/chain.log" | cut -c1-200
[ -f "$SESSION/logs/check.log" ] && tail -n 3 "$SESSION/logs/check.log" | cut -c1-200
nvidia-smi --query-gpu=utilization.gpu,memory.used,power.draw --format=csv,noheader
if [ -n "${OUT:-}" ]; then
  tar -czf "$OUT/session.tgz" -C "$SESSION" runs logs $( [ -d "$SESSION/check" ] && echo check )
  ls -la "$OUT"
fi
