# Pack the compilation caches under $SB/cache into $OUT for the next device machine (restore_carry.sh
# restores them from .carry/): PACK_CACHE=autotune Triton's autotuning results (~0.3 MB); PACK_CACHE=compiled
# the compiled Triton and inductor kernels without their intermediate IR; PACK_CACHE=all those and the built
# CUDA extension (mamba_ssm's selective_scan_cuda: no 150 s build next time), xz-compressed in 15 MiB parts
# (cache.txz.part-aa, ...: a device call returns files of at most 16 MiB).
SB=${SB:-/root/sb}
if [ "${PACK_CACHE:-0}" = autotune ] || [ "${PACK_CACHE:-0}" = all ]; then
  (cd "$SB/cache/seqbench/triton" && find . -name '*.autotune.json' | tar czf "$OUT/triton-autotune.tgz" -T -)
fi
if [ "${PACK_CACHE:-0}" = all ] || [ "${PACK_CACHE:-0}" = compiled ]; then
  # Loading a compiled Triton kernel needs its binary (.cubin) and metadata (.json, __grp__*.json);
  # the IR kept beside them for inspection (.ttir, .ttgir, .llir, .ptx, .source) is most of the cache.
  (cd "$SB/cache" && du -sh seqbench/* && find seqbench/triton seqbench/inductor -type f \
    ! -name '*.ttir' ! -name '*.ttgir' ! -name '*.llir' ! -name '*.ptx' ! -name '*.source' ! -name '*.ll' \
    > /tmp/cache-files 2>/dev/null; { [ "$PACK_CACHE" = compiled ] || find seqbench/kernels -name '*.so' >> /tmp/cache-files; } \
    && tar cf - -T /tmp/cache-files | xz -T0 -6 | split -b 15m - "$OUT/cache.txz.part-")
fi
