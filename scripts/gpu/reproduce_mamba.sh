# Mamba's synthetic results on one GPU (issue 20): every training of mamba-table1, mamba-table2,
# mamba-diagnosis and selective-copying-seed at once, each `seqbench run recall` a process of its own
# (they train small models, bound by the host, so sharing the card costs each little), detached so they
# outlive the call that starts them. Source from the repository root with the kernel wheels in .whl/:
#     REPRO=/tmp/repro source scripts/gpu/reproduce_mamba.sh
# `seqbench check --device cuda` (forward and gradients) starts with them, detached as well. Each
# training's results go to $REPRO/runs/<label>/ and its log to $REPRO/logs/<label>.log; poll and pack
# with scripts/gpu/reproduce_poll.sh (`--name` replaces a grid's mixers, so cells are picked by --setting).
# Seen on an H200 (2026-12-02): fourteen trainings and the check at once ran each training at 6-23
# steps/s, about a tenth of what one alone runs; the kernel build took 195 s. Give Table 1 the card alone
# (or fewer neighbours) when the device time allows.
REPRO=${REPRO:-/tmp/repro}
mkdir -p "$REPRO/logs" "$REPRO/runs"
export PYTHONUNBUFFERED=1
source scripts/gpu/setup.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv

launch() {  # label, then the arguments of `seqbench run recall`
  local label=$1
  shift
  setsid nohup bash -c "seqbench run recall $* --results $REPRO/runs/$label; echo RUN_EXIT \$?" \
    > "$REPRO/logs/$label.log" 2>&1 < /dev/null &
}

# Not needing mamba_ssm's compiled scan: start now, while it builds.
launch t1-s4-curriculum --preset mamba-table1 --name s4/cufft --setting curriculum
launch t1-attention-curriculum --preset mamba-table1 --name attention/sdpa_flash --setting curriculum
launch t2-s4 --preset mamba-table2 --name s4/cufft --setting baseline
launch t2-mha-abs --preset mamba-table2 --name attention/sdpa_flash --setting MHA-Abs
launch t2-mha-rope --preset mamba-table2 --name attention/sdpa_flash --setting MHA-RoPE
launch diag-mamba-reference --preset mamba-diagnosis --name mamba/reference
launch diag-s4 --preset mamba-diagnosis --name s4/cufft
launch diag-attention --preset mamba-diagnosis --name attention/sdpa_flash

time seqbench kernels build
launch t1-mamba-curriculum --preset mamba-table1 --name mamba/mamba_ssm --setting curriculum
launch t1-mamba-paper --preset mamba-table1 --name mamba/mamba_ssm --setting paper-recipe
launch t1-mamba-no-curriculum --preset mamba-table1 --name mamba/mamba_ssm --setting no-curriculum
launch t2-mamba --preset mamba-table2 --name mamba/mamba_ssm --setting baseline
launch diag-mamba-ssm --preset mamba-diagnosis --name mamba/mamba_ssm
launch seed --preset selective-copying-seed
# The check (forward and gradients) detached too: a call that ends or times out must not take it along.
setsid nohup bash -c "seqbench check --device cuda --results $REPRO/check; echo RUN_EXIT \$?" \
  > "$REPRO/logs/check.log" 2>&1 < /dev/null &
echo "started $(ls "$REPRO/logs" | wc -l) trainings and the check; logs in $REPRO/logs"
