"""Which training steps a CUDA graph captures, and how fast each runs (H200 findings, 2026-12-02: the
lra-text S4 step fell back to eager with "operation failed due to a previous error during capture" while
the recall suite's S4 step captured). Builds the classify model as suites/classify/train.py does, runs the
TrainStep in graph mode, and on a failure captures the parts (forward; forward and backward) to find the
first that breaks. Prints one line per case: captured or not, the note, ms per step.
    python scripts/gpu/diag_capture.py
"""

from __future__ import annotations

import time
import traceback

import torch
from torch import nn

from suites.backbone import ModelSettings, resolve_position
from suites.classify.model import ClassifyModel
from suites.mixers import model_layers
from suites.training import _release_generator_from_capture, make_train_step

DEVICE = torch.device("cuda")


def build(impl: str, config: dict, n_layers: int, seq_len: int, position: str = "auto") -> nn.Module:
    layers = model_layers(impl, config, n_layers)
    settings = resolve_position(
        ModelSettings.from_dict({"n_layers": n_layers, "mlp": "none", "position": position}),
        layers.families,
        layers.rope,
    )
    return ClassifyModel(258, config["d_model"], layers.makers(), settings, seq_len).to(DEVICE)


def timed(step, tokens, labels, n: int) -> float:
    torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(n):
        step(tokens, labels)
    torch.cuda.synchronize()
    return (time.perf_counter() - began) / n * 1e3


def parts(net: nn.Module, tokens: torch.Tensor, labels: torch.Tensor) -> None:
    """Capture the forward alone, then forward and backward, under bf16 autocast: which part fails first."""
    for name, backward in (("forward", False), ("forward+backward", True)):
        graph = torch.cuda.CUDAGraph()
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    with torch.autocast("cuda", torch.bfloat16, cache_enabled=False):
                        loss = nn.functional.cross_entropy(net(tokens).float(), labels)
                    if backward:
                        loss.backward()
            torch.cuda.current_stream().wait_stream(side)
            net.zero_grad(set_to_none=True)
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                with torch.autocast("cuda", torch.bfloat16, cache_enabled=False):
                    loss = nn.functional.cross_entropy(net(tokens).float(), labels)
                if backward:
                    loss.backward()
            print(f"    part {name}: captured")
        except Exception as exc:
            print(f"    part {name}: FAILED {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
            traceback.print_exc(limit=-6)
            _release_generator_from_capture(DEVICE)  # a failed capture leaves the generator capturing
            torch.cuda.synchronize()
            return


def case(name: str, impl: str, config: dict, n_layers: int, batch: int, seq_len: int, position: str = "auto"):
    torch.manual_seed(0)
    try:
        net = build(impl, config, n_layers, seq_len, position)
        tokens = torch.randint(0, 256, (batch, seq_len), device=DEVICE, dtype=torch.int16)
        labels = torch.randint(0, 2, (batch,), device=DEVICE)

        def loss_of(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return nn.functional.cross_entropy(net(t).float(), y)

        step = make_train_step(
            loss_of,
            net,
            lr=1e-3,
            weight_decay=0.05,
            decay="matrices",
            grad_clip=1.0,
            autocast_dtype=torch.bfloat16,
            device=DEVICE,
            step_mode="graph",
        )
        for _ in range(5):
            step(tokens, labels)
        ms = timed(step, tokens, labels, 20)
        state = "captured" if step.graph is not None else "EAGER"
        print(f"{name}: {state} {ms:.2f} ms/step {step.note}", flush=True)
        if step.graph is None:
            parts(build(impl, config, n_layers, seq_len, position), tokens, labels)
    except Exception as exc:
        print(f"{name}: ERROR {type(exc).__name__}: {str(exc).splitlines()[0][:300]}", flush=True)
    torch.cuda.synchronize()


if __name__ == "__main__":
    print(torch.cuda.get_device_name(), torch.__version__, flush=True)
    s4 = {"d_model": 256, "d_state": 64}
    case("lra s4 6x256 B16 L4096", "s4/cufft", s4, 6, 16, 4096)
    case("lra s4 1x256 B16 L4096", "s4/cufft", s4, 1, 16, 4096)
    case("lra s4 1x256 B16 L1024", "s4/cufft", s4, 1, 16, 1024)
    case("s4 1x64 B64 L4096", "s4/cufft", {"d_model": 64, "d_state": 64}, 1, 64, 4096)
    case(
        "attention sinusoidal 2x64 B64 L256",
        "attention/sdpa_flash",
        {"d_model": 64, "n_heads": 1},
        2,
        64,
        256,
        "sinusoidal",
    )
    case("lra attention 6x256 B16 L4096", "attention/sdpa_flash", {"d_model": 256, "n_heads": 4}, 6, 16, 4096)
