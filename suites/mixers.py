"""Choosing and configuring the mixer of a training suite's model (recall, classify): a preset's mixer entry
(an implementation name, a family, or family:word) -> one implementation that can run here, and a preset's
[config] tables -> its MixerConfig. Moved here from suites/recall/presets.py, which re-exports them.
"""

from __future__ import annotations

from typing import Any

import torch

from harness import registry
from harness.config import MixerConfig
from harness.errors import ConfigError, UserError
from harness.interface import Implementation
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
