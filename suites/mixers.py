"""Choosing and configuring the mixers of a training suite's model (recall, classify): a preset's mixer entry
(an implementation name, a family, or family:word) -> one implementation that can run here, and a preset's
[config] tables -> its MixerConfig. Moved here from suites/recall/presets.py, which re-exports them. A
"hybrid:a,b,c" entry is a layer pattern across families (see "hybrid models" below): pick_mixer resolves either
kind, ModelLayers is what the worker builds from a job's params.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from harness import registry
from harness.config import MixerConfig
from harness.errors import ConfigError, UserError
from harness.interface import Implementation, Mixer, parse_dtype
from harness.job import HYBRID_FAMILY
from suites import config_params
from suites.training import resolve_device

# A fast implementation's backend, most preferred first (on CUDA); anything else comes after these.
# FlashAttention before cuDNN: the most used training path; Flex compiles on first use, so it comes late.
BACKEND_PREFERENCE = ("cuda", "triton", "flash", "cudnn", "cufft", "efficient", "torch", "flex", "torch-math")


def _backend_rank(impl: Implementation) -> int:
    return BACKEND_PREFERENCE.index(impl.backend) if impl.backend in BACKEND_PREFERENCE else len(BACKEND_PREFERENCE)


def pick_implementation(entry: str, device: str, dtype: torch.dtype | None = None) -> Implementation:
    """A mixer entry -> one implementation.

    "family/name" is that implementation. "family" or "family:word" (the names containing `word`,
    e.g. "xlstm:mlstm") picks, among the family's implementations that can run here: on CUDA a fast
    one (not a reference) checked against the chosen reference, preferring whole layers and the
    backends in BACKEND_PREFERENCE; else the reference (`<family>/reference` or `<family>/<word>_reference`
    if there is one, e.g. xlstm/mlstm_reference for "xlstm:mlstm")."""
    if "/" in entry:
        return registry.get(entry)
    family, _, word = entry.partition(":")
    candidates = [i for i in registry.implementations() if i.family == family and word in i.name]
    if not candidates:
        known = ", ".join(registry.families())
        what = f"family {family!r}" + (f" with {word!r} in a name" if word else "")
        raise UserError(f"no implementation of {what}; families: {known} (or give a name, `seqbench list`)")
    references = [i for i in candidates if i.is_reference]
    plain = (f"{family}/reference", f"{family}/{word}_reference")
    references.sort(key=lambda i: (i.name not in plain, candidates.index(i)))
    runnable = [i for i in candidates if i.availability(device, dtype)]
    if resolve_device(device).type == "cuda":
        reference_name = references[0].name if references else None
        fast = [i for i in runnable if not i.is_reference]
        fast.sort(key=lambda i: (i.reference_name != reference_name, i.level != "layer", _backend_rank(i)))
        if fast:
            return fast[0]
    usable = [i for i in references if i in runnable] or runnable
    if not usable:
        reason = candidates[0].availability(device, dtype).reason
        raise UserError(f"no implementation of {entry!r} can run on {device} here ({candidates[0].name}: {reason})")
    return usable[0]


def mixer_config(table: dict[str, Any], impl: Implementation, d_model: int) -> MixerConfig:
    """MixerConfig from the preset's [config]: its fields, then [config.families.<family>], then
    [config.implementations."<name>"] (options merged), with d_model from the sweep."""
    values = {k: v for k, v in table.items() if k not in ("families", "implementations")}
    for override in (
        table.get("families", {}).get(impl.family, {}),
        table.get("implementations", {}).get(impl.name, {}),
    ):
        override = dict(override)
        options = {**dict(values.get("options", {})), **override.pop("options", {})}
        values.update(override)
        if options:
            values["options"] = options
    values["d_model"] = d_model
    try:
        return MixerConfig.from_dict(values)
    except ConfigError as exc:
        raise UserError(f"{impl.name}: {exc}") from exc


def merge_config(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Two [config] tables, the second winning, nested tables merged one level deep."""
    merged = dict(base)
    for key, value in override.items():
        if key in ("families", "implementations"):
            inner = dict(merged.get(key, {}))
            for name, table in value.items():
                inner[name] = {**inner.get(name, {}), **table}
            merged[key] = inner
        else:
            merged[key] = value
    return merged


