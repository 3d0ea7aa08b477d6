# Wait up to $1 seconds (default 540) for the trainings of scripts/gpu/reproduce_mamba.sh to end, print
# where each stands (its last progress line, or its exit), and pack their results and logs into
# $OUT/repro.tgz. Source from the repository root (same REPRO).
REPRO=${REPRO:-/tmp/repro}
deadline=$((SECONDS + ${1:-540}))
running() { grep -L RUN_EXIT "$REPRO"/logs/*.log 2>/dev/null | wc -l; }
while [ $SECONDS -lt $deadline ] && [ "$(running)" -gt 0 ]; do sleep 15; done
for log in "$REPRO"/logs/*.log; do
  printf '%-28s %s\n' "$(basename "$log" .log)" "$(grep -E 'RUN_EXIT|\[[0-9]+/[0-9]+\]|Traceback|Error' "$log" | tail -n 1 | cut -c1-150)"
done
echo "still running: $(running)"
nvidia-smi --query-gpu=utilization.gpu,memory.used,power.draw --format=csv,noheader
if [ -n "${OUT:-}" ]; then
  tar -czf "$OUT/repro.tgz" -C "$REPRO" runs logs $( [ -d "$REPRO/check" ] && echo check )
  ls -la "$OUT"
fi
