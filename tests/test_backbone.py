"""The models' shared trunk (suites/backbone.py): the sinusoidal position code and its scale."""

from __future__ import annotations

import math

import pytest
import torch

from harness import registry
from harness.config import MixerConfig
from harness.errors import ConfigError
from suites.backbone import ModelSettings, sinusoidal_positions
from suites.recall.model import RecallModel


def test_sinusoidal_code_closed_form() -> None:
    """Position t, frequency i of d/2: sin(t * 10000^(-i/(d/2))) in the first half, cos in the second."""
    table = sinusoidal_positions(5, 8)
    t, i = 3, 1
    frequency = 10000.0 ** (-i / 4)
    assert float(table[t, i]) == pytest.approx(math.sin(t * frequency), abs=1e-6)
    assert float(table[t, 4 + i]) == pytest.approx(math.cos(t * frequency), abs=1e-6)


def test_position_scale_multiplies_the_code_only() -> None:
    """The input to the first block is embedding + position_scale * code: scale 0.02 gives exactly 0.02 of
    the unit code (no dropout)."""
    impl = registry.get("attention/reference")
    config = MixerConfig.from_dict({"d_model": 16, "n_heads": 2})
    stages = {}
    for scale in (1.0, 0.02):
        torch.manual_seed(0)
        settings = ModelSettings(n_layers=1, position="sinusoidal", position_scale=scale)
        model = RecallModel(10, 16, lambda: impl.create(config), settings, max_seq_len=6)
        captured: list[torch.Tensor] = []
        model.blocks[0].register_forward_pre_hook(lambda _m, args, seen=captured: seen.append(args[0]))
        tokens = torch.tensor([[1, 2, 3, 4, 5, 6]])
        model(tokens)
        stages[scale] = captured[0] - model.embedding(tokens)
    code = sinusoidal_positions(6, 16)[None]
    torch.testing.assert_close(stages[1.0], code)
    torch.testing.assert_close(stages[0.02], 0.02 * code)
    with pytest.raises(ConfigError, match="position_scale"):
        ModelSettings(position_scale=0.0)


def test_sinusoidal_code_is_built_on_the_asked_device() -> None:
    """Built where it is used (here the meta device stands in for a GPU): a host-to-device copy inside a
    CUDA graph capture is refused, which sent MHA-Abs's step to eager on the H200 (2026-12-02)."""
    code = sinusoidal_positions(7, 8, device="meta")
    assert code.device.type == "meta" and code.shape == (7, 8)
    assert torch.equal(sinusoidal_positions(7, 8, device="cpu"), sinusoidal_positions(7, 8))
