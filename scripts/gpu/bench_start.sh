# Start `nox -s bench` in the background on a device machine (it outlives the call that starts it), for
# runs longer than one call may last. Source from the repository root, with nox and the kernel libraries
# as wheels in .whl/; poll with scripts/gpu/bench_poll.sh.
#     SB=/root/sb TAG=bench source scripts/gpu/bench_start.sh [extra bench args]
# A run's log, results and report go to $SB/$TAG/{bench.log,results,report}; caches (Triton, inductor,
# built kernels) to $SB/cache, shared by the runs of one machine. From an earlier machine of the same
# architecture it restores what bench_poll.sh packed and the command carried in .carry/:
#   .carry/triton-autotune-*.tgz   Triton's autotuning results (kernels compile their chosen config only);
#   .carry/cache.tgz.part-*        the pruned compilation caches and the built CUDA extension (warm start);
#   .carry/restore/*.tgz           earlier runs' results and reports (continue one with --resume).
SB=${SB:-/root/sb}
TAG=${TAG:-bench}
mkdir -p "$SB/$TAG" "$SB/cache/seqbench/triton"
export XDG_CACHE_HOME=$SB/cache PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/nox \
  .whl/nox-*.whl .whl/argcomplete-*.whl .whl/colorlog-*.whl .whl/dependency_groups-*.whl .whl/distlib-*.whl \
  .whl/platformdirs-*.whl .whl/python_discovery-*.whl .whl/virtualenv-*.whl
export PYTHONPATH=/tmp/nox PATH=/tmp/nox/bin:$PATH
if [ ! -e "$SB/.restored" ]; then
  for carried in .carry/triton-autotune-*.tgz; do
    [ -e "$carried" ] && tar xzf "$carried" -C "$SB/cache/seqbench/triton" && echo "restored $carried"
  done
  if ls .carry/cache.tgz.part-* >/dev/null 2>&1; then
    cat .carry/cache.tgz.part-* | tar xzf - -C "$SB/cache" && echo "restored caches: $(du -sh "$SB/cache" | cut -f1)"
  fi
  for carried in .carry/restore/*.tgz; do
    [ -e "$carried" ] && tar xzf "$carried" -C "$SB" && echo "restored $carried"
  done
  touch "$SB/.restored"
fi
setsid nohup bash -c "python3 -m nox -s bench -- --wheels .whl --results $SB/$TAG/results \
  --report $SB/$TAG/report $* > $SB/$TAG/bench.log 2>&1; echo BENCH_EXIT \$? >> $SB/$TAG/bench.log" \
  > /dev/null 2>&1 &
echo "bench started: log $SB/$TAG/bench.log"
