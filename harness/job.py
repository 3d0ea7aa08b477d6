"""A job: one measurement to make, named by its suite, implementation, worker target and params.

It lives apart from the runner so that the executors, which run jobs, and the suites, which plan them,
need not import the runner that drives both.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from harness import results
from harness.errors import ConfigError, UserError

# Warm-up compiles and autotunes (over 110 s for some fwd+bwd kernels on a cold cache); measurement
# is bounded by the timing budget, so its limit can be tight.
DEFAULT_TIMEOUTS_S: dict[str, float] = {"warmup": 900.0, "measure": 120.0}
# The family of a job whose params name one implementation per layer (`layer_pattern`: a training suite's
# hybrid model, suites/mixers.py); its implementation is named "hybrid/<a>+<b>+...".
HYBRID_FAMILY = "hybrid"


@dataclass
class Job:
    """One measurement to make: `target(**params)` run in a worker, for one implementation.

    params must be JSON-serialisable; they define the job, and `job_id` hashes them with the suite and
    the implementation (not the target, not the timeouts): the same preset gives the same ids wherever
    it runs. Params named like result columns (mode, dtype, batch, seq_len, device, level, task, ...)
    become columns of every row, and `params["config"]` (a MixerConfig as a dict) is flattened."""

    suite: str
    implementation: str
    target: str  # "module:function"
    params: dict[str, Any]
    timeouts_s: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS_S))

    @cached_property
    def job_id(self) -> str:
        definition = {"suite": self.suite, "implementation": self.implementation, "params": self.params}
        text = json.dumps(definition, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        """Short human name: implementation and the params that vary in sweeps."""
        keys = ("level", "mode", "dtype", "batch", "seq_len", "task")
        short = {"batch": "B", "seq_len": "L"}
        bits = [f"{short[k]}={self.params[k]}" if k in short else str(self.params[k]) for k in keys if k in self.params]
        if isinstance(self.params.get("seq_lens"), list) and self.params["seq_lens"]:
            lengths = self.params["seq_lens"]
            bits.append(f"L={lengths[0]}..{lengths[-1]}" + ("+" if self.params.get("frontier") else ""))
        return f"{self.implementation} {' '.join(bits)}".strip()

    def columns(self) -> dict[str, Any]:
        """The row columns known before running: family, backend, the job's params, the config."""
        from harness import registry
        from harness.config import MixerConfig

        out: dict[str, Any] = {}
        impl = None
        try:
            impl = registry.get(self.implementation)
            out.update(family=impl.family, backend=impl.backend)
        except UserError:
            layers = self.layer_implementations()
            if layers:  # a hybrid: family "hybrid", its layers' backends in pattern order
                out.update(family=HYBRID_FAMILY, backend="+".join(dict.fromkeys(i.backend for i in layers)))
        known = results.known_columns()
        for key, value in self.params.items():
            if key in known and key not in results.IDENTITY_COLUMNS and _is_scalar(value):
                out[key] = value
        if isinstance(self.params.get("config"), dict):
            config = MixerConfig.from_dict(self.params["config"])
            out.update(config.to_dict())
            if impl is not None:
                try:
                    out["head_dim"] = impl.head_dim(config)
                except ConfigError:
                    pass  # a config this implementation rejects: the job's own row will say why
        return out

    def layer_implementations(self) -> list[Any]:
        """A job over several implementations (a hybrid model: `params["layer_pattern"]`, one name per layer):
        the distinct ones, in pattern order; [] for any other job. An unknown name raises UserError."""
        from harness import registry

        pattern = self.params.get("layer_pattern")
        if not isinstance(pattern, list) or not pattern:
            return []
        return [registry.get(name) for name in dict.fromkeys(pattern)]

    def unavailable_reason(self) -> str | None:
        """Why this job cannot run here (unknown implementation, device, dtype, missing package), or None. A
        job with a layer pattern runs where every layer's implementation can."""
        from harness import registry
        from harness.interface import parse_dtype

        try:
            dtype = parse_dtype(self.params["dtype"]) if "dtype" in self.params else None
            impls = self.layer_implementations() or [registry.get(self.implementation)]
        except UserError as exc:
            return str(exc)
        for impl in impls:
            availability = impl.availability(self.params.get("device", "cpu"), dtype)
            if not availability:
                return availability.reason if len(impls) == 1 else f"{impl.name}: {availability.reason}"
        return None


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)
