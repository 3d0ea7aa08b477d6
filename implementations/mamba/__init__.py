"""Mamba (selective SSM, S6): the selective scan in PyTorch, the Mamba block, and mamba_ssm's kernels."""

from implementations.mamba.reference import MambaBlock, MambaReference, MambaState
from implementations.mamba.scan import (
    linear_recurrence_scan,
    selective_scan,
    selective_scan_parallel,
    selective_scan_sequential,
    selective_scan_step,
)

__all__ = [
    "MambaBlock",
    "MambaReference",
    "MambaState",
    "linear_recurrence_scan",
    "selective_scan",
    "selective_scan_parallel",
    "selective_scan_sequential",
    "selective_scan_step",
]
