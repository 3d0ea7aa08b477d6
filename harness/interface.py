"""The one interface: every implementation is a `Mixer`, described by an `Implementation` record.

A mixer maps x: (batch, seq_len, d_model) to y of the same shape, causally, in two forms that must
agree: `forward` (parallel: training / prefill) and a loop of `step` (recurrent: decoding).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from harness.config import MixerConfig
from harness.errors import UserError

Mode = Literal["fwd", "fwd_bwd", "prefill", "decode", "train"]
MODES: tuple[str, ...] = ("fwd", "fwd_bwd", "prefill", "decode", "train")

# Parts of a mixer, used as `record_function` ranges so profiles can attribute kernels to them.
PARTS: tuple[str, ...] = ("projection", "convolution", "core", "norm", "gating")


@contextmanager
def part(name: str) -> Iterator[None]:
    """Mark a region of a mixer (one of PARTS) for the profiler; costs nothing when not profiling."""
    with torch.profiler.record_function(f"seqbench::{name}"):
        yield


@dataclass
class CoreCall:
    """A core op and its prepared inputs: `fn(*args, **kwargs)`."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def run(self) -> Any:
        return self.fn(*self.args, **self.kwargs)


class Mixer(nn.Module):
    """Base class of every implementation. Subclasses define the three entry points."""

    config: MixerConfig

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        raise NotImplementedError

    def init_state(self, batch: int, device: torch.device | str, dtype: torch.dtype) -> Any:
        raise NotImplementedError

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:  # (B, D) -> ((B, D), state)
        raise NotImplementedError

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Process a prompt and return (y, state) ready for `step`. Families override this with
        their parallel form; the default is the definition: a loop of `step`."""
        state = self.init_state(x.shape[0], x.device, x.dtype)
        ys = []
        for t in range(x.shape[1]):
            y_t, state = self.step(x[:, t], state)
            ys.append(y_t)
        return torch.stack(ys, dim=1), state

    def core_call(self, x: torch.Tensor) -> CoreCall:
        """The mixer's core op (attention, selective scan, SSD, ...) with its inputs computed from x,
        so suites can time and profile the bare kernel apart from projections and convolutions.
        `call.run()` must compute exactly what `forward` computes in its core part."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its core op")

    def load_reference_weights(self, reference: Mixer) -> None:
        """Copy the weights of the family reference so both compute the same function.
        Adapters whose parameters are laid out differently override this with a mapping."""
        self.load_state_dict(reference.state_dict())


def run_recurrent(mixer: Mixer, x: torch.Tensor) -> torch.Tensor:
    """y from a loop of `step` calls over x (B, L, D): the recurrent form of the mixer."""
    state = mixer.init_state(x.shape[0], x.device, x.dtype)
    ys = []
    for t in range(x.shape[1]):
        y_t, state = mixer.step(x[:, t], state)
        ys.append(y_t)
    return torch.stack(ys, dim=1)


# ---------------------------------------------------------------------------------------------
# dtypes

DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
_DTYPE_ALIASES = {"fp64": "float64", "fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}


def parse_dtype(name: str) -> torch.dtype:
    key = _DTYPE_ALIASES.get(name.lower(), name.lower())
    if key not in DTYPES:
        raise UserError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)} (or fp64, fp32, bf16, fp16)")
    return DTYPES[key]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# ---------------------------------------------------------------------------------------------
# availability


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""  # one line; empty when ok

    def __bool__(self) -> bool:
        return self.ok


OK = Availability(True)


@dataclass(frozen=True)
class Package:
    """A Python package an implementation needs: the module it imports and the name pip installs."""

    module: str
    pip: str


def package_installed(module: str) -> bool:
    # find_spec on a top-level name locates the package without importing it.
    return importlib.util.find_spec(module) is not None


def resolve(dotted: str) -> Any:
    """'package.module:attribute' -> the attribute, imported only now."""
    module_name, _, attribute = dotted.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


# Analytic models: (config, batch, seq_len, mode) -> FLOPs; (..., mode, dtype) -> minimum HBM bytes;
# (config, batch, seq_len, dtype) -> bytes of decoding state at that context length.
FlopsModel = Callable[[MixerConfig, int, int, str], float]
BytesModel = Callable[[MixerConfig, int, int, str, torch.dtype], float]
StateBytesModel = Callable[[MixerConfig, int, int, torch.dtype], float]


