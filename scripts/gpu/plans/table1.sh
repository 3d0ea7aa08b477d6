# Mamba's Table 1 (issue 20): selective copying at L 4096, the curriculum cell of mamba-table1 (steps
# replayed from a CUDA graph), with the time limit the session affords (the bar: at most 20 minutes of
# training); `seqbench check --device cuda` beside it (short kernels: it slows the training a little for
# its ~3 minutes). On 2026-12-02 a 270 s eager probe of this cell reached 68.2% and was still climbing.
T1_LIMIT_S=${T1_LIMIT_S:-1080}
sed "s/^time_limit_s = .*/time_limit_s = $T1_LIMIT_S/" suites/presets/recall/mamba-table1.toml > "$SESSION/mamba-table1.toml"
stage kernels; time seqbench kernels build
stage table1
seqbench check --device cuda --results "$SESSION/check" > "$SESSION/logs/check.log" 2>&1 &
seqbench run recall --preset "$SESSION/mamba-table1.toml" --name mamba/mamba_ssm --setting curriculum \
  --results "$SESSION/runs/t1-mamba-curriculum"
wait
