# Start `nox -s bench` in the background on a device machine (it outlives the call that starts it), for
# runs longer than one call may last. Source from the repository root, with nox and the kernel libraries
# as wheels in .whl/; poll with scripts/gpu/bench_poll.sh.
#     SB=/root/sb TAG=bench source scripts/gpu/bench_start.sh [extra bench args]
# A run's log, results and report go to $SB/$TAG/{bench.log,results,report}; caches (Triton, inductor,
# built kernels) to $SB/cache, shared by the runs of one machine; scripts/gpu/restore_carry.sh first
# restores what an earlier machine packed (caches, autotuning results, earlier results for --resume).
SB=${SB:-/root/sb}
TAG=${TAG:-bench}
mkdir -p "$SB/$TAG" "$SB/cache/seqbench/triton"
export XDG_CACHE_HOME=$SB/cache PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/nox \
  .whl/nox-*.whl .whl/argcomplete-*.whl .whl/colorlog-*.whl .whl/dependency_groups-*.whl .whl/distlib-*.whl \
  .whl/platformdirs-*.whl .whl/python_discovery-*.whl .whl/virtualenv-*.whl
export PYTHONPATH=/tmp/nox PATH=/tmp/nox/bin:$PATH
source scripts/gpu/restore_carry.sh
setsid nohup bash -c "python3 -m nox -s bench -- --wheels .whl --results $SB/$TAG/results \
  --report $SB/$TAG/report $* > $SB/$TAG/bench.log 2>&1; echo BENCH_EXIT \$? >> $SB/$TAG/bench.log" \
  > /dev/null 2>&1 &
echo "bench started: log $SB/$TAG/bench.log"
