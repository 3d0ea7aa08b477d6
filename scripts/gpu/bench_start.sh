# Start `nox -s bench` in the background on a device machine (it outlives the call that starts it), for
# runs longer than one call may last. Source from the repository root, with nox and the kernel libraries
# as wheels in .whl/ (and Triton autotuning results in .carry/, if any); poll with scripts/gpu/bench_poll.sh.
# Caches (Triton, inductor, built kernels) go under $SB/cache.
#     SB=/root/sb source scripts/gpu/bench_start.sh [extra bench args]
SB=${SB:-/root/sb}
mkdir -p "$SB"
export XDG_CACHE_HOME=$SB/cache PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/nox \
  .whl/nox-*.whl .whl/argcomplete-*.whl .whl/colorlog-*.whl .whl/dependency_groups-*.whl .whl/distlib-*.whl \
  .whl/platformdirs-*.whl .whl/python_discovery-*.whl .whl/virtualenv-*.whl
export PYTHONPATH=/tmp/nox PATH=/tmp/nox/bin:$PATH
# Triton autotuning results from an earlier machine of the same architecture (scripts/gpu/bench_poll.sh
# with PACK_CACHE=autotune packs them): kernels then compile their chosen config only, never benchmark all.
mkdir -p "$SB/cache/seqbench/triton"
for carried in .carry/triton-autotune-*.tgz; do
  [ -e "$carried" ] && tar xzf "$carried" -C "$SB/cache/seqbench/triton" && echo "restored $carried"
done
setsid nohup bash -c "python3 -m nox -s bench -- --wheels .whl --results $SB/results --report $SB/report $* \
  > $SB/bench.log 2>&1; echo BENCH_EXIT \$? >> $SB/bench.log" > /dev/null 2>&1 &
echo "bench started: log $SB/bench.log"
