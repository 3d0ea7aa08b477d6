# One GPU session for issues 20, 21 and 25 (2026-12-02): the kernel build, then, alone on the card, the
# training-speed preset (every family, eager against CUDA graph, fp32 as zoology-fig2 trains; attention
# and Mamba in bf16 too, the dtype the "today" numbers were taken in), then Mamba's Table 1 run
# (selective copying at L 4096, the curriculum cell, graph steps) with `seqbench check --device cuda`
# beside it. All of it one detached chain, so that it outlives the call that starts it. Source from the
# repository root with the kernel wheels in .whl/:
#     SESSION=/tmp/session T1_LIMIT_S=600 source scripts/gpu/speed_session.sh
# then poll with `SESSION=/tmp/session source scripts/gpu/session_poll.sh SECONDS` (packs $OUT/session.tgz).
SESSION=${SESSION:-/tmp/session}
T1_LIMIT_S=${T1_LIMIT_S:-600}
mkdir -p "$SESSION/logs" "$SESSION/runs"
export PYTHONUNBUFFERED=1
source scripts/gpu/setup.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
# Table 1 with the time limit this session can afford (the preset's own is 720 s).
sed "s/^time_limit_s = .*/time_limit_s = $T1_LIMIT_S/" suites/presets/recall/mamba-table1.toml > "$SESSION/mamba-table1.toml"
export SESSION
setsid nohup bash -c '
  stage() { echo "STAGE $1 $(date +%T)"; }
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
  stage done
  echo CHAIN_EXIT
' > "$SESSION/logs/chain.log" 2>&1 < /dev/null &
echo "chain started; log $SESSION/logs/chain.log"
