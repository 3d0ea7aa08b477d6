# Table 2's fall-off (issue 20) and LRA Text's S4 alone (issue 25) in one session, under MPS. Table 2:
# Mamba's `long` cell again (18 minutes, bf16), `long-wd0` (the same without weight decay) and `long-dtmin`
# (dt initialised down to 1e-4), all saving their models (--save-models); then the saved models retested
# at once through the Mamba reference in float64 at 2^8, 2^14 and 2^16 with their decay horizons
# (scripts/retest_recall.py, at most 150 s each): whether the fall-off is numerical, and whether the
# layers' longest memory ends where the accuracy falls. LRA Text: S4 on its own preset, 20 minutes (bar
# >= 85%), beside the three light L 256 trainings. Carry [".whl", ".carry", ".data"].
imdb_data
mps_start
stage start
lra_s4_then_kernels
stage table2
table2_then_retest() {  # the two trainings, then their retests, while LRA's S4 may still be training
  for setting in long long-wd0 long-dtmin; do
    seqbench run recall --preset mamba-table2 --name mamba/mamba_ssm --setting "$setting" --save-models \
      --results "$SESSION/runs/t2-$setting" > "$SESSION/logs/t2-$setting.log" 2>&1 &
  done
  wait
  stage retest
  for checkpoint in "$SESSION"/runs/t2-*-logs/checkpoints/*/*.pt; do
    timeout 150 python scripts/retest_recall.py "$checkpoint" --seq-len 256 --seq-len 16384 --seq-len 65536 \
      --name mamba/reference --dtype float64 --device cuda --horizons --json "${checkpoint%.pt}.retest.jsonl" \
      > "${checkpoint%.pt}.retest.log" 2>&1 &
  done
  wait
}
table2_then_retest > "$SESSION/logs/t2-chain.log" 2>&1 &
wait
mps_stop
