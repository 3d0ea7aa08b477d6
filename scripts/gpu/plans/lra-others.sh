# LRA Text's six other mixers (issue 25: attention, Mamba, Mamba-2, RWKV-7, mLSTM, LSTM), 20 minutes each, at
# once under MPS (their rows say the card was shared: compare their accuracies, not their speeds), beside
# IMDb's word-level S4 against Mamba (imdb-s4-mamba). Carry [".whl", ".data"].
imdb_data
mps_start
stage start
for family in attention mamba2 rwkv xlstm:mlstm lstm; do  # Mamba's needs the kernel: after the build
  background "lra-${family%%:*}" seqbench run classify --preset lra-text --family "$family" --seq-len 4096 \
    --results "$SESSION/runs/lra-${family%%:*}"
done
stage kernels; time seqbench kernels build
background lra-mamba seqbench run classify --preset lra-text --family mamba --seq-len 4096 \
  --results "$SESSION/runs/lra-mamba"
background imdb seqbench run classify --preset imdb-s4-mamba --slots-per-gpu 4 --results "$SESSION/runs/imdb"
wait
mps_stop
