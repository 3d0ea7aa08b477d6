"""Availability probes of the xlstm family's adapters: one-line reasons, without importing the kernels.

Known aborts: on an H100 with triton 3.6, `chunkwise--triton_xl_chunk` (and `parallel--triton_limit_headdim`,
which no adapter wraps) abort the whole Python process while compiling (an LLVM assertion: SIGABRT), so no
exception can be caught. The probe reads triton's version from the installed distribution's metadata, never
by importing triton. SEQBENCH_FORCE_UNSAFE=1 runs such a kernel anyway (to confirm that the isolated worker
of `seqbench check` turns the abort into a failed row, or to try a fixed build).
"""

from __future__ import annotations

import os
from importlib import metadata

import torch

FORCE_UNSAFE_ENV = "SEQBENCH_FORCE_UNSAFE"
# kernel -> triton (major, minor) versions under which it is known to abort the process
KNOWN_ABORTS: dict[str, tuple[tuple[int, int], ...]] = {
    "chunkwise--triton_xl_chunk": ((3, 6),),
}


def triton_version() -> str | None:
    """The installed triton's version string, read from package metadata (triton is not imported)."""
    for distribution in ("triton", "pytorch-triton"):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None


def _major_minor(version: str) -> tuple[int, int] | None:
    parts = version.split("+")[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def known_abort(kernel: str, version: str | None) -> str | None:
    """The one-line reason `kernel` cannot run under triton `version`, or None."""
    if version is None:
        return None
    major_minor = _major_minor(version)
    if major_minor is None or major_minor not in KNOWN_ABORTS.get(kernel, ()):
        return None
    if os.environ.get(FORCE_UNSAFE_ENV) == "1":
        return None
    return (
        f"mlstm_kernels {kernel} aborts the Python process under triton {version} (LLVM assertion, SIGABRT; "
        f"seen on H100); set {FORCE_UNSAFE_ENV}=1 to run it anyway"
    )


def xl_chunk(device: str, dtype: torch.dtype | None) -> str | None:
    return known_abort("chunkwise--triton_xl_chunk", triton_version())
