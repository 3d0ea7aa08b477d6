"""Where a recall training step's GPU time goes: the model of Zoology's smallest MQAR cell (vocab 8192, L 64,
4 pairs, d_model 64, batch 512, 2 layers, fp32) around one implementation, 20 eager warm-up steps, then
torch.profiler over 20 more; prints the kernels that take the most CUDA time and the mean step time.

    python scripts/gpu/profile_train_step.py mamba/mamba_ssm [--dtype float32] [--batch 512] [--compile]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch
from torch import nn

from harness import registry
from harness.config import MixerConfig
from suites.recall.model import ModelSettings, RecallModel, resolve_position
from suites.recall.tasks import get_task
from suites.training import IGNORE, TrainStep, autocast, make_adamw, parameter_groups, target_positions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("implementation")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--compile", action="store_true", help="torch.compile the loss first (TrainStep compile)")
    parser.add_argument("--no-profile", action="store_true", help="time the steps only")
    args = parser.parse_args()
    impl = registry.get(args.implementation)
    config = MixerConfig.from_dict({"d_model": 64, "n_heads": 1 if impl.family == "attention" else 4})
    spec = get_task("mqar")
    params = spec.params(vocab_size=8192, seq_len=64, n_pairs=4, power_a=0.01, random_fillers=False)
    examples = spec.examples_uncached("train", params, args.batch, 0)
    settings = resolve_position(ModelSettings(mlp="identity", init="zoology"), impl.family, config.rope)
    net = RecallModel(8192, 64, lambda: impl.create(config), settings, max_seq_len=64).cuda()
    inputs = examples.inputs.cuda()
    positions, labels = (t.cuda() for t in target_positions(examples.targets))
    dtype = getattr(torch, args.dtype)
    cast = dtype if dtype in (torch.bfloat16, torch.float16) else None

    def loss_of(x: torch.Tensor, p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(net(x, p).float(), y.reshape(-1), ignore_index=IGNORE)

    for mode in ("eager", "graph"):
        step = TrainStep(
            loss_of,
            list(net.parameters()),
            make_adamw(parameter_groups(net, 0.1, "all"), 1e-3, torch.device("cuda"), mode),
            grad_clip=0.0,
            autocast_dtype=cast,
            device=torch.device("cuda"),
            step_mode=mode,
            compile=args.compile,
        )
        for _ in range(args.steps):
            step(inputs, positions, labels)
        torch.cuda.synchronize()
        began = time.perf_counter()
        for _ in range(args.steps):
            step(inputs, positions, labels)
        torch.cuda.synchronize()
        ms = (time.perf_counter() - began) / args.steps * 1e3
        print(f"{args.implementation} {mode}: {ms:.3f} ms/step {step.note}")
    if args.no_profile:
        return
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(args.steps):
            with autocast(torch.device("cuda"), cast):
                loss = loss_of(inputs, positions, labels)
            loss.backward()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=15, max_name_column_width=70))


if __name__ == "__main__":
    main()
