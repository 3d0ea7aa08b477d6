"""Presets: TOML files in suites/presets/classify/ -> runner jobs, one per (mixer, seq_len, d_model, lr, seed).

    description = "one line"
    source = "where the recipe comes from"
    device = "cpu" | "cuda"
    mixers = ["s4", "attention/reference"]     # names or families (suites.mixers.pick_implementation), or
                                               # layer patterns: "hybrid:mamba,mamba,attention" (suites/mixers.py)
    d_model = 64                               # lists are swept (cartesian product): d_model, lr,
    lr = [1e-3, 3e-3]                          # weight_decay, seed, and [data] seq_len
    weight_decay = 0.05
    seed = 0
    batch = 32
    timeout_s = 1800                           # per job
    dtype = "bfloat16"                         # default: bf16 autocast on a GPU, fp32 on the CPU
    lr_by_family = { s4 = 1e-2 }               # a family's own learning rate, replacing the sweep's
    dtype_by_family = { lstm = "float32" }     # a family's own dtype, replacing `dtype` (cuDNN's LSTM has no
                                               # bf16 here, and fp16 training would need loss scaling)
    [data]                                     # suites.classify.data.DataSettings
    encoding = "bytes"
    seq_len = [1024, 4096]
    [model]                                    # suites.backbone.ModelSettings
    n_layers = 2
    [train]                                    # suites.classify.train.TrainSettings
    epochs = 4
    [config]                                   # MixerConfig fields; [config.families.<f>] per family
    d_state = 16

The data folder is neither in the preset nor in the jobs' params (so a job's id is the same on every
machine): --data DIR or $SEQBENCH_IMDB, handed to the workers as $SEQBENCH_IMDB (suites/classify/cli.py).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from harness import presets, registry
from harness.errors import ConfigError, UserError
from suites import check_keys
from suites.backbone import ModelSettings
from suites.classify.data import DataSettings
from suites.classify.train import TrainSettings
from suites.mixers import check_dtype_by_family, pick_mixers
from suites.training import default_dtype, resolve_device

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets" / "classify"
SUITE = "classify"
TARGET = "suites.classify.train:run_job"
DEFAULT_PRESET = "cpu"
DEFAULT_TIMEOUT_S = 3600.0
SWEPT = ("d_model", "lr", "weight_decay", "seed")
TOP_LEVEL = frozenset(
    {
        "name",
        "description",
        "source",
        "notes",
        "device",
        "mixers",
        "batch",
        "timeout_s",
        "dtype",
        "lr_by_family",
        "dtype_by_family",
        "data",
        "model",
        "train",
        "config",
        *SWEPT,
    }
)


def preset_names() -> list[str]:
    return presets.preset_names(PRESET_DIR)


def load_preset(name_or_path: str) -> dict[str, Any]:
    preset = presets.load_preset(PRESET_DIR, SUITE, name_or_path)
    check_preset(preset)
    return preset


def check_preset(preset: dict[str, Any]) -> None:
    """Unknown keys (top level, a family under [config.families], lr_by_family or dtype_by_family) and
    unknown dtypes are one-line errors."""
    where = f"classify preset {preset['name']!r}"
    check_keys(where, preset, TOP_LEVEL)
    families = set(registry.families())
    for table in (preset.get("config", {}).get("families", {}), preset.get("lr_by_family", {})):
        unknown = sorted(set(table) - families)
        if unknown:
            raise UserError(f"{where}: unknown family {unknown[0]!r} (families: {', '.join(sorted(families))})")
    check_dtype_by_family(where, preset.get("dtype_by_family", {}))
    for key in ("batch", *SWEPT):
        if key not in preset:
            raise UserError(f"{where}: no {key}")


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def build_jobs(
    preset: dict[str, Any],
    *,
    device: str = "auto",
    mixers: tuple[str, ...] = (),
    overrides: dict[str, Any] | None = None,
) -> list[Any]:
    """The jobs of a preset. `mixers` replaces the preset's; `overrides` replaces top-level keys (lists for
    the swept ones) and merges into [data], [model] and [train]."""
    from harness.job import Job

    device = resolve_device(device).type if device == "auto" else device
    spec = dict(preset)
    for key, value in (overrides or {}).items():
        spec[key] = {**spec.get(key, {}), **value} if key in ("data", "model", "train") else value
    where = f"classify preset {preset.get('name')!r}"
    try:
        data_base = {k: v for k, v in spec.get("data", {}).items() if k != "seq_len"}
        DataSettings(**data_base)  # bad settings fail here, once, not in every worker
        train = TrainSettings.from_dict(spec.get("train", {})).to_dict()
        model = ModelSettings.from_dict(spec.get("model", {})).to_dict()
    except (ConfigError, TypeError) as exc:
        raise UserError(f"{where}: {exc}") from exc
    n_layers = model.pop("n_layers")
    dtype_name = spec.get("dtype") or default_dtype(device)
    entries = list(mixers) or _as_list(spec.get("mixers", []))
    if not entries:
        raise UserError(f"{where}: no mixers (give --name or --family)")
    choices = pick_mixers(entries, device, dtype_name, spec.get("dtype_by_family"))
    lengths = _as_list(spec.get("data", {}).get("seq_len", DataSettings().seq_len))
    timeout = float(spec.get("timeout_s", DEFAULT_TIMEOUT_S))
    jobs = []
    for choice, choice_dtype in choices:
        for seq_len, d_model, lr, weight_decay, seed in itertools.product(lengths, *(_as_list(spec[k]) for k in SWEPT)):
            data = DataSettings(**data_base, seq_len=int(seq_len)).to_dict()
            lr = spec.get("lr_by_family", {}).get(choice.family, lr)  # a hybrid's family is "hybrid"
            params = {
                # implementation and config (a hybrid: also layer_pattern and layer_configs, suites/mixers.py)
                **choice.job_params(spec.get("config", {}), int(d_model), n_layers),
                "n_layers": n_layers,
                "model": model,
                "data": data,
                "encoding": data["encoding"],
                "seq_len": int(seq_len),
                "lr": float(lr),
                "weight_decay": float(weight_decay),
                "seed": int(seed),
                "batch": int(spec["batch"]),
                "train": train,
                "device": device,
                "dtype": choice_dtype,
                "mode": "train",
                "level": "layer",
            }
            job = Job(SUITE, choice.name, TARGET, params, timeouts_s={"start": timeout})
            if job.job_id not in {j.job_id for j in jobs}:  # lr_by_family collapses a family's lr sweep
                jobs.append(job)
    return jobs
