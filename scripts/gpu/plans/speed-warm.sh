# Training speed with warm caches (issue 21): train-speed twice (the second pass, --redo into its own folder,
# is the measurement: every cell finds its kernels compiled), then trainings per hour for 1, 2, 4 and 8 slots
# on the card: the graph cells of attention and Mamba at 4 learning rates (8 trainings) per slot count.
stage kernels; time seqbench kernels build
stage speed-cold
seqbench run recall --preset train-speed --slots-per-gpu 1 --results "$SESSION/runs/speed-cold"
stage speed-warm
seqbench run recall --preset train-speed --slots-per-gpu 1 --redo --results "$SESSION/runs/speed-warm"
for slots in 1 2 4 8; do
  stage "slots-$slots"
  /usr/bin/time -f "slots $slots wall %e s" seqbench run recall --preset train-speed --setting graph \
    --name attention/sdpa_flash --name mamba/mamba_ssm --lr 1e-4 --lr 4.6415888e-4 --lr 2.1544347e-3 --lr 1e-2 \
    --dtype bfloat16 --slots-per-gpu "$slots" --results "$SESSION/runs/slots-$slots"
done
# The same with CUDA's Multi-Process Service: without it the trainings of several processes take turns on the
# GPU (time slices); with it their kernels run at once, which is what small, latency-bound steps need.
if mps_start; then
  for slots in 4 8; do
    stage "mps-slots-$slots"
    /usr/bin/time -f "mps slots $slots wall %e s" seqbench run recall --preset train-speed --setting graph \
      --name attention/sdpa_flash --name mamba/mamba_ssm --lr 1e-4 --lr 4.6415888e-4 --lr 2.1544347e-3 --lr 1e-2 \
      --dtype bfloat16 --slots-per-gpu "$slots" --results "$SESSION/runs/mps-slots-$slots"
  done
  mps_stop
fi
