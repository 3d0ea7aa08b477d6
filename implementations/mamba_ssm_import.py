"""Importing mamba_ssm whether or not its compiled extension was built (shared by Mamba and Mamba-2).

mamba_ssm's package `__init__` imports the compiled `selective_scan_cuda` eagerly, so with an sdist
installed under MAMBA_SKIP_CUDA_BUILD=TRUE even its Triton-only parts (Mamba-2's SSD) fail to import.
`import_mamba_ssm` first makes the real module importable (installed with the package, or built by
`seqbench kernels build` into the user cache); where neither exists and the caller needs only Triton
kernels, a stub module stands in for it: mamba_ssm then imports, and only a call into the CUDA
selective scan fails (with the stub's message). causal_conv1d is used when importable (its compiled
module installed or cached); otherwise mamba_ssm falls back to torch's conv1d by itself.

Nothing here runs at registry listing time except the `*_probe` functions, which import nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass

from harness.kernel_build import (
    CAUSAL_CONV1D,
    SELECTIVE_SCAN,
    cached_library,
    extension_installed,
    is_stub,
    load_extension,
)

SELECTIVE_SCAN_MISSING = "selective_scan_cuda not built: run `seqbench kernels build`"
CAUSAL_CONV1D_NAME = "causal_conv1d"
TORCH_CONV1D_NAME = "torch conv1d"


def selective_scan_stub() -> types.ModuleType:
    """A stand-in for the missing `selective_scan_cuda`: importable, failing only when used."""
    stub = types.ModuleType(
        SELECTIVE_SCAN.module, "seqbench stub: mamba_ssm's CUDA selective scan was not built (seqbench kernels build)"
    )
    stub.__seqbench_stub__ = True  # type: ignore[attr-defined]

    def __getattr__(name: str) -> object:
        raise AttributeError(f"selective_scan_cuda.{name}: {SELECTIVE_SCAN_MISSING} (a seqbench stub stands in)")

    stub.__getattr__ = __getattr__  # type: ignore[method-assign]
    return stub


@dataclass(frozen=True)
class MambaSsmKernels:
    """Which compiled pieces mamba_ssm runs with in this process (recorded in module reprs)."""

    selective_scan: str  # "installed" | "cached build" | "stub"
    conv: str  # CAUSAL_CONV1D_NAME | TORCH_CONV1D_NAME

    def describe(self) -> str:
        return f"selective_scan_cuda: {self.selective_scan}; conv: {self.conv}"


def _selective_scan_source() -> str:
    return "installed" if extension_installed(SELECTIVE_SCAN.module) else "cached build"


def import_mamba_ssm(require_selective_scan: bool) -> MambaSsmKernels:
    """Import mamba_ssm with its compiled modules loaded (see the module docstring).

    require_selective_scan: raise (with how to fix it) when the CUDA selective scan is not built,
    instead of putting the stub in its place."""
    if importlib.util.find_spec(CAUSAL_CONV1D_NAME) is not None:
        load_extension(CAUSAL_CONV1D.module)
    selective_scan_cuda = load_extension(SELECTIVE_SCAN.module)
    if selective_scan_cuda is None:
        if require_selective_scan:
            raise RuntimeError(SELECTIVE_SCAN_MISSING)
        sys.modules.setdefault(SELECTIVE_SCAN.module, selective_scan_stub())
        source = "stub"
    else:
        source = _selective_scan_source()
    interface = importlib.import_module("mamba_ssm.ops.selective_scan_interface")
    if selective_scan_cuda is not None and is_stub(getattr(interface, "selective_scan_cuda", None)):
        # mamba_ssm was imported earlier in this process with the stub; the real module exists now.
        interface.selective_scan_cuda = selective_scan_cuda
    importlib.import_module("mamba_ssm")
    return MambaSsmKernels(source, CAUSAL_CONV1D_NAME if causal_conv1d_importable() else TORCH_CONV1D_NAME)


def causal_conv1d_importable() -> bool:
    try:
        importlib.import_module(CAUSAL_CONV1D_NAME)
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# probes for availability() and descriptions: no imports of mamba_ssm or causal_conv1d


def selective_scan_probe() -> str | None:
    """None when the CUDA selective scan can be loaded here, else the one-line reason."""
    if extension_installed(SELECTIVE_SCAN.module) or cached_library(SELECTIVE_SCAN) is not None:
        return None
    return SELECTIVE_SCAN_MISSING


def conv_backend_probe() -> str:
    """Which causal conv mamba_ssm will use here: causal_conv1d when its compiled module loads."""
    if importlib.util.find_spec(CAUSAL_CONV1D_NAME) is None:
        return TORCH_CONV1D_NAME
    if extension_installed(CAUSAL_CONV1D.module) or cached_library(CAUSAL_CONV1D) is not None:
        return CAUSAL_CONV1D_NAME
    return TORCH_CONV1D_NAME
