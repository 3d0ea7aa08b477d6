"""Provenance of every result row: what ran, where, with which versions.

Two halves. `static_provenance()` runs in the parent and imports nothing heavy: kernel package versions
come from installed metadata (importlib.metadata, never importing the package), the seqbench commit from
git. `device_provenance(device)` runs inside a worker (so the parent never initialises CUDA and keeps no
memory on the GPU): GPU name, count and memory, driver and CUDA versions, a host fingerprint and the
measured device ceilings (harness.ceilings).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

# Distributions whose version changes the numbers (pip names). Implementations' `needs` are added.
KERNEL_PACKAGES: tuple[str, ...] = (
    "torch",
    "triton",
    "pytorch-triton",
    "flash-linear-attention",
    "fla-core",
    "mamba-ssm",
    "causal-conv1d",
    "mlstm-kernels",
    "xlstm",
    "pykeops",
    "flash-attn",
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def package_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed version of each kernel package (missing ones left out)."""
    versions = {}
    for name in sorted(set(KERNEL_PACKAGES) | set(extra)):
        version = package_version(name)
        if version is not None:
            versions[name] = version
    return versions


def software_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Python, torch and its CUDA, every kernel package (or "not installed": a missing one explains an
    unavailable implementation) and the GPU: the header of a scripts/gpu verification report. Imports
    torch, so it belongs in a worker or a script, never in the runner's parent."""
    import torch

    found = {"python": platform.python_version(), "torch": torch.__version__, "cuda": str(torch.version.cuda)}
    for name in sorted((set(KERNEL_PACKAGES) | set(extra)) - {"torch"}):
        found[name] = package_version(name) or "not installed"
    if torch.cuda.is_available():
        found["gpu"] = torch.cuda.get_device_name()
    return found


@cache
def git_state(root: Path = REPO_ROOT) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the seqbench checkout; (None, None) outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(status.strip())


def static_provenance() -> dict[str, Any]:
    """The parent's half: versions and git state (no torch.cuda, no kernel imports)."""
    from harness import registry

    needed = tuple(package.pip for impl in registry.implementations() for package in impl.needs)
    versions = package_versions(needed)
    commit, dirty = git_state()
    return {
        "torch_version": versions.get("torch"),
        "triton_version": versions.get("triton") or versions.get("pytorch-triton"),
        "package_versions": json.dumps(versions, sort_keys=True),
        "seqbench_commit": commit,
        "seqbench_dirty": dirty,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _driver_version() -> str | None:
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
        for token in text.split():
            if token.count(".") >= 1 and token.replace(".", "").isdigit():
                return token
    except OSError:
        pass
    lines = nvidia_smi_query("driver_version")
    return lines[0] if lines else None


def nvidia_smi_query(fields: str) -> list[str] | None:
    """`nvidia-smi --query-gpu=FIELDS` as one stripped CSV line per GPU; None where nvidia-smi is missing
    or fails (no driver, a CPU machine)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.strip() for line in out.splitlines() if line.strip()]


def host_fingerprint(gpu_names: list[str]) -> str:
    """A short hash naming this machine: host name, CPU model and count, memory, GPUs."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 0
    parts = [socket.gethostname(), platform.machine(), _cpu_model(), str(os.cpu_count()), str(memory), *gpu_names]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def device_provenance(device: str = "cpu", measure_ceilings: bool = True) -> dict[str, Any]:
    """The worker's half: the GPU, driver, CUDA, host fingerprint and device ceilings."""
    import torch

    from harness import ceilings

    kind = torch.device(device).type
    gpu_names: list[str] = []
    info: dict[str, Any] = {
        "gpu_name": None,
        "gpu_count": 0,
        "gpu_memory_bytes": None,
        "driver_version": None,
        "cuda_version": torch.version.cuda,
    }
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        gpu_names = [torch.cuda.get_device_name(i) for i in range(count)]
        index = (torch.device(device).index or 0) if kind == "cuda" else 0
        info.update(
            gpu_name=gpu_names[index],
            gpu_count=count,
            gpu_memory_bytes=int(torch.cuda.get_device_properties(index).total_memory),
            driver_version=_driver_version(),
        )
    info["host_fingerprint"] = host_fingerprint(gpu_names)
    if measure_ceilings:
        info.update(ceilings.measure(device))
    else:
        info.update(peak_matmul_tflops=float("nan"), peak_copy_gbps=float("nan"))
    return info
