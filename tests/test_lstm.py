"""The LSTM family: the reference's four gates against torch.nn.LSTM (an independent implementation, run
here on the CPU through the same adapter that runs cuDNN on a GPU), in float64, forward, state and
gradients; a closed form for one step; cost models that grow with L while the state does not."""

from __future__ import annotations

import math

import pytest
import torch

from harness import registry
from harness.config import MixerConfig
from harness.interface import run_recurrent
from implementations.lstm.reference import LSTMReference
from implementations.lstm.torch_adapters import TorchLSTM

CONFIG = MixerConfig(d_model=12, n_heads=2)


def _pair() -> tuple[LSTMReference, TorchLSTM]:
    torch.manual_seed(0)
    reference = LSTMReference(CONFIG).double()
    library = TorchLSTM(CONFIG).double()
    library.load_reference_weights(reference)
    return reference, library


def test_reference_equals_torch_lstm_forward_state_and_gradients() -> None:
    reference, library = _pair()
    x = torch.randn(3, 17, CONFIG.d_model, dtype=torch.float64, requires_grad=True)
    y_ref, state_ref = reference.prefill(x)
    y_lib, state_lib = library.prefill(x)
    # float64 both sides: the same sums in a different order differ by rounding only
    assert torch.allclose(y_ref, y_lib, rtol=0, atol=1e-12)
    assert torch.allclose(state_ref.c, state_lib.c, rtol=0, atol=1e-12)
    cotangent = torch.randn_like(y_ref)
    grads_ref = torch.autograd.grad(y_ref, [x, *reference.parameters()], cotangent)
    grads_lib = torch.autograd.grad(y_lib, [x, *library.lstm.parameters()], cotangent)
    for got, want in zip(grads_lib, grads_ref, strict=True):
        assert torch.allclose(got, want, rtol=0, atol=1e-11)


def test_recurrent_and_prefill_forms_agree_with_the_parallel_one() -> None:
    reference, library = _pair()
    x = torch.randn(2, 9, CONFIG.d_model, dtype=torch.float64)
    with torch.no_grad():
        for mixer in (reference, library):
            y = mixer(x)
            assert torch.allclose(run_recurrent(mixer, x), y, rtol=0, atol=1e-12)
            y_head, state = mixer.prefill(x[:, :4])
            assert torch.allclose(y_head, y[:, :4], rtol=0, atol=1e-12)
            outputs = []
            for t in range(4, 9):
                y_t, state = mixer.step(x[:, t], state)
                outputs.append(y_t)
            assert torch.allclose(torch.stack(outputs, dim=1), y[:, 4:], rtol=0, atol=1e-12)


def test_one_step_closed_form() -> None:
    """With every weight zero and only biases, one step from a zero state gives c = s(b_i) tanh(b_g) and
    h = s(b_o) tanh(c): the gates as the paper writes them (s: the logistic sigmoid)."""
    reference = LSTMReference(MixerConfig(d_model=1, n_heads=1)).double()
    with torch.no_grad():
        reference.weight_ih_l0.zero_()
        reference.weight_hh_l0.zero_()
        reference.bias_hh_l0.zero_()
        reference.bias_ih_l0.copy_(torch.tensor([0.3, -1.0, 0.7, 2.0], dtype=torch.float64))  # i, f, g, o
    y, state = reference.step(torch.zeros(1, 1, dtype=torch.float64), reference.init_state(1, "cpu", torch.float64))

    def sigmoid(v: float) -> float:
        return 1 / (1 + math.exp(-v))

    c = sigmoid(0.3) * math.tanh(0.7)
    assert math.isclose(float(state.c), c, rel_tol=1e-15) and math.isclose(float(y), sigmoid(2.0) * math.tanh(c))


@pytest.mark.parametrize("name", ["lstm/reference", "lstm/cudnn"])
def test_cost_models(name: str) -> None:
    impl = registry.get(name)
    config = MixerConfig(d_model=64)
    assert impl.flops(config, 2, 2048, "fwd") == 2 * impl.flops(config, 2, 1024, "fwd")
    assert impl.flops(config, 2, 1024, "fwd_bwd") == 3 * impl.flops(config, 2, 1024, "fwd")
    # 2·4H·2H + 10H per token at H = D = 64
    assert impl.flops(config, 1, 1, "decode") == 2 * 4 * 64 * 128 + 10 * 64
    state = [impl.state_bytes(config, 1, length, torch.float32) for length in (16, 65536)]
    assert state[0] == state[1] == 2 * 64 * 4  # h and c in fp32, whatever the context
    assert impl.min_bytes(config, 1, 1024, "fwd", torch.float32) > 0


@pytest.mark.gpu
def test_cudnn_against_the_reference_on_gpu() -> None:
    from harness.check import run_checks

    impls = [registry.get("lstm/cudnn")]
    if not impls[0].availability("cuda", torch.float16):
        pytest.skip(impls[0].availability("cuda", torch.float16).reason)
    rows, _ = run_checks(impls, "cuda", (torch.float16, torch.float32))
    assert all(r.passed for r in rows), [r for r in rows if not r.passed]
