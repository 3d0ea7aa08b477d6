"""Availability probes of the Mamba adapters: one-line reasons, importing neither mamba_ssm nor its extensions."""

from __future__ import annotations

import torch

from implementations.mamba_ssm_import import selective_scan_probe


def selective_scan_cuda(device: str, dtype: torch.dtype | None) -> str | None:
    return selective_scan_probe()
