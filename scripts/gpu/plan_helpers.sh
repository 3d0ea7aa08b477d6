# What every plan (scripts/gpu/plans/*.sh) may call; scripts/gpu/session.sh sources this before the plan.
stage() {  # stage NAME: a line the poll (session_poll.sh) prints, with the time
  echo "STAGE $1 $(date +%T)"
}
background() {  # background NAME COMMAND...: run it detached from the plan, its output in $SESSION/logs/NAME.log
  local name=$1; shift
  "$@" > "$SESSION/logs/$name.log" 2>&1 &
}
mps_start() {  # CUDA's Multi-Process Service: the kernels of several processes run at once, not in turns
  if command -v nvidia-cuda-mps-control >/dev/null; then
    export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    nvidia-cuda-mps-control -d && echo "MPS started"
  else
    echo "no nvidia-cuda-mps-control on this machine: no MPS"
    return 1
  fi
}
mps_stop() {
  command -v nvidia-cuda-mps-control >/dev/null && echo quit | nvidia-cuda-mps-control
}
imdb_data() {  # the labelled IMDb reviews carried as .data/aclImdb-labelled.tar.xz, unpacked for the classify suite
  mkdir -p /tmp/imdb && tar xJf .data/aclImdb-labelled.tar.xz -C /tmp/imdb
  export SEQBENCH_IMDB=/tmp/imdb
}
lra_s4_then_kernels() {  # LRA Text's S4 in the background (the kernel build does not concern it), then the build
  background lra-s4 seqbench run classify --preset lra-text --family s4 --seq-len 4096 --results "$SESSION/runs/lra-s4"
  stage kernels; time seqbench kernels build
}
