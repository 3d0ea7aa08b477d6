"""Options and parsers shared by several subcommands."""

from __future__ import annotations

import sys
from typing import Any

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


def make_console(**kwargs: Any) -> Any:
    """A rich console; wide when writing to a file or pipe (logs, CI), where rich would assume 80 columns."""
    from rich.console import Console

    if not sys.stdout.isatty():
        kwargs.setdefault("width", 200)
    return Console(**kwargs)
