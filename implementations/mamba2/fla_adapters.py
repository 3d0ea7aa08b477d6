"""fla's `chunk_simple_gla` as a second fast SSD: our `Mamba2Block` with its core computed by fla through
the mapping of implementations/mamba2/simple_gla.py (q = C, k = B, v = dt·x, g = dt·A, scale = 1;
D skip outside). `core_call` includes the mapping (it is part of using fla for SSD); the GPU script
also times the bare kernel on prepared inputs. Decoding uses our PyTorch step.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from harness.config import MixerConfig
from harness.worker import Unavailable
from implementations.fla_import import import_fla
from implementations.mamba2.reference import Mamba2Block
from implementations.mamba2.simple_gla import ssd_via_simple_gla

# Where fla decides whether its gated backward kernel may run (fla 0.6: refused on Hopper with Triton
# >= 3.4, < 3.7.1 unless tilelang provides the kernel instead; its issue #640).
FLA_BACKWARD_MODULE = "fla.ops.common.chunk_o"


def fla_backward_refusal() -> str | None:
    """Why fla will refuse the backward pass of chunk_simple_gla here, or None. Asked before the forward
    so that a training step is `unavailable` at once instead of failing in backward (after the forward's
    work, and with a worker restart for the next job)."""
    try:
        flags = import_fla(FLA_BACKWARD_MODULE)
    except ImportError:
        return None
    hopper = getattr(flags, "IS_NVIDIA_HOPPER", False)
    bad_triton = getattr(flags, "TRITON_ABOVE_3_4_0", False) and not getattr(flags, "TRITON_ABOVE_3_7_1", True)
    if hopper and bad_triton and importlib.util.find_spec("tilelang") is None:
        return (
            "fla refuses chunk_simple_gla's backward on Hopper with Triton >= 3.4, < 3.7.1 (fla issue #640): "
            "upgrade Triton to >= 3.7.1 or install tilelang"
        )
    return None


class Mamba2FlaSimpleGla(Mamba2Block):
    def __init__(self, config: MixerConfig) -> None:
        super().__init__(config)
        chunk_simple_gla = import_fla("fla.ops.simple_gla").chunk_simple_gla

        self._core = partial(ssd_via_simple_gla, simple_gla=chunk_simple_gla)
        self._backward_refusal = fla_backward_refusal()

    def ssd_function(self) -> Callable[..., Any]:
        return self._guarded_core

    def _guarded_core(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if self._backward_refusal and torch.is_grad_enabled() and self._needs_grad(x, *args, *kwargs.values()):
            raise Unavailable(self._backward_refusal)
        return self._core(x, *args, **kwargs)

    def _needs_grad(self, *values: Any) -> bool:
        tensors = [v for v in values if isinstance(v, torch.Tensor)]
        return any(t.requires_grad for t in tensors) or any(p.requires_grad for p in self.parameters())

    def extra_repr(self) -> str:
        return "core=fla chunk_simple_gla (q=C, k=B, v=dt·x, g=dt·A, scale=1; D skip outside)"


def build(config: MixerConfig) -> Mamba2FlaSimpleGla:
    return Mamba2FlaSimpleGla(config)
