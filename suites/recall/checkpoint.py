"""A trained recall model saved beside its results, to be tested again later: at other lengths, in
another dtype, or through another implementation of its family (suites/recall/retest.py).

`seqbench run recall --save-models` sets SEQBENCH_RECALL_CHECKPOINT_DIR for its workers; each training
then saves the weights its rows were tested with to `<results>-logs/checkpoints/<run_id>/<job_id>.pt`
(beside the results, not in them: Parquet dataset readers refuse foreign files). A file holds what
rebuilds the model (the job's task, mixer and model settings, as JSON), the state dict, and the step and
accuracy it was saved at; `torch.load(weights_only=True)` reads it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness.errors import UserError

CHECKPOINT_DIR_ENV = "SEQBENCH_RECALL_CHECKPOINT_DIR"
FORMAT = 1  # bumped when the file's keys change


@dataclass(frozen=True)
class Checkpoint:
    job: dict[str, Any]  # task, task_params, implementation, config, n_layers, model, ... (train.run_job's)
    max_seq_len: int  # the model's position table length (learned positions stop there)
    state_dict: dict[str, torch.Tensor]
    step: int  # the training step the weights are from
    accuracy: float  # their test accuracy at the training length


def checkpoint_root(results_dir: str | Path, run_id: str) -> Path:
    from harness.results import sidecar_dir

    return sidecar_dir(results_dir) / "checkpoints" / run_id


def job_checkpoint_path(suite: str, target: str, job: dict[str, Any]) -> Path | None:
    """<the run's checkpoint folder>/<job_id>.pt (the id the runner gives the job's rows), or None when
    the run saves no models."""
    root = os.environ.get(CHECKPOINT_DIR_ENV)
    if not root:
        return None
    from harness.job import Job

    return Path(root) / f"{Job(suite, job['implementation'], target, job).job_id}.pt"


def save_checkpoint(
    path: Path, job: dict[str, Any], max_seq_len: int, state: dict[str, torch.Tensor], step: int, accuracy: float
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "job": json.dumps(job, sort_keys=True),
        "max_seq_len": int(max_seq_len),
        "state_dict": {name: tensor.detach().to("cpu") for name, tensor in state.items()},
        "step": int(step),
        "accuracy": float(accuracy),
    }
    partial = path.with_suffix(".pt.partial")  # a killed worker leaves no half-written checkpoint
    torch.save(payload, partial)
    partial.replace(path)


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint (seqbench run recall --save-models writes them)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not its own
        raise UserError(f"{path}: not a recall checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path}: not a recall checkpoint of format {FORMAT}")
    return Checkpoint(
        job=json.loads(payload["job"]),
        max_seq_len=int(payload["max_seq_len"]),
        state_dict=payload["state_dict"],
        step=int(payload["step"]),
        accuracy=float(payload["accuracy"]),
    )


def match_state_dict(saved: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`saved` renamed to `target`'s keys, for weights saved through another implementation of the same
    family: a saved key matches a target key when they are equal, or equal once one path segment of the
    saved key is dropped (a wrapper module: mamba/mamba_ssm keeps mamba_ssm's Mamba as `mixer.mamba.*`,
    the reference its parameters as `mixer.*`). Every target key needs exactly one match of its shape."""
    renamed: dict[str, torch.Tensor] = {}
    by_reduced: dict[str, list[str]] = {}
    for key in saved:
        parts = key.split(".")
        for index in range(len(parts)):
            by_reduced.setdefault(".".join(parts[:index] + parts[index + 1 :]), []).append(key)
    for key, tensor in target.items():
        candidates = [key] if key in saved else by_reduced.get(key, [])
        candidates = [c for c in candidates if saved[c].shape == tensor.shape]
        if len(candidates) != 1:
            found = f"{len(candidates)} saved weights ({', '.join(candidates)})" if candidates else "no saved weight"
            raise UserError(f"the checkpoint's weights do not fit this model: {found} for {key} {tuple(tensor.shape)}")
        renamed[key] = saved[candidates[0]]
    return renamed
