# Mamba's Table 2 (issue 20) without the early stop: induction heads trained at L 256 for the preset's
# 10 minutes each, tested at 2^6 .. 2^20; Mamba alone first (its bar: >= 95% to 2^16), then the three MHA
# cells together (small attention trainings: they share the card), and the seeds' variant with S4.
stage kernels; time seqbench kernels build
stage table2-mamba
seqbench run recall --preset mamba-table2 --name mamba/mamba_ssm --setting baseline --results "$SESSION/runs/t2-mamba"
stage table2-mha
for cell in MHA-Abs MHA-Abs-scaled MHA-RoPE; do
  seqbench run recall --preset mamba-table2 --name attention/sdpa_flash --setting "$cell" \
    --results "$SESSION/runs/t2-$cell" > "$SESSION/logs/t2-$cell.log" 2>&1 &
done
seqbench run recall --preset selective-copying-seed --name s4/cufft --results "$SESSION/runs/seed-s4" \
  > "$SESSION/logs/seed-s4.log" 2>&1 &
wait
