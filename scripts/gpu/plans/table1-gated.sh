# Mamba's Table 1 with the accuracy-gated curriculum (issue 20; mamba-table1's "curriculum-gated" cell:
# each short stage ends once 95% of its own test set is right), Mamba in bf16 autocast and in float32
# ("curriculum-gated-fp32") and S4 side by side under MPS with T1_LIMIT_S of training each; Table 2's Mamba
# trained 18 minutes in bf16 and in float32 ("long", "fp32-long"); and the float32 cell of mamba-diagnosis
# at L 256 (mamba_ssm against the reference, 2000 steps), all once the kernel is built. From the 2026-12-02
# session (plans/reproduce.sh): six trainings on the card slowed Mamba to 28.6 steps/s. Poll with
# PACK_CACHE=all the first time after the build, so the next machine restores the built extension.
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
background t1-mamba-fp32 seqbench run recall --preset "$SESSION/mamba-table1.toml" --name mamba/mamba_ssm \
  --setting curriculum-gated-fp32 --results "$SESSION/runs/t1-mamba-fp32"
for setting in long fp32-long; do
  background "t2-mamba-$setting" seqbench run recall --preset mamba-table2 --name mamba/mamba_ssm \
    --setting "$setting" --results "$SESSION/runs/t2-mamba-$setting"
done
background diag-fp32 seqbench run recall --preset mamba-diagnosis --name mamba/mamba_ssm \
  --name mamba/reference --setting decay-matrices-fp32 --seq-len 256 --results "$SESSION/runs/diag-fp32"
wait
mps_stop
