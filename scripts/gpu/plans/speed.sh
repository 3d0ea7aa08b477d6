# What ran on the H200 on 2026-12-02 (baselines/h200-training): the kernel build, training speed alone on the
# card (every family, eager against CUDA graph, fp32 as zoology-fig2 trains; attention and Mamba in bf16 too,
# the dtype of the issue's "today" numbers), then Mamba's Table 1 with `seqbench check` beside it.
T1_LIMIT_S=${T1_LIMIT_S:-600}
sed "s/^time_limit_s = .*/time_limit_s = $T1_LIMIT_S/" suites/presets/recall/mamba-table1.toml > "$SESSION/mamba-table1.toml"
stage kernels; time seqbench kernels build
stage speed-fp32
seqbench run recall --preset train-speed --slots-per-gpu 1 --results "$SESSION/runs/speed-fp32"
stage speed-bf16
seqbench run recall --preset train-speed --dtype bfloat16 --name attention/sdpa_flash --name mamba/mamba_ssm \
  --slots-per-gpu 1 --results "$SESSION/runs/speed-bf16"
stage table1
seqbench check --device cuda --results "$SESSION/check" > "$SESSION/logs/check.log" 2>&1 &
seqbench run recall --preset "$SESSION/mamba-table1.toml" --name mamba/mamba_ssm --setting curriculum \
  --results "$SESSION/runs/t1-mamba-curriculum"
wait
