"""Availability probes for torch's attention backends: one-line reasons, nothing imported but torch."""

from __future__ import annotations

import torch


def _compute_capability() -> tuple[int, int]:
    return torch.cuda.get_device_capability()


def flash(device: str, dtype: torch.dtype | None) -> str | None:
    if not torch.backends.cuda.is_flash_attention_available():
        return "this torch build has no FlashAttention kernels"
    if _compute_capability() < (8, 0):
        return f"FlashAttention-2 needs sm80 or newer, this GPU is sm{''.join(map(str, _compute_capability()))}"
    return None


def cudnn(device: str, dtype: torch.dtype | None) -> str | None:
    if not torch.backends.cudnn.is_available():
        return "cuDNN is not available to this torch build"
    version = torch.backends.cudnn.version() or 0
    if version < 90000:
        return f"cuDNN attention needs cuDNN 9 or newer, found {version}"
    if _compute_capability() < (8, 0):
        return "cuDNN attention needs sm80 or newer"
    return None


def efficient(device: str, dtype: torch.dtype | None) -> str | None:
    if not torch.backends.cuda.mem_efficient_sdp_enabled():
        return "memory-efficient SDPA is disabled in this torch"
    return None


def flex(device: str, dtype: torch.dtype | None) -> str | None:
    try:
        import torch.nn.attention.flex_attention
    except ImportError:
        return f"torch {torch.__version__} has no FlexAttention (needs torch >= 2.5)"
    return None