# ---------------------------------------------------------------------------------------------
# hybrid models: a layer pattern across families
#
# A preset's mixer entry "hybrid:mamba,mamba,attention" (or "--family hybrid:mamba,attention" on the command
# line) is a layer pattern: its elements are mixer entries as above (a family, family:word or an implementation
# name), each resolved by pick_implementation on the device at hand, and the pattern is repeated to fill
# n_layers: [mamba, mamba, attention] with n_layers 6 is mamba, mamba, attention, mamba, mamba, attention. A
# pattern whose length does not divide n_layers is refused (a one-line error), never truncated: a truncated
# pattern would drop the attention layer a hybrid is about without saying so. Each layer gets its own family's
# MixerConfig (the preset's [config] with [config.families.<family>] and [config.implementations."<name>"]).
#
# The job names the pattern's period: implementation "hybrid/mamba/reference+mamba/reference+attention/reference"
# (its family "hybrid", the report's own colour), with params `layer_pattern` (every layer's implementation,
# n_layers long) and `layer_configs` (each implementation's config); `config` is the shared [config] alone (what
# the rows' config columns show). Single-mixer jobs keep their params as they were (the same job ids); their
# rows' `layer_pattern` column lists their one implementation n_layers times.

HYBRID_PREFIX = "hybrid:"


