"""Availability probes for the fla adapters: one-line reasons, found without importing fla or triton."""

from __future__ import annotations

import importlib.util
import os

import torch

from implementations.fla_import import fla_version


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


def fla_ops(device: str, dtype: torch.dtype | None) -> str | None:
    """fla's RWKV-7 ops are Triton kernels (fla-core, installed by flash-linear-attention)."""
    if _missing("triton"):
        return "needs triton (fla's RWKV-7 kernels are Triton kernels); pip install triton"
    return None


def fla_layer(device: str, dtype: torch.dtype | None) -> str | None:
    """fla's layers live in flash-linear-attention (fla-core has only the ops) and import transformers."""
    reason = fla_ops(device, dtype)
    if reason:
        return reason
    spec = importlib.util.find_spec("fla")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not any(os.path.exists(os.path.join(path, "layers", "rwkv7.py")) for path in locations):
        version = fla_version() or "unknown"
        return f"fla {version} has no fla.layers.rwkv7: install flash-linear-attention, not only fla-core"
    if _missing("transformers"):
        return "fla's layers need transformers (pip install flash-linear-attention pulls it in)"
    return None
