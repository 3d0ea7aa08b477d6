"""Suites: throughput, memory, profile, recall. Each module (or subpackage) here registers a
`harness.suite.Suite` at import (its columns, planner, command, worker target, report page) and builds
`harness.job.Job`s from a preset; `seqbench run`, bench, results, the report and compare find it there.

Presets are TOML files, one folder per suite: `suites/presets/<suite>/<name>.toml`. What every preset
may hold (a suite reads the keys it needs and ignores none silently: unknown keys are errors):

    description = "one line"
    device = "cpu" | "cuda"
    backends = ["reference"]        # only implementations with these backends ([] or absent: all)
    dtypes = ["float32"]
    [config]                        # MixerConfig fields shared by every family
    d_model = 64
    [config.families.mamba2]        # per-family overrides (options = {...} for family knobs)
    d_state = 64

This module holds what the suites share: per-family configs, choosing implementations, and the presets
folder (loading is harness.presets); suites/grid.py the job grid of throughput, memory and profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import presets
from harness.config import MixerConfig
from harness.errors import ConfigError, UserError
from harness.interface import Implementation

PRESETS_DIR = Path(__file__).parent / "presets"


def preset_names(suite: str) -> list[str]:
    return presets.preset_names(PRESETS_DIR / suite)


def load_preset(suite: str, name: str) -> dict[str, Any]:
    """The preset `name` of `suite` as a dict (a path to a .toml file works too). An unknown name is a
    one-line error with the closest names."""
    return presets.load_preset(PRESETS_DIR / suite, suite, name)


def check_keys(where: str, table: dict[str, Any], known: set[str] | frozenset[str]) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def family_config(preset: dict[str, Any], family: str) -> MixerConfig:
    """The preset's [config] with the family's overrides applied."""
    base = {k: v for k, v in preset.get("config", {}).items() if k != "families"}
    override = preset.get("config", {}).get("families", {}).get(family, {})
    values = {**base, **override}
    if "options" in values:
        values["options"] = tuple(sorted(dict(values["options"]).items()))
    try:
        return MixerConfig.from_dict(values)
    except ConfigError as exc:
        raise UserError(f"preset {preset.get('name')!r}, family {family}: {exc}") from exc


def config_params(config: MixerConfig) -> dict[str, Any]:
    """A MixerConfig as JSON-able job params (options as a dict)."""
    values = {name: getattr(config, name) for name in config.__dataclass_fields__}
    values["options"] = dict(config.options)
    return values


def select_implementations(
    preset: dict[str, Any], names: tuple[str, ...] = (), families: tuple[str, ...] = ()
) -> list[Implementation]:
    """Implementations named (--name) or of the families (--family), else all; then only the preset's
    backends, and no references where the preset says `references = false`, unless names were given
    explicitly (an explicit name is always honoured)."""
    from harness import registry

    chosen = registry.select(names, families)
    backends = preset.get("backends") or []
    if backends and not names:
        chosen = [impl for impl in chosen if impl.backend in backends]
    if preset.get("references", True) is False and not names:
        chosen = [impl for impl in chosen if not impl.is_reference]
    return chosen
