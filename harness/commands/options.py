"""Options and parsers shared by several subcommands."""

from __future__ import annotations

import torch

from harness.errors import UserError


def resolve_device(device: str) -> str:
    """'auto' -> cuda when a GPU is visible, else cpu; anything else must be cpu or cuda[:i]."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError as exc:
        raise UserError(f"unknown device {device!r}; use auto, cpu or cuda") from exc
    if kind not in ("cpu", "cuda"):
        raise UserError(f"unsupported device {device!r}; use auto, cpu or cuda")
    return device
