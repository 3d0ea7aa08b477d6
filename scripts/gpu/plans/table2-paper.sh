# Table 2 with the paper's budget and loss (issue 20) beside LRA Text's S4 on its recipe (issue 25), in one
# session under MPS. Table 2, each tested with the weights after its training (select = "last") and saved:
# the paper's batch of 8 for its 204,800 steps (`paper-batch`), the same with the H3/safari loader's loss on
# every position (`paper-batch-lm`), and that loss at our batch of 64 (`long-lm`). LRA Text: S4 with S4's
# learning rates (0.01; its dt, A, P, B at 0.001: option ssm_lr), 20 minutes. Four trainings, as in the
# fourth session (table2-lra.sh), so their speeds compare. Carry [".whl", ".data"] (with .carry too the copy
# passes 64 MiB; the kernel build then takes ~115 s while S4 starts).
imdb_data
mps_start
stage start
lra_s4_then_kernels
stage table2
for setting in paper-batch paper-batch-lm long-lm; do
  background "t2-$setting" seqbench run recall --preset mamba-table2 --name mamba/mamba_ssm --setting "$setting" \
    --save-models --results "$SESSION/runs/t2-$setting"
done
wait
mps_stop
