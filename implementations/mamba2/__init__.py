"""Mamba-2 (SSD): the state-space dual layer in PyTorch (recurrent, quadratic and chunked forms), the
Mamba-2 block, and the mamba_ssm Triton SSD / fla simple-GLA kernels behind it."""

from implementations.mamba2.reference import Mamba2Block, Mamba2Reference, Mamba2State
from implementations.mamba2.simple_gla import simple_gla_recurrent, ssd_via_simple_gla
from implementations.mamba2.ssd import segment_sum, ssd, ssd_chunked, ssd_quadratic, ssd_recurrent, ssd_step

__all__ = [
    "Mamba2Block",
    "Mamba2Reference",
    "Mamba2State",
    "segment_sum",
    "simple_gla_recurrent",
    "ssd",
    "ssd_chunked",
    "ssd_quadratic",
    "ssd_recurrent",
    "ssd_step",
    "ssd_via_simple_gla",
]
