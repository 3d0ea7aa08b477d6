# Restore, once per machine, what an earlier device machine of the same architecture packed
# (scripts/gpu/bench_poll.sh) and the command carried in .carry/, into $SB (default /root/sb):
#   .carry/triton-autotune-*.tgz   Triton's autotuning results (kernels compile their chosen config only);
#   .carry/cache.t[gx]z[.part-*]   the pruned compilation caches and the built CUDA extension (warm start);
#   .carry/restore/*.tgz           earlier runs' results and reports (continue one with --resume).
# Sourced by bench_start.sh; source it before running anything else that should find those caches.
SB=${SB:-/root/sb}
mkdir -p "$SB/cache/seqbench/triton"
export XDG_CACHE_HOME=$SB/cache
if [ ! -e "$SB/.restored" ]; then
  for carried in .carry/triton-autotune-*.tgz; do
    [ -e "$carried" ] && tar xzf "$carried" -C "$SB/cache/seqbench/triton" && echo "restored $carried"
  done
  for kind in tgz:gzip txz:xz; do
    if ls .carry/cache.${kind%:*}* >/dev/null 2>&1; then
      cat .carry/cache.${kind%:*}* | ${kind#*:} -dc | tar xf - -C "$SB/cache" && echo "restored caches: $(du -sh "$SB/cache" | cut -f1)"
    fi
  done
  for carried in .carry/restore/*.tgz; do
    [ -e "$carried" ] && tar xzf "$carried" -C "$SB" && echo "restored $carried"
  done
  touch "$SB/.restored"
fi
