"""The mamba_ssm layer adapters' plumbing on the CPU, where mamba_ssm's Python code is installed: weight
mapping from our blocks, prefill through mamba_ssm's inference-cache path, and step, all in float64
against our references. The CUDA/Triton kernels cannot run here, so they are replaced by our own
PyTorch functions with the same contracts (a fake `selective_scan_cuda.fwd`, our `ssd` for
`mamba_chunk_scan_combined`, mamba_ssm's own `rms_norm_ref` for its Triton gated norm); the kernels
themselves are checked on a GPU by `seqbench check` (scripts/gpu/verify_mamba.py).

Skipped where mamba_ssm or triton is not installed (it needs both to import).
"""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest
import torch
import torch.nn.functional as F

from harness.config import MixerConfig
from harness.interface import run_recurrent
from harness.numerics import rms_ratio
from implementations.mamba.scan import selective_scan
from implementations.mamba2.ssd import ssd

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mamba_ssm") is None or importlib.util.find_spec("triton") is None,
    reason="needs mamba_ssm's Python code and triton installed",
)

F64 = torch.float64
CONFIG = MixerConfig(d_model=32, n_heads=2, d_state=8, chunk_size=8)


def fake_selective_scan_fwd(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """selective_scan_cuda.fwd's contract: (out, x, [out_z]) with the last state at x[:, :, -1, 1::2]."""
    out, last = selective_scan(u, delta, A, B, C, D, None, delta_bias, delta_softplus, return_last_state=True)
    x = torch.zeros(*last.shape[:2], 1, 2 * last.shape[-1], dtype=last.dtype)
    x[:, :, -1, 1::2] = last
    return (out, x, *([out * F.silu(z)] if z is not None else []))


@pytest.fixture
def cpu_mamba_ssm(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("selective_scan_cuda")
    fake.fwd = fake_selective_scan_fwd  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "selective_scan_cuda", fake)  # what import_mamba_ssm loads
    from implementations.mamba_ssm_import import import_mamba_ssm

    import_mamba_ssm(require_selective_scan=True)
    import mamba_ssm.modules.mamba2 as mamba2_module
    import mamba_ssm.modules.mamba_simple as mamba_module
    import mamba_ssm.ops.selective_scan_interface as interface
    import mamba_ssm.ops.triton.layernorm_gated as layernorm_gated

    monkeypatch.setattr(interface, "selective_scan_cuda", fake)
    monkeypatch.setattr(mamba_module, "selective_state_update", None)  # its torch decode path
    monkeypatch.setattr(mamba2_module, "selective_state_update", None)

    def chunk_scan(*args, seq_idx=None, cu_seqlens=None, return_varlen_states=False, **kwargs):
        return ssd(*args, **kwargs)

    def gated_rms_norm(x, weight, bias, z=None, eps=1e-6, group_size=None, norm_before_gate=True, **_):
        return layernorm_gated.rms_norm_ref(x, weight, bias, z, eps, group_size, norm_before_gate)

    monkeypatch.setattr(mamba2_module, "mamba_chunk_scan_combined", chunk_scan)
    monkeypatch.setattr(layernorm_gated, "rmsnorm_fn", gated_rms_norm)


def compare_three_forms(reference: torch.nn.Module, mixer: torch.nn.Module) -> dict[str, float]:
    x = torch.randn(2, 20, CONFIG.d_model, dtype=F64)
    with torch.no_grad():
        expected = reference(x)
        y_prompt, state = mixer.prefill(x[:, :10])
        rest = []
        for t in range(10, 20):
            y_t, state = mixer.step(x[:, t], state)
            rest.append(y_t)
        return {
            "parallel": rms_ratio(mixer(x), expected),
            "recurrent": rms_ratio(run_recurrent(mixer, x), expected),
            "prefill": rms_ratio(torch.cat([y_prompt, torch.stack(rest, 1)], 1), expected),
        }


def test_mamba_layer_loads_our_weights_and_computes_our_function(cpu_mamba_ssm: None) -> None:
    from implementations.mamba.mamba_ssm_adapters import MambaSsmLayer, MambaSsmScan
    from implementations.mamba.reference import MambaReference

    torch.manual_seed(0)
    reference = MambaReference(CONFIG).double()
    for cls in (MambaSsmLayer, MambaSsmScan):
        mixer = cls(CONFIG).double()
        mixer.load_reference_weights(reference)
        errors = compare_three_forms(reference, mixer)
        # mamba_ssm.Mamba computes A, D and the dt bias in float32 (A_log.float()): 1e-9, not 1e-15.
        assert max(errors.values()) < 1e-9, errors
        assert "conv" in repr(mixer)  # says which convolution (causal_conv1d or torch conv1d) it runs


@pytest.mark.parametrize("config", [CONFIG, MixerConfig(d_model=32, n_heads=4, n_groups=2, d_state=8, chunk_size=8)])
def test_mamba2_layer_loads_our_weights_and_computes_our_function(cpu_mamba_ssm: None, config: MixerConfig) -> None:
    from implementations.mamba2.mamba_ssm_adapters import Mamba2SsmLayer
    from implementations.mamba2.reference import Mamba2Reference

    torch.manual_seed(0)
    reference = Mamba2Reference(config).double()
    mixer = Mamba2SsmLayer(config).double()
    mixer.load_reference_weights(reference)
    if config.n_groups > 1:  # mamba_ssm's torch decode path supports one group only: check the forward
        x = torch.randn(2, 20, config.d_model, dtype=F64)
        with torch.no_grad():
            assert rms_ratio(mixer(x), reference(x)) < 1e-6
        return
    errors = compare_three_forms(reference, mixer)
    # mamba_ssm's reference gated norm upcasts to float32: agreement to float32 rounding.
    assert max(errors.values()) < 1e-6, errors
