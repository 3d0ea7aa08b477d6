"""The interface contract, for every implementation registered and runnable on this machine's CPU:
shapes, dtype preserved, causality, and step / prefill shapes. New families are covered as they land."""

from __future__ import annotations

import pytest
import torch

from harness import registry
from harness.check import default_dtype
from harness.config import MixerConfig

CONFIG = MixerConfig(d_model=32, n_heads=2, d_state=8, chunk_size=8)
BATCH, SEQ_LEN = 2, 16
CPU_IMPLEMENTATIONS = [i for i in registry.implementations() if i.availability("cpu")]
# Rounding-level differences are allowed where future inputs enter a shared computation (FFT convolution,
# chunked sums): float64 to 1e-12 relative, float32 to 1e-5.
CAUSALITY_TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5}


def _build(name: str) -> tuple[torch.nn.Module, torch.dtype]:
    impl = registry.get(name)
    dtype = default_dtype(impl, "cpu")
    assert dtype is not None
    torch.manual_seed(0)
    return impl.create(CONFIG).to(dtype=dtype).eval(), dtype


@pytest.mark.parametrize("name", [i.name for i in CPU_IMPLEMENTATIONS])
def test_shapes_dtype_and_causality(name: str) -> None:
    mixer, dtype = _build(name)
    x = torch.randn(BATCH, SEQ_LEN, CONFIG.d_model, dtype=dtype)
    with torch.no_grad():
        y = mixer(x)
        assert y.shape == x.shape and y.dtype == dtype
        assert torch.isfinite(y).all()
        cut = SEQ_LEN // 2 + 1  # not on a chunk boundary
        x_changed = x.clone()
        x_changed[:, cut:] = torch.randn_like(x_changed[:, cut:]) * 3
        y_changed = mixer(x_changed)
    scale = y[:, :cut].abs().max().item()
    drift = (y_changed[:, :cut] - y[:, :cut]).abs().max().item()
    assert drift <= CAUSALITY_TOLERANCE[dtype] * max(scale, 1.0), f"future inputs changed the past by {drift:g}"
    assert not torch.allclose(y_changed[:, cut:], y[:, cut:]), "the output ignores its inputs"


@pytest.mark.parametrize("name", [i.name for i in CPU_IMPLEMENTATIONS])
def test_step_and_prefill_shapes(name: str) -> None:
    mixer, dtype = _build(name)
    x = torch.randn(BATCH, SEQ_LEN, CONFIG.d_model, dtype=dtype)
    with torch.no_grad():
        state = mixer.init_state(BATCH, "cpu", dtype)
        y_t, state = mixer.step(x[:, 0], state)
        assert y_t.shape == (BATCH, CONFIG.d_model) and y_t.dtype == dtype
        y_prefix, state = mixer.prefill(x[:, :4])
        assert y_prefix.shape == (BATCH, 4, CONFIG.d_model)
        y_next, _ = mixer.step(x[:, 4], state)
        assert y_next.shape == (BATCH, CONFIG.d_model)


@pytest.mark.parametrize("name", [i.name for i in CPU_IMPLEMENTATIONS])
def test_analytic_models_are_positive(name: str) -> None:
    impl = registry.get(name)
    for mode in ("fwd", "fwd_bwd", "decode"):
        assert impl.flops(CONFIG, BATCH, SEQ_LEN, mode) > 0, mode
        assert impl.min_bytes(CONFIG, BATCH, SEQ_LEN, mode, torch.float32) > 0, mode
    assert impl.state_bytes(CONFIG, BATCH, SEQ_LEN, torch.float32) > 0


def _state_storage_bytes(state: object) -> int:
    """Bytes of every distinct storage the state's tensors hold alive."""
    storages: dict[int, int] = {}
    values = list(state.__dict__.values()) if hasattr(state, "__dict__") else list(state)  # type: ignore[arg-type]
    for value in values:
        if isinstance(value, torch.Tensor):
            storages[value.untyped_storage().data_ptr()] = value.untyped_storage().nbytes()
        elif hasattr(value, "__dict__") or isinstance(value, tuple | list):
            storages[id(value)] = _state_storage_bytes(value)
    return sum(storages.values())


@pytest.mark.parametrize("name", [i.name for i in CPU_IMPLEMENTATIONS])
def test_recurrent_state_after_prefill_does_not_grow_with_the_prompt(name: str) -> None:
    # A state that is constant in L analytically must not keep the prompt alive through views.
    impl = registry.get(name)
    if impl.state_bytes(CONFIG, BATCH, 16, torch.float32) != impl.state_bytes(CONFIG, BATCH, 256, torch.float32):
        pytest.skip("state grows with the context by design (KV cache)")
    mixer, dtype = _build(name)
    with torch.no_grad():
        short = _state_storage_bytes(mixer.prefill(torch.randn(BATCH, 16, CONFIG.d_model, dtype=dtype))[1])
        long = _state_storage_bytes(mixer.prefill(torch.randn(BATCH, 256, CONFIG.d_model, dtype=dtype))[1])
    assert long == short, f"state holds {long} bytes after 256 tokens, {short} after 16"
