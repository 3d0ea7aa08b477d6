# The next device session for the reproductions (issues 20 and 25), from what the 2026-12-02 session
# (plans/reproduce.sh) found: six trainings on one card slowed Mamba's Table 1 to 28.6 steps/s and left
# LRA Text's S4 eager at 1.9 steps/s (its capture failed; fixed since: 39.9 ms a step captured, alone).
# Here: LRA Text's S4 (20 minutes, captured) and Table 1's Mamba (T1_LIMIT_S) side by side under MPS, and
# four short diagnosis trainings (mamba-diagnosis at L 256, 2000 steps: mamba_ssm and the reference in
# bf16 autocast and in float32) once the kernel is built. Poll with PACK_CACHE=all the first time after
# the build, so the next machine restores the built extension instead of compiling it again (~3.5 min).
T1_LIMIT_S=${T1_LIMIT_S:-1080}
sed "s/^time_limit_s = .*/time_limit_s = $T1_LIMIT_S/" suites/presets/recall/mamba-table1.toml > "$SESSION/mamba-table1.toml"
mkdir -p /tmp/imdb && tar xJf .data/aclImdb-labelled.tar.xz -C /tmp/imdb
export SEQBENCH_IMDB=/tmp/imdb
if command -v nvidia-cuda-mps-control >/dev/null; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  nvidia-cuda-mps-control -d && echo "MPS started"
fi
background() {  # background NAME COMMAND...: the command's output in $SESSION/logs/NAME.log
  local name=$1; shift
  "$@" > "$SESSION/logs/$name.log" 2>&1 &
}
stage start
background lra-s4 seqbench run classify --preset lra-text --family s4 --seq-len 4096 --results "$SESSION/runs/lra-s4"
stage kernels; time seqbench kernels build
stage mamba
background t1-mamba seqbench run recall --preset "$SESSION/mamba-table1.toml" --name mamba/mamba_ssm \
  --setting curriculum --results "$SESSION/runs/t1-mamba"
for setting in decay-matrices decay-matrices-fp32; do
  background "diag-$setting" seqbench run recall --preset mamba-diagnosis --name mamba/mamba_ssm \
    --name mamba/reference --setting "$setting" --seq-len 256 --results "$SESSION/runs/diag-$setting"
done
wait
command -v nvidia-cuda-mps-control >/dev/null && echo quit | nvidia-cuda-mps-control
