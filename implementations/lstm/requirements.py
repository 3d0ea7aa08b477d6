"""Availability probe for torch.nn.LSTM's cuDNN path: one-line reasons, nothing imported but torch."""

from __future__ import annotations

import torch


def cudnn(device: str, dtype: torch.dtype | None) -> str | None:
    if not torch.backends.cudnn.is_available():
        return "cuDNN is not available to this torch build (nn.LSTM would run its slow per-step kernels)"
    return None
