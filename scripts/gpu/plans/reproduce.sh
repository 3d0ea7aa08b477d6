# The reproductions' bars in one device session (~25 minutes): Mamba's Table 1 (issue 20: Mamba, S4 and
# attention on selective copying at L 4096, the curriculum cell, T1_LIMIT_S of training each), Table 2's
# Mamba without the early stop and the MHA-Abs-scaled cell (10 minutes each, tested to 2^20), and LRA Text's
# S4 (issue 25, 20 minutes at L 4096; carry .data as plans/lra-text.sh says). Six trainings share the card
# under CUDA's Multi-Process Service (their kernels run side by side instead of taking turns); the rows
# record each training's steps and steps/s, so what the sharing cost is on the record. What needs no built
# extension starts at once; Mamba's two trainings start after `seqbench kernels build`.
T1_LIMIT_S=${T1_LIMIT_S:-1080}
sed "s/^time_limit_s = .*/time_limit_s = $T1_LIMIT_S/" suites/presets/recall/mamba-table1.toml > "$SESSION/mamba-table1.toml"
imdb_data
mps_start
stage start
background lra-s4 seqbench run classify --preset lra-text --family s4 --seq-len 4096 --results "$SESSION/runs/lra-s4"
background t1-s4 seqbench run recall --preset "$SESSION/mamba-table1.toml" --name s4/cufft --setting curriculum \
  --results "$SESSION/runs/t1-s4"
background t1-attention seqbench run recall --preset "$SESSION/mamba-table1.toml" --name attention/sdpa_flash \
  --setting curriculum --results "$SESSION/runs/t1-attention"
background t2-mha-scaled seqbench run recall --preset mamba-table2 --name attention/sdpa_flash \
  --setting MHA-Abs-scaled --results "$SESSION/runs/t2-mha-scaled"
stage kernels; time seqbench kernels build
stage mamba
background t1-mamba seqbench run recall --preset "$SESSION/mamba-table1.toml" --name mamba/mamba_ssm \
  --setting curriculum --results "$SESSION/runs/t1-mamba"
background t2-mamba seqbench run recall --preset mamba-table2 --name mamba/mamba_ssm --setting baseline \
  --results "$SESSION/runs/t2-mamba"
wait
mps_stop
