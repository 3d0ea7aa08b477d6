"""Test a saved recall model again (a checkpoint, suites/recall/checkpoint.py): at other lengths, in
another dtype (float64 on the CPU: is a fall-off numerical?), through another implementation of its
family (mamba/mamba_ssm's weights in mamba/reference), and, for selective SSM layers, how long they
remember: each layer's decay horizons.

Test sets are those training used where the length is one it tested (the same seeds, so an unchanged
retest reproduces the row), new ones from the same data seed otherwise.

Decay horizons. A selective SSM state (d, n) is multiplied by exp(dt_t[d] * A[d, n]) at every token t,
so what was written at position s is left with exp(A[d, n] * sum_{s<t<=q} dt_t[d]) of its size at position
q: over a span of S tokens, exp(-S / H[d, n]) with H[d, n] = 1 / (mean_t dt_t[d] * |A[d, n]|), the state's
horizon in tokens. A layer's longest horizon, max H, bounds how far back it can carry a token: well past
it, the value written is e^(-S/H) of its size and the read-out must find it among the rest.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from harness import registry
from harness.errors import UserError
from harness.interface import parse_dtype
from suites.recall.checkpoint import Checkpoint, match_state_dict
from suites.recall.data import Examples, default_cache_dir, induction_heads_at_distance
from suites.recall.model import RecallModel
from suites.recall.tasks import get_task
from suites.recall.train import Evaluator, build_model, split_seed
from suites.training import resolve_device

EVAL_TOKENS_PER_BATCH = 65536  # an evaluation batch's tokens (memory bound, not speed)
NEW_LENGTH_SEED_BASE = 1_000_000  # seed index base for a length training did not test (its own are 0, 1, ...)
DISTANCE_SEED_BASE = 2_000_000  # seed index base of the examples at a fixed trigger distance (one per distance)


def rebuild(checkpoint: Checkpoint, implementation: str | None = None) -> RecallModel:
    """The saved model on the CPU in float32, through `implementation` (default: the one it trained with;
    another must be of the same family, and is given the saved weights by name, match_state_dict)."""
    job = checkpoint.job
    saved_impl = job["implementation"]
    implementation = implementation or saved_impl
    if implementation != saved_impl:
        if job.get("layer_pattern"):
            raise UserError("a hybrid's checkpoint is retested through the implementations it trained with")
        saved_family, family = registry.get(saved_impl).family, registry.get(implementation).family
        if family != saved_family:
            raise UserError(f"{implementation} is not of {saved_impl}'s family ({saved_family})")
    spec = get_task(job["task"])
    params = spec.params(**job["task_params"])
    net, _, _ = build_model(
        spec,
        params,
        implementation,
        job["config"],
        job["n_layers"],
        job["model"],
        job.get("layer_pattern"),
        job.get("layer_configs"),
        checkpoint.max_seq_len,
    )
    state = checkpoint.state_dict
    if implementation != saved_impl:
        state = match_state_dict(state, net.state_dict())
    net.load_state_dict(state)
    return net


def test_sets(checkpoint: Checkpoint, seq_lens: list[int]) -> Iterator[tuple[int, Examples]]:
    """(seq_len, examples) per length, made as they are asked for: training's own test sets where it tested
    that length."""
    job = checkpoint.job
    spec = get_task(job["task"])
    train_params = spec.params(**job["task_params"])
    extrapolate = list(job.get("extrapolate") or [])
    longer = [spec.params(**{**job["task_params"], **overrides}) for overrides in extrapolate]
    data_seed, n_test, cache = int(job["data_seed"]), int(job["n_test"]), default_cache_dir()
    tokens = int(job.get("extrapolate_tokens") or 0)
    for seq_len in seq_lens:
        if seq_len < 1:
            raise UserError(f"--seq-len must be a positive integer, got {seq_len}")
        if seq_len == train_params["seq_len"]:
            examples = spec.examples("test", train_params, n_test, split_seed(data_seed, "test"), cache)
        else:
            known = [i for i, p in enumerate(longer) if p["seq_len"] == seq_len]
            index = known[0] if known else NEW_LENGTH_SEED_BASE + seq_len  # one seed per length, in any call
            params = longer[known[0]] if known else spec.params(**{**job["task_params"], "seq_len": seq_len})
            n = min(n_test, max(16, tokens // seq_len)) if tokens else n_test
            examples = spec.examples("test", params, n, split_seed(data_seed, "extrapolate", index), cache)
        yield seq_len, examples


def retest(
    checkpoint: Checkpoint,
    seq_lens: list[int],
    implementation: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    horizon_examples: int = 0,
    distances: list[int] | tuple[int, ...] = (),
    distance_examples: int = 0,
) -> Iterator[dict[str, Any]]:
    """Per length, as each is done: its accuracy row (seq_len, accuracy, loss, n_test); with horizon_examples,
    then each selective SSM layer's decay horizons (decay_horizons, in float64) over that many of the
    length's test examples, as rows of kind "horizon"; with distances (induction heads only), the accuracy
    with the answer exactly that far back (rows of kind "distance", distance_examples examples each, default
    as many as the length's test set; distances past the length are left out). The model is built once for
    all lengths."""
    job = checkpoint.job
    if distances and job["task"] != "induction-heads":
        raise UserError(f"--distance is induction heads' (where the answer is); this model trained on {job['task']}")
    built = rebuild(checkpoint, implementation)
    # the resolved setting: "auto" is learned positions for attention alone (suites.backbone.resolve_position)
    if built.settings.position == "learned" and checkpoint.max_seq_len < max(seq_lens):
        raise UserError(f"learned positions stop at {checkpoint.max_seq_len} tokens; test at most that")
    run_device = resolve_device(device)
    compute_dtype = parse_dtype(dtype)
    autocast_dtype = compute_dtype if compute_dtype in (torch.bfloat16, torch.float16) else None
    weights_dtype = compute_dtype if autocast_dtype is None else torch.float32
    evaluate = Evaluator(built.to(device=run_device, dtype=weights_dtype), autocast_dtype, run_device)
    exact = rebuild(checkpoint, implementation).to(device=run_device, dtype=torch.float64) if horizon_examples else None
    for seq_len, examples in test_sets(checkpoint, seq_lens):
        accuracy, loss = evaluate(examples, max(1, EVAL_TOKENS_PER_BATCH // seq_len))
        yield {"seq_len": seq_len, "accuracy": accuracy, "loss": loss, "n_test": len(examples)}
        if exact is not None:
            tokens = examples.inputs[:horizon_examples].to(device=run_device, dtype=torch.long)
            yield from ({"kind": "horizon", **layer} for layer in decay_horizons(exact, tokens))
        for distance in (d for d in distances if d <= seq_len - 1):
            params = {**job["task_params"], "seq_len": seq_len}
            seed = split_seed(int(job["data_seed"]), "extrapolate", DISTANCE_SEED_BASE + distance)
            at = induction_heads_at_distance(distance_examples or len(examples), seed, **params, distance=distance)
            accuracy, loss = evaluate(at, max(1, EVAL_TOKENS_PER_BATCH // seq_len))
            yield {"kind": "distance", "seq_len": seq_len, "distance": distance, "accuracy": accuracy,
                   "loss": loss, "n_test": len(at)}  # fmt: skip


@torch.no_grad()
def decay_horizons(net: RecallModel, tokens: torch.Tensor) -> list[dict[str, Any]]:
    """Per selective SSM layer (a mixer with the Mamba reference's `_scan_inputs`), over `tokens` (B, L):
    the longest decay horizon max H and the median over channels of each channel's longest, in tokens,
    and how much of a value the longest keeps over the whole length, exp(-L / max H)."""
    inputs: dict[int, torch.Tensor] = {}
    hooks = [
        block.mixer.register_forward_pre_hook(lambda _m, args, i=i: inputs.__setitem__(i, args[0]))
        for i, block in enumerate(net.blocks)
        if hasattr(block.mixer, "_scan_inputs")
    ]
    try:
        net.eval()
        net(tokens)
    finally:
        for hook in hooks:
            hook.remove()
    if not inputs:
        raise UserError("no selective SSM layer (a Mamba reference) in this model: build it as mamba/reference")
    seq_len = tokens.shape[1]
    out = []
    for layer, x in sorted(inputs.items()):
        (_, delta, A, _, _), kwargs, _ = net.blocks[layer].mixer._scan_inputs(x)
        dt = F.softplus(delta.double() + kwargs["delta_bias"].double()[:, None])  # (B, d_inner, L)
        rate = dt.mean(dim=(0, 2))[:, None] * A.double().abs()  # (d_inner, d_state): decay per token
        horizon = 1.0 / rate
        longest_per_channel = horizon.max(dim=1).values
        longest = float(horizon.max())
        out.append(
            {
                "layer": layer,
                "max_horizon_tokens": longest,
                "median_channel_horizon_tokens": float(longest_per_channel.median()),
                "kept_over_length": math.exp(-seq_len / longest),
                "seq_len": seq_len,
            }
        )
    return out
