"""Presets: TOML files in suites/presets/recall/ that name a sweep, expanded into runner jobs.

A preset holds defaults at the top level and one or more `[[grid]]` tables that override them:

    description = "Zoology Figure 2"
    device = "cuda"                            # where it is meant to run (--device overrides)
    mixers = ["attention", "mamba"]            # implementation names, or families (see `pick_implementation`),
                                               # or layer patterns: "hybrid:mamba,attention" (suites/mixers.py)
    d_model = [64, 128]                        # lists are swept (cartesian product) ...
    lr = [1e-4, 1e-3]
    seed = 123                                 # ... scalars are fixed
    weight_decay = 0.1
    batch = 64
    timeout_s = 3600                           # per job (one training run)
    dtype = "bfloat16"                         # default: bf16 autocast on a GPU, fp32 on the CPU
    [dtype_by_family]                          # a family's own dtype (cuDNN's LSTM takes no bf16 here)
    lstm = "float32"
    [model]                                    # suites.recall.model.ModelSettings
    n_layers = 2
    [train]                                    # suites.recall.train.TrainSettings
    epochs = 64
    [config]                                   # MixerConfig fields for every mixer (the suites' convention) ...
    d_state = 16
    [config.families.attention]                # ... per family (family knobs in a table `options`) ...
    n_heads = 1
    [config.implementations."s4/reference"]    # ... and per implementation

    [[grid]]
    task = "mqar"
    task_params = { vocab_size = 8192 }
    cells = [ { seq_len = 64, n_pairs = 4, batch = 512 }, ... ]   # zipped settings, one cell each
    extrapolate = [ { seq_len = 512 } ]        # longer test settings (task parameter overrides)

A cell's keys go where they belong: task parameters, training or model settings, or the job's
batch / lr / weight_decay / seed / d_model; `setting` names the cell (default: its overrides, or
"baseline"). The job id hashes the resolved definition, so the same preset gives the same ids.
"""

from __future__ import annotations

import itertools
from dataclasses import fields
from pathlib import Path
from typing import Any

from harness import presets, registry
from harness.errors import ConfigError, UserError
from suites.mixers import (
    BACKEND_PREFERENCE,
    check_dtype_by_family,
    merge_config,
    mixer_config,
    pick_implementation,
    pick_mixers,
)
from suites.recall.model import ModelSettings
from suites.recall.tasks import get_task
from suites.recall.train import SUITE, TARGET, TrainSettings, default_dtype, resolve_device

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets" / "recall"
__all__ = ["BACKEND_PREFERENCE", "build_jobs", "check_preset", "load_preset", "mixer_config", "pick_implementation"]

SWEPT = ("d_model", "lr", "weight_decay", "seed")  # job-level keys that may be lists
JOB_KEYS = (*SWEPT, "batch")
TOP_LEVEL = {
    "name",
    "description",
    "source",
    "notes",
    "device",
    "mixers",
    "config",
    "model",
    "train",
    "timeout_s",
    "dtype",
    "dtype_by_family",
    "grid",
    "task",
    "task_params",
    "cells",
    "extrapolate",
    *JOB_KEYS,
}
GRID_KEYS = TOP_LEVEL - {"name", "description", "source", "notes", "device", "grid"}
DEFAULT_PRESET = "recall-cpu"
DEFAULT_TIMEOUT_S = 3600.0


def preset_names() -> list[str]:
    return presets.preset_names(PRESET_DIR)


def load_preset(name_or_path: str) -> dict[str, Any]:
    """A preset by name (suites/presets/recall/<name>.toml) or by path; unknown keys are errors."""
    preset = presets.load_preset(PRESET_DIR, SUITE, name_or_path)
    check_preset(preset)
    return preset


def check_preset(preset: dict[str, Any]) -> None:
    """A loaded recall preset's keys: unknown ones (top level, in a [[grid]], a family) are one-line errors."""
    where = f"recall preset {preset['name']!r}"
    unknown = sorted(set(preset) - TOP_LEVEL)
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(TOP_LEVEL))})")
    for grid in preset.get("grid", []):
        unknown = sorted(set(grid) - GRID_KEYS)
        if unknown:
            raise UserError(
                f"{where}: unknown key {unknown[0]!r} in a [[grid]] (known: {', '.join(sorted(GRID_KEYS))})"
            )
    unknown = sorted(set(preset.get("config", {}).get("families", {})) - set(registry.families()))
    if unknown:
        raise UserError(f"{where}: [config.families] names unknown family {unknown[0]!r}")
    for table in (preset, *preset.get("grid", [])):
        check_dtype_by_family(where, table.get("dtype_by_family", {}))


# ---------------------------------------------------------------------------------------------
# expansion into jobs


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _setting_label(cell: dict[str, Any]) -> str:
    if "setting" in cell:
        return str(cell["setting"])
    if not cell:
        return "baseline"
    return ",".join(f"{k}={v}" for k, v in cell.items())