@dataclass(frozen=True)
class MixerChoice:
    """What a preset's mixer entry resolved to: one implementation, or a hybrid's pattern (its period)."""

    period: tuple[Implementation, ...]
    hybrid: bool = False

    @property
    def name(self) -> str:
        """The job's implementation: the implementation's name, or "hybrid/<name>+<name>+..." of the period."""
        if not self.hybrid:
            return self.period[0].name
        return HYBRID_FAMILY + "/" + "+".join(impl.name for impl in self.period)

    @property
    def family(self) -> str:
        return HYBRID_FAMILY if self.hybrid else self.period[0].family

    def layers(self, n_layers: int) -> list[Implementation]:
        """Every layer's implementation: the period repeated to n_layers (which it must divide)."""
        if n_layers % len(self.period):
            raise UserError(
                f"{self.name}: a pattern of {len(self.period)} layers does not divide n_layers {n_layers} "
                "(give n_layers a multiple of the pattern's length)"
            )
        return list(self.period) * (n_layers // len(self.period))

    def job_params(self, table: dict[str, Any], d_model: int, n_layers: int) -> dict[str, Any]:
        """The job params naming the mixers: implementation and config; for a hybrid also layer_pattern (every
        layer's implementation) and layer_configs (each implementation's MixerConfig, by name)."""
        if not self.hybrid:
            return {"implementation": self.name, "config": config_params(mixer_config(table, self.period[0], d_model))}
        layers = self.layers(n_layers)
        base = {k: v for k, v in table.items() if k not in ("families", "implementations")}
        try:
            shared = MixerConfig.from_dict({**base, "d_model": d_model})
        except ConfigError as exc:
            raise UserError(f"{self.name}: {exc}") from exc
        return {
            "implementation": self.name,
            "config": config_params(shared),
            "layer_pattern": [impl.name for impl in layers],
            "layer_configs": {impl.name: config_params(mixer_config(table, impl, d_model)) for impl in self.period},
        }


def parse_pattern(entry: str) -> list[str] | None:
    """A layer pattern's elements ("hybrid:mamba,mamba,attention": mamba, mamba, attention); None for any other
    entry."""
    if not entry.startswith(HYBRID_PREFIX):
        return None
    elements = [part.strip() for part in entry[len(HYBRID_PREFIX) :].split(",")]
    if not elements or any(not part for part in elements):
        raise UserError(f"{entry!r}: a layer pattern is hybrid: then mixer entries separated by commas")
    nested = [part for part in elements if part.startswith(HYBRID_PREFIX) or part.startswith(HYBRID_FAMILY + "/")]
    if nested:
        raise UserError(f"{entry!r}: a pattern's element cannot be a hybrid itself ({nested[0]!r})")
    return elements


def pick_mixer(entry: str, device: str, dtype: torch.dtype | None = None) -> MixerChoice:
    """A preset's mixer entry -> one implementation (pick_implementation) or a hybrid's pattern, each element
    resolved as a single entry is; an unknown family in a pattern is a one-line error naming it and the entry."""
    pattern = parse_pattern(entry)
    if pattern is None:
        return MixerChoice((pick_implementation(entry, device, dtype),))
    period = []
    for element in pattern:
        try:
            period.append(pick_implementation(element, device, dtype))
        except UserError as exc:
            raise UserError(f"{entry}: {exc}") from exc
    return MixerChoice(tuple(period), hybrid=True)


def pick_mixers(
    entries: list[str], device: str, dtype_name: str, dtype_by_family: dict[str, str] | None = None
) -> list[tuple[MixerChoice, str]]:
    """Each entry's mixer and the dtype its jobs train in: the preset's, or its family's own from
    `dtype_by_family` (a preset key of the training suites: cuDNN's LSTM, say, takes no bf16), the mixer then
    picked for that dtype (in bf16 the LSTM family resolves to its reference, in float32 to cuDNN's)."""
    picked = []
    for entry in entries:
        dtype = (dtype_by_family or {}).get(entry_family(entry), dtype_name)
        picked.append((pick_mixer(entry, device, parse_dtype(dtype)), dtype))
    return picked


def entry_family(entry: str) -> str:
    """The family a mixer entry names: a pattern's is "hybrid", "family/name"'s its implementation's."""
    if parse_pattern(entry) is not None:
        return HYBRID_FAMILY
    return registry.get(entry).family if "/" in entry else entry.partition(":")[0]


def check_dtype_by_family(where: str, table: dict[str, Any]) -> None:
    """A preset's dtype_by_family: known families, known dtypes; else a one-line error."""
    families = set(registry.families())
    for family, dtype in table.items():
        if family not in families:
            raise UserError(f"{where}: unknown family {family!r} (families: {', '.join(sorted(families))})")
        try:
            parse_dtype(dtype)
        except UserError as exc:  # its message names the dtypes it knows
            raise UserError(f"{where}: dtype_by_family.{family}: {exc}") from None


@dataclass(frozen=True)
class ModelLayers:
    """A model's mixers as the worker builds them: one implementation and MixerConfig per layer, and their
    cost models summed over the layers."""

    impls: tuple[Implementation, ...]
    configs: tuple[MixerConfig, ...]

    @property
    def names(self) -> list[str]:
        return [impl.name for impl in self.impls]

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(impl.family for impl in self.impls)

    @property
    def rope(self) -> bool:
        """Whether the attention layers use RoPE (no attention layer: False)."""
        return any(config.rope for impl, config in self.pairs() if impl.family == "attention")

    def pairs(self) -> list[tuple[Implementation, MixerConfig]]:
        return list(zip(self.impls, self.configs, strict=True))

    def makers(self) -> list[Callable[[], Mixer]]:
        """One constructor per layer, in order (the Backbone calls them in order: the same seed, the same weights)."""
        return [lambda impl=impl, config=config: impl.create(config) for impl, config in self.pairs()]

    def flops(self, batch: int, seq_len: int, mode: str) -> float:
        """The mixers' analytic FLOPs: each layer's own implementation's model, summed."""
        return float(sum(impl.flops(config, batch, seq_len, mode) for impl, config in self.pairs()))

    def state_bytes(self, batch: int, seq_len: int, dtype: torch.dtype) -> float:
        """The decoding state of every layer, summed."""
        return float(sum(impl.state_bytes(config, batch, seq_len, dtype) for impl, config in self.pairs()))


def model_layers(
    implementation: str,
    config: dict[str, Any],
    n_layers: int,
    layer_pattern: list[str] | None = None,
    layer_configs: dict[str, dict[str, Any]] | None = None,
) -> ModelLayers:
    """A job's mixer params -> its layers. Without layer_pattern: `implementation` with `config` in every layer;
    with one (a hybrid): layer i is layer_pattern[i] with layer_configs[its name]."""
    if layer_pattern is None:
        impl = registry.get(implementation)
        return ModelLayers((impl,) * n_layers, (MixerConfig.from_dict(config),) * n_layers)
    if len(layer_pattern) != n_layers:
        raise ConfigError("layer_pattern", f"names {len(layer_pattern)} layers, n_layers is {n_layers}")
    configs = layer_configs or {}
    missing = sorted(set(layer_pattern) - set(configs))
    if missing:
        raise ConfigError("layer_configs", f"has no config for {missing[0]}")
    built = {name: MixerConfig.from_dict(values) for name, values in configs.items()}
    return ModelLayers(tuple(registry.get(n) for n in layer_pattern), tuple(built[n] for n in layer_pattern))
