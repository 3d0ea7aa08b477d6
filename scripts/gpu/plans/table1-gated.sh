# Mamba's Table 1 with the accuracy-gated curriculum (issue 20; mamba-table1's "curriculum-gated" cell:
# each short stage ends once 95% of its own test set is right), Mamba and S4 side by side under MPS with
# T1_LIMIT_S of training each, and the four short trainings of mamba-diagnosis at L 256 (mamba_ssm and the
# reference in bf16 autocast and in float32, 2000 steps) once the kernel is built. From the 2026-12-02
# session (plans/reproduce.sh): six trainings on the card slowed Mamba to 28.6 steps/s; LRA Text's S4 runs
# apart (plans/lra-text.sh), its step captured now (39.9 ms alone). Poll with PACK_CACHE=all the first
# time after the build, so the next machine restores the built extension instead of compiling it (~3.5 min).
T1_LIMIT_S=${T1_LIMIT_S:-1080}
sed "s/^time_limit_s = .*/time_limit_s = $T1_LIMIT_S/" suites/presets/recall/mamba-table1.toml > "$SESSION/mamba-table1.toml"
mps_start
stage start
background t1-s4 seqbench run recall --preset "$SESSION/mamba-table1.toml" --name s4/cufft \
  --setting curriculum-gated --results "$SESSION/runs/t1-s4"
stage kernels; time seqbench kernels build
stage mamba
background t1-mamba seqbench run recall --preset "$SESSION/mamba-table1.toml" --name mamba/mamba_ssm \
  --setting curriculum-gated --results "$SESSION/runs/t1-mamba"
for setting in decay-matrices decay-matrices-fp32; do
  background "diag-$setting" seqbench run recall --preset mamba-diagnosis --name mamba/mamba_ssm \
    --name mamba/reference --setting "$setting" --seq-len 256 --results "$SESSION/runs/diag-$setting"
done
wait
mps_stop
