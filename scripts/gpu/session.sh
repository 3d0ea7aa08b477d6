# One device session: install, restore what earlier machines packed (.carry/, scripts/gpu/restore_carry.sh),
# then run a plan (a bash file of `stage NAME` lines and seqbench commands, scripts/gpu/plans/) detached, so
# that it outlives the call that starts it. Source from the repository root with the wheels in .whl/:
#     PLAN=scripts/gpu/plans/table1.sh SESSION=/tmp/session source scripts/gpu/session.sh
# then poll with `SESSION=/tmp/session PACK_CACHE=all source scripts/gpu/session_poll.sh SECONDS`.
# Carry .whl and .carry (`carry: [".whl", ".carry"]`) in every call.
SESSION=${SESSION:-/tmp/session}
mkdir -p "$SESSION/logs" "$SESSION/runs"
export PYTHONUNBUFFERED=1 SESSION
source scripts/gpu/setup.sh
source scripts/gpu/restore_carry.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
setsid nohup bash -c "source scripts/gpu/plan_helpers.sh; source $PLAN; stage done; echo CHAIN_EXIT" \
  > "$SESSION/logs/chain.log" 2>&1 < /dev/null &
echo "plan $PLAN started; log $SESSION/logs/chain.log"
