"""Planted implementations for tests of `seqbench check` (registered via SEQBENCH_EXTRA_SPECS).

- `planted/abort` calls os.abort() while building: the worker dies with SIGABRT.
- `planted/wrong` computes a different function than its reference: the check must fail it.
- `planted/wrong_grad` computes the right function with a wrong backward (the output projection's
  gradient scaled by 0.9): the forward tests must pass and both gradient tests fail.
- `planted/coarse_grad` has that backward in bf16 only (a stand-in for a kernel whose bf16 gradient
  rounds worse than the reference's) and the exact one in float32: the float32 comparison must pass.
"""

from __future__ import annotations

import os

import torch

from harness.config import MixerConfig
from harness.interface import Implementation
from implementations.attention.reference import AttentionReference


class WrongAttention(AttentionReference):
    def _output(self, y: torch.Tensor) -> torch.Tensor:
        return super()._output(y) * 1.01  # 1% off in every form: far above any tolerance


class ScaledGradient(torch.autograd.Function):
    """Identity forward; backward scales the gradient (a planted backward bug)."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        return grad * 0.9


class CoarseGradient(torch.autograd.Function):
    """Identity forward; backward off by 10% in bf16 only, exact in any other dtype."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        return grad * 0.9 if grad.dtype == torch.bfloat16 else grad


class CoarseGradientAttention(AttentionReference):
    def _output(self, y: torch.Tensor) -> torch.Tensor:
        return super()._output(CoarseGradient.apply(y))


def build_coarse_grad(config: MixerConfig) -> CoarseGradientAttention:
    return CoarseGradientAttention(config)


class WrongGradientAttention(AttentionReference):
    def _output(self, y: torch.Tensor) -> torch.Tensor:
        return super()._output(ScaledGradient.apply(y))


def build_wrong_grad(config: MixerConfig) -> WrongGradientAttention:
    return WrongGradientAttention(config)


def build_abort(config: MixerConfig) -> AttentionReference:
    os.abort()


def build_wrong(config: MixerConfig) -> WrongAttention:
    return WrongAttention(config)


IMPLEMENTATIONS = [
    Implementation(
        family="planted",
        name="planted/reference",
        backend="reference",
        build="implementations.attention.reference:build_reference",
    ),
    Implementation(
        family="planted",
        name="planted/abort",
        backend="test",
        reference="planted/reference",
        build="tests.planted_check_specs:build_abort",
    ),
    Implementation(
        family="planted",
        name="planted/wrong",
        backend="test",
        reference="planted/reference",
        build="tests.planted_check_specs:build_wrong",
    ),
    Implementation(
        family="planted",
        name="planted/wrong_grad",
        backend="test",
        reference="planted/reference",
        build="tests.planted_check_specs:build_wrong_grad",
    ),
    Implementation(
        family="planted",
        name="planted/coarse_grad",
        backend="test",
        reference="planted/reference",
        build="tests.planted_check_specs:build_coarse_grad",
    ),
]