def _split_cell(cell: dict[str, Any], task_param_names: set[str]) -> dict[str, dict[str, Any]]:
    """A cell's overrides by destination: task, train, model, job."""
    train_names = {f.name for f in fields(TrainSettings)}
    model_names = {f.name for f in fields(ModelSettings)}
    out: dict[str, dict[str, Any]] = {"task": {}, "train": {}, "model": {}, "job": {}}
    for key, value in cell.items():
        if key == "setting":
            continue
        if key in task_param_names:
            out["task"][key] = value
        elif key in train_names:
            out["train"][key] = value
        elif key in model_names:
            out["model"][key] = value
        elif key in JOB_KEYS:
            out["job"][key] = value
        else:
            raise ConfigError(key, "in a cell is not a task parameter, training or model setting, or job key")
    return out


def build_jobs(
    preset: dict[str, Any],
    *,
    device: str = "auto",
    tasks: tuple[str, ...] = (),
    mixers: tuple[str, ...] = (),
    overrides: dict[str, Any] | None = None,
    task_overrides: dict[str, Any] | None = None,
) -> list[Any]:
    """The runner jobs of a preset: one per (grid cell, mixer, d_model, lr, weight_decay, seed).

    `tasks` and `mixers` narrow or replace the preset's (a mixer given here need not be in the
    preset); `overrides` replaces top-level keys (e.g. {"lr": [1e-3], "train": {"epochs": 2}});
    `task_overrides` sets task parameters of every selected cell, after the cells' own."""
    from harness.job import Job

    device = resolve_device(device).type if device == "auto" else device
    base = {k: v for k, v in preset.items() if k not in ("grid", "name", "description", "source", "notes")}
    for key, value in (overrides or {}).items():
        if key in ("train", "model", "task_params") and isinstance(value, dict):
            base[key] = {**base.get(key, {}), **value}
        elif key == "config" and isinstance(value, dict):
            base[key] = merge_config(base.get(key, {}), value)
        else:
            base[key] = value
    grids = preset.get("grid") or [{}]
    chosen_tasks = {get_task(t).name for t in tasks}  # unknown names fail here, with the closest names

    jobs = []
    for grid in grids:
        spec = {**base, **{k: v for k, v in grid.items() if k not in (overrides or {})}}
        for key in ("train", "model"):
            spec[key] = {**base.get(key, {}), **grid.get(key, {}), **(overrides or {}).get(key, {})}
        spec["config"] = merge_config(
            merge_config(base.get("config", {}), grid.get("config", {})), (overrides or {}).get("config", {})
        )
        if "task" not in spec:
            raise UserError(f"recall preset {preset.get('name')!r}: a grid names no task")
        task = get_task(spec["task"])
        if chosen_tasks and task.name not in chosen_tasks:
            continue
        dtype_name = spec.get("dtype") or default_dtype(device)
        entries = list(mixers) or _as_list(spec.get("mixers", []))
        if not entries:
            raise UserError(f"{preset.get('name')}: no mixers for task {task.name} (give --mixer)")
        choices = pick_mixers(entries, device, dtype_name, spec.get("dtype_by_family"))
        for cell in spec.get("cells") or [{}]:
            parts = _split_cell(cell, set(task.defaults))
            task_params = task.params(**{**spec.get("task_params", {}), **parts["task"], **(task_overrides or {})})
            train = TrainSettings.from_dict({**spec["train"], **parts["train"]}).to_dict()
            model = ModelSettings.from_dict({**spec["model"], **parts["model"]}).to_dict()
            n_layers = model.pop("n_layers")
            job_values = {**{k: spec[k] for k in JOB_KEYS if k in spec}, **parts["job"]}
            for required in JOB_KEYS:
                if required not in job_values:
                    raise UserError(f"{preset.get('name')}: no {required} for task {task.name}")
            extrapolate = list(spec.get("extrapolate", task.extrapolate))
            for overrides_ in extrapolate:
                task.params(**{**task_params, **overrides_})  # bad longer settings fail now, not in a worker
            swept = [_as_list(job_values[k]) for k in SWEPT]
            for choice, choice_dtype in choices:
                for d_model, lr, weight_decay, seed in itertools.product(*swept):
                    params = {
                        "task": task.name,
                        "setting": _setting_label(cell),
                        "task_params": task_params,
                        "seq_len": task_params["seq_len"],
                        "vocab_size": task.vocab_size(task_params),
                        # implementation and config (a hybrid: also layer_pattern, layer_configs). The configs
                        # as given, not resolved: to_dict() fills head_dim with d_model // n_heads, which
                        # Mamba-2 (head_dim = d_inner // n_heads) rejects when rebuilt in the worker.
                        **choice.job_params(spec["config"], int(d_model), n_layers),
                        "n_layers": n_layers,
                        "model": model,
                        "lr": float(lr),
                        "weight_decay": float(weight_decay),
                        "seed": int(seed),
                        "batch": int(job_values["batch"]),
                        "train": train,
                        "extrapolate": extrapolate,
                        "device": device,
                        "dtype": choice_dtype,
                        "mode": "train",
                        "level": "layer",
                    }
                    timeout = float(spec.get("timeout_s", DEFAULT_TIMEOUT_S))
                    jobs.append(Job(SUITE, choice.name, TARGET, params, timeouts_s={"start": timeout}))
    return jobs
