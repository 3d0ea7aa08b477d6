# Table 2 with the last evaluation's weights (issue 20) beside LRA Text's other mixers (issue 25), in one
# session under MPS. Table 2: Mamba's `long` again, now tested with the weights after its 18 minutes
# (select = "last"), the paper's batch of 8 for its 204,800 steps (`paper-batch`), and the H3/safari
# loader's loss on every position (`paper-batch-lm`, `long-lm`), all saving their models. LRA Text: the
# six mixers beside S4 (attention, Mamba, Mamba-2, RWKV-7, mLSTM, LSTM), 20 minutes each, at once: their
# rows say how many shared the card. Carry [".whl", ".data"] (with .carry too the copy passes 64 MiB; the
# kernel build then takes ~115 s while LRA's trainings start).
mkdir -p /tmp/imdb && tar xJf .data/aclImdb-labelled.tar.xz -C /tmp/imdb
export SEQBENCH_IMDB=/tmp/imdb
mps_start
stage start
for family in attention mamba2 rwkv xlstm:mlstm lstm; do  # Mamba's LRA run needs the kernel: after the build
  background "lra-${family%%:*}" seqbench run classify --preset lra-text --family "$family" --seq-len 4096 \
    --results "$SESSION/runs/lra-${family%%:*}"
done
stage kernels; time seqbench kernels build
background lra-mamba seqbench run classify --preset lra-text --family mamba --seq-len 4096 \
  --results "$SESSION/runs/lra-mamba"
stage table2
for setting in long paper-batch paper-batch-lm long-lm; do
  background "t2-$setting" seqbench run recall --preset mamba-table2 --name mamba/mamba_ssm --setting "$setting" \
    --save-models --results "$SESSION/runs/t2-$setting"
done
wait
mps_stop