def _no_model(*_: Any) -> float:
    return float("nan")


@dataclass(frozen=True)
class Implementation:
    """One registry entry. Holds no module: `build` is a dotted path imported on use."""

    family: str  # attention | s4 | mamba | mamba2 | rwkv | xlstm | ...
    name: str  # unique, "<family>/<what>", e.g. "attention/sdpa_flash"
    backend: str  # reference | torch | cudnn | triton | cuda | ...
    build: str  # "module:function" taking a MixerConfig and returning a Mixer
    devices: tuple[str, ...] = ("cpu", "cuda")
    dtypes: tuple[torch.dtype, ...] = (torch.float64, torch.float32, torch.bfloat16, torch.float16)
    needs: tuple[Package, ...] = ()
    # The implementation this one must agree with (same config, same weights). None: this *is* the
    # family's reference.
    reference: str | None = None
    # "module:function" (device: str, dtype: torch.dtype) -> str | None: a reason it cannot run here
    # beyond devices/dtypes/packages (a backend torch lacks, a crash known on this Triton version).
    requirement: str | None = None
    # The CUDA extensions `seqbench kernels build` compiles that this implementation loads (mamba_ssm's
    # selective_scan_cuda): `seqbench check --skip-needing-build` checks the others while they build.
    built_extensions: tuple[str, ...] = ()
    level: str = "layer"  # layer: the whole mixer; op: our block around the library's core op
    description: str = ""
    flops_model: FlopsModel = field(default=_no_model, repr=False)
    bytes_model: BytesModel = field(default=_no_model, repr=False)
    state_bytes_model: StateBytesModel = field(default=_no_model, repr=False)
    # The same models for the core op alone (what `Mixer.core_call` runs), for op-level rooflines.
    core_flops_model: FlopsModel = field(default=_no_model, repr=False)
    core_bytes_model: BytesModel = field(default=_no_model, repr=False)
    # The per-head width this implementation uses, where its heads split something other than d_model
    # (Mamba-2's and the mLSTM block's heads split the expanded inner width): recorded in result rows.
    head_dim_model: Callable[[MixerConfig], int] | None = field(default=None, repr=False)

    @property
    def is_reference(self) -> bool:
        return self.reference is None

    @property
    def reference_name(self) -> str:
        return self.reference or self.name

    def availability(self, device: str = "cpu", dtype: torch.dtype | None = None) -> Availability:
        """ok, or the one-line reason this implementation cannot run on `device` with `dtype` here."""
        kind = torch.device(device).type
        if kind not in self.devices:
            return Availability(False, f"runs on {'/'.join(self.devices)} only, not {kind}")
        if kind == "cuda" and not torch.cuda.is_available():
            return Availability(False, "no CUDA device visible to torch")
        if dtype is not None and dtype not in self.dtypes:
            supported = ", ".join(dtype_name(d) for d in self.dtypes)
            return Availability(False, f"{dtype_name(dtype)} not supported (supports {supported})")
        for package in self.needs:
            if not package_installed(package.module):
                return Availability(False, f"needs package {package.pip} (pip install {package.pip})")
        if self.requirement is not None:
            try:
                reason = resolve(self.requirement)(kind, dtype)
            except Exception as exc:  # a broken probe must not break `seqbench list`
                reason = f"availability probe failed: {type(exc).__name__}: {exc}".splitlines()[0]
            if reason:
                return Availability(False, reason)
        return OK

    def create(self, config: MixerConfig) -> Mixer:
        return resolve(self.build)(config)

    def head_dim(self, config: MixerConfig) -> int:
        """The width of one head as this implementation runs `config` (d_model // n_heads unless it says)."""
        return self.head_dim_model(config) if self.head_dim_model is not None else config.resolved_head_dim

    def flops(self, config: MixerConfig, batch: int, seq_len: int, mode: str, core: bool = False) -> float:
        model = self.core_flops_model if core else self.flops_model
        return float(model(config, batch, seq_len, mode))

    def min_bytes(
        self, config: MixerConfig, batch: int, seq_len: int, mode: str, dtype: torch.dtype, core: bool = False
    ) -> float:
        model = self.core_bytes_model if core else self.bytes_model
        return float(model(config, batch, seq_len, mode, dtype))

    def state_bytes(self, config: MixerConfig, batch: int, seq_len: int, dtype: torch.dtype) -> float:
        return float(self.state_bytes_model(config, batch, seq_len, dtype))
