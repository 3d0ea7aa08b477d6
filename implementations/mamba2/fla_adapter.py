"""fla's `chunk_simple_gla` as a second fast SSD: our `Mamba2Block` with its core computed by fla through
the mapping of implementations/mamba2/simple_gla.py (q = C, k = B, v = dt·x, g = dt·A, scale = 1;
D skip outside). `core_call` includes the mapping (it is part of using fla for SSD); the GPU script
also times the bare kernel on prepared inputs. Decoding uses our PyTorch step.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from harness.config import MixerConfig
from implementations.mamba2.reference import Mamba2Block
from implementations.mamba2.simple_gla import ssd_via_simple_gla


class Mamba2FlaSimpleGla(Mamba2Block):
    def __init__(self, config: MixerConfig) -> None:
        super().__init__(config)
        from fla.ops.simple_gla import chunk_simple_gla

        self._core = partial(ssd_via_simple_gla, simple_gla=chunk_simple_gla)

    def ssd_function(self) -> Callable[..., Any]:
        return self._core

    def extra_repr(self) -> str:
        return "core=fla chunk_simple_gla (q=C, k=B, v=dt·x, g=dt·A, scale=1; D skip outside)"


def build(config: MixerConfig) -> Mamba2FlaSimpleGla:
    return Mamba2FlaSimpleGla(config)
