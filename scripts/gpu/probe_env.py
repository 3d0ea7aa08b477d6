"""Print what the GPU machine has: versions, imports of each kernel library, the mamba_ssm stub trick."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import sys
import types

import torch

print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)
print("gpu", torch.cuda.get_device_name(), torch.cuda.get_device_capability(), "cudnn", torch.backends.cudnn.version())
for dist in (
    "triton",
    "fla-core",
    "flash-linear-attention",
    "mlstm-kernels",
    "xlstm",
    "mamba-ssm",
    "transformers",
    "einops",
):
    try:
        print(f"  {dist} {md.version(dist)}")
    except md.PackageNotFoundError:
        print(f"  {dist} missing")
for module in ("fla", "fla.ops.rwkv7", "fla.ops.simple_gla", "mlstm_kernels.torch", "xlstm"):
    try:
        importlib.import_module(module)
        print("import ok  ", module)
    except Exception as exc:  # report and go on
        print("import FAIL", module, type(exc).__name__, str(exc).splitlines()[0][:200])
sys.modules.setdefault("selective_scan_cuda", types.ModuleType("selective_scan_cuda"))
try:
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined  # noqa: F401

    print("import ok   mamba_ssm ssd (with selective_scan_cuda stub)")
except Exception as exc:
    print("import FAIL mamba_ssm ssd", type(exc).__name__, str(exc).splitlines()[0][:200])
