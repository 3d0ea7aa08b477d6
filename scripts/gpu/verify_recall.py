"""Verify the recall suite on a CUDA machine: train real mixers on the GPU kernels, through the runner.

    python scripts/gpu/verify_recall.py                        # 15 minutes on an H100 (2026-11-22, --mqar-s 6,
                                                               # cold Triton caches: mostly compilation)
    python scripts/gpu/verify_recall.py --copy-s 30 --mqar-s 3 # shorter
    python scripts/gpu/verify_recall.py --mqar-lens 64,256 --copy-mixers s4,mamba/reference,attention
    OUT=/some/dir python scripts/gpu/verify_recall.py          # also /some/dir/verify_recall.json and the
                                                               # Parquet rows under /some/dir/results

0. Which implementation each family gives (suites.recall.presets.pick_implementation: the fast GPU one
   checked against the family reference when it can run here, else the reference) and why the other fast
   ones cannot run.
1. Selective copying in the style of Mamba Table 1 (vocab 16, 16 data tokens, 2 layers, D 64, batch 64,
   a fresh batch every step), shortened to fit: L 1024 instead of 4096, lr 1e-3 instead of 1e-4, and a
   wall-time budget per model (--copy-s, default 35 s of training after the first, compiling step)
   instead of 400K steps; S4, Mamba and attention. Published at L 4096 after 400K steps: S4 18.3,
   Mamba 99.8. The shape to expect: Mamba and attention far above S4.
2. A reduced Zoology Figure 2 grid: MQAR, vocab 8192, (L, pairs) = (64, 4), (128, 8), (256, 16), d_model
   64 and 128, 2 layers without MLP, one learning rate (2.15e-3, from Zoology's logspace(-4, -2, 4)),
   20,000 training examples, a training budget per cell (--mqar-s, default 6 s), early stop at 0.99;
   attention, Mamba, Mamba-2, RWKV-7 and mLSTM. Zoology's claim: attention solves MQAR at d_model 64 at
   every L (with 100,000 examples and 64 epochs: this budget shows the trend, not the final numbers).

Every job runs in the runner's isolated workers (one per implementation, so Triton compiles once per
implementation), so a kernel that aborts becomes a row with its reason; every part is wrapped so one
failure never stops the rest. Accuracies and wall times are printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere in a checkout

from harness.provenance import software_versions

COPY_MIXERS = ("s4", "mamba", "attention")
MQAR_MIXERS = ("attention", "mamba", "mamba2", "rwkv", "xlstm:mlstm")
MQAR_CELLS = ({"seq_len": 64, "n_pairs": 4, "batch": 512}, {"seq_len": 128, "n_pairs": 8, "batch": 512},
              {"seq_len": 256, "n_pairs": 16, "batch": 256})  # fmt: skip
JOB_OVERHEAD_S = 600.0  # per-job timeout beyond the training budget: worker start, compilation (a cold fla
# RWKV-7 layer compile and autotune at a new shape took over 246 s on an H100), evaluation


def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def picks(entries: tuple[str, ...], device: str) -> dict[str, dict[str, Any]]:
    """entry -> the implementation picked on cuda, and the fast ones of that family that cannot run."""
    import torch

    from harness import registry
    from suites.recall.presets import pick_implementation

    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        try:
            chosen = pick_implementation(entry, device, torch.bfloat16)
            family, _, word = entry.partition(":")
            others = {
                i.name: i.availability(device, torch.bfloat16).reason
                for i in registry.implementations()
                if i.family == family and word in i.name and not i.is_reference and i.name != chosen.name
            }
            out[entry] = {"implementation": chosen.name, "backend": chosen.backend, "not_runnable": others}
        except Exception as exc:
            out[entry] = {"implementation": None, "error": one_line(exc)}
    return out


def selective_copying_preset(budget_s: float, seq_len: int, mixers: list[str]) -> dict[str, Any]:
    return {
        "name": "verify-selective-copying",
        "mixers": mixers,
        "d_model": 64,
        "lr": 1e-3,
        "weight_decay": 0.1,
        "seed": 0,
        "batch": 64,
        "timeout_s": budget_s + JOB_OVERHEAD_S,
        "model": {"n_layers": 2, "mlp": "none"},
        "train": {
            "n_train": 0,
            "n_test": 512,
            "max_steps": 20_000,
            "warmup_frac": 0.01,
            "eval_every": 250,
            "target_accuracy": 0.995,
            "time_limit_s": budget_s,
        },
        "config": {"families": {"attention": {"n_heads": 1}}},
        "grid": [{"task": "selective-copying", "task_params": {"vocab_size": 16, "seq_len": seq_len, "n_data": 16}}],
    }


def mqar_preset(budget_s: float, mixers: list[str], lengths: list[int]) -> dict[str, Any]:
    return {
        "name": "verify-zoology-reduced",
        "mixers": mixers,
        "d_model": [64, 128],
        "lr": 2.1544347e-3,
        "weight_decay": 0.1,
        "seed": 123,
        "batch": 512,
        "timeout_s": budget_s + JOB_OVERHEAD_S,
        "model": {"n_layers": 2, "mlp": "none"},
        "train": {
            "n_train": 20_000,
            "n_test": 1_000,
            "epochs": 64,
            "warmup_frac": 0.05,
            "target_accuracy": 0.99,
            "time_limit_s": budget_s,
        },
        "config": {"families": {"attention": {"n_heads": 1}}},
        "grid": [
            {
                "task": "mqar",
                "task_params": {"vocab_size": 8192, "power_a": 0.01, "random_fillers": False},
                "cells": [cell for cell in MQAR_CELLS if cell["seq_len"] in lengths],
            }
        ],
    }


def run_part(
    name: str, preset: dict[str, Any], results_dir: Path, device: str, retry_fp32: bool = True
) -> list[dict[str, Any]]:
    """Run the preset's jobs (bf16 autocast on a GPU); jobs that raised are run again in float32 (no
    autocast), so an adapter that rejects autocast's mixed dtypes still gives a number, marked fp32."""
    from suites.recall.presets import build_jobs

    rows = _run(name, build_jobs(preset, device=device), results_dir, device)
    failed = sorted({r["implementation"] for r in rows if r["status"] == "error"})
    if retry_fp32 and failed and device == "cuda":
        print(f"[{name}] again in float32 (no autocast): {', '.join(failed)}", flush=True)
        again = build_jobs(preset, device=device, mixers=tuple(failed), overrides={"dtype": "float32"})
        rows += _run(f"{name}, float32", again, results_dir, device)
    return rows


def _run(name: str, jobs: list[Any], results_dir: Path, device: str) -> list[dict[str, Any]]:
    from harness.runner import run_jobs

    print(f"[{name}] {len(jobs)} job(s): {', '.join(sorted({j.implementation for j in jobs}))}", flush=True)

    def show(row: dict[str, Any]) -> None:
        nan = float("nan")
        print(
            f"  {label(row):<40} L={row.get('seq_len')} d={row.get('d_model')} {row['status']:<7} "
            f"acc={row.get('accuracy', nan):.3f} steps={row.get('steps')} wall={row.get('wall_s', nan):.1f}s "
            f"{row.get('reason', '')}",
            flush=True,
        )

    summary = run_jobs(
        jobs, results_dir, command=f"scripts/gpu/verify_recall.py ({name})", device=device,
        measure_ceilings=False, on_row=show, redo=True,
    )  # fmt: skip
    return summary.rows


def label(row: dict[str, Any]) -> str:
    """implementation (dtype): bf16 means bf16 autocast over fp32 weights."""
    short = {"bfloat16": "bf16", "float32": "fp32"}.get(row.get("dtype"), row.get("dtype"))
    return f"{row['implementation']} ({short})"


def print_tables(copy_rows: list[dict[str, Any]], mqar_rows: list[dict[str, Any]]) -> None:
    from suites.recall.references import reference_points

    published = {p.family: p.accuracy for p in reference_points("selective-copying") if p.family}
    print("\n== selective copying (Mamba Table 1 style; published at L 4096 after 400K steps) ==")
    print(f"{'implementation':<40} {'L':>5} {'acc %':>7} {'steps':>6} {'train s':>8} {'1st step s':>10} {'paper %':>8}")
    nan = float("nan")
    for row in copy_rows:
        paper = published.get(row.get("family"))
        note = f"{row['status']} {row.get('stop_reason', '')} {row.get('reason', '')}"
        print(
            f"{label(row):<40} {row.get('seq_len', ''):>5} {100 * row.get('accuracy', nan):>7.1f} "
            f"{row.get('steps', ''):>6} {row.get('wall_s', nan):>8.1f} {row.get('first_step_s', nan):>10.1f} "
            f"{'' if paper is None else f'{paper:.1f}':>8}  {note}"
        )
    print("\n== reduced Zoology Figure 2 (MQAR, vocab 8192; accuracy % / training s per cell) ==")
    cells = sorted({(r.get("d_model"), r.get("seq_len")) for r in mqar_rows if r.get("seq_len")})
    header = "".join(f"{f'd{d} L{L}':>16}" for d, L in cells)
    print(f"{'implementation':<40}{header}")
    for name in sorted({label(r) for r in mqar_rows}):
        line = f"{name:<40}"
        for d, L in cells:
            match = [r for r in mqar_rows if label(r) == name and r.get("d_model") == d and r.get("seq_len") == L]
            if not match:
                line += f"{'-':>16}"
            elif match[0]["status"] != "ok":
                line += f"{match[0]['status']:>16}"
            else:
                r = match[0]
                line += f"{100 * r['accuracy']:>8.1f} /{r['wall_s']:>5.1f}s"
        print(line)
    failed = [r for r in [*copy_rows, *mqar_rows] if r["status"] != "ok"]
    for r in failed:
        print(f"  {label(r)} L={r.get('seq_len')} d={r.get('d_model')}: {r['status']}: {r.get('reason', '')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copy-s", type=float, default=35.0, help="training seconds per selective-copying model")
    parser.add_argument("--copy-len", type=int, default=1024, help="selective-copying length (Mamba: 4096)")
    parser.add_argument("--mqar-s", type=float, default=6.0, help="training seconds per MQAR cell")
    parser.add_argument("--copy-mixers", default=",".join(COPY_MIXERS), help="families or implementation names")
    parser.add_argument("--mqar-mixers", default=",".join(MQAR_MIXERS), help="families or implementation names")
    parser.add_argument("--mqar-lens", default="64,128,256", help="MQAR lengths, from 64, 128, 256")
    parser.add_argument("--device", default="cuda", help="cuda; cpu only to try the plumbing with tiny budgets")
    parser.add_argument("--skip-copy", action="store_true")
    parser.add_argument("--skip-mqar", action="store_true")
    args = parser.parse_args()

    import torch

    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    results_dir = (out_dir / "results") if out_dir else Path(tempfile.mkdtemp(prefix="verify_recall_"))
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    began = time.perf_counter()

    try:
        report["environment"] = software_versions()
        print(json.dumps(report["environment"], indent=1), flush=True)
    except Exception as exc:
        report["environment"] = {"error": one_line(exc)}
        print(f"environment: {one_line(exc)}")
    device = args.device
    copy_mixers = [m.strip() for m in args.copy_mixers.split(",") if m.strip()]
    mqar_mixers = [m.strip() for m in args.mqar_mixers.split(",") if m.strip()]
    mqar_lens = [int(n) for n in args.mqar_lens.split(",") if n.strip()]
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device visible to torch: nothing to verify here")
        return

    try:
        report["picks"] = picks(tuple(dict.fromkeys(copy_mixers + mqar_mixers)), device)
        for entry, pick in report["picks"].items():
            print(f"{entry:<12} -> {pick.get('implementation')} {pick.get('error', '')}")
            for name, reason in pick.get("not_runnable", {}).items():
                if reason:
                    print(f"{'':<16}({name}: {reason})")
    except Exception as exc:
        print(f"picks: {one_line(exc)}")

    copy_rows: list[dict[str, Any]] = []
    mqar_rows: list[dict[str, Any]] = []
    if not args.skip_copy:
        try:
            preset = selective_copying_preset(args.copy_s, args.copy_len, copy_mixers)
            copy_rows = run_part("selective copying", preset, results_dir, device)
        except Exception as exc:
            print(f"selective copying: {one_line(exc)}")
            report["selective_copying_error"] = one_line(exc)
    if not args.skip_mqar:
        try:
            preset = mqar_preset(args.mqar_s, mqar_mixers, mqar_lens)
            mqar_rows = run_part("reduced Zoology", preset, results_dir, device)
        except Exception as exc:
            print(f"reduced Zoology: {one_line(exc)}")
            report["zoology_error"] = one_line(exc)

    keep = ("implementation", "family", "backend", "task", "seq_len", "d_model", "lr", "status", "reason", "accuracy",
            "loss", "steps", "wall_s", "first_step_s", "stop_reason", "params", "job_wall_s")  # fmt: skip
    report["selective_copying"] = [{k: r.get(k) for k in keep} for r in copy_rows]
    report["zoology_reduced"] = [{k: r.get(k) for k in keep} for r in mqar_rows]
    report["total_s"] = time.perf_counter() - began
    try:
        print_tables(copy_rows, mqar_rows)
    except Exception as exc:
        print(f"tables: {one_line(exc)}")
    print(f"\ntotal {report['total_s']:.0f} s; rows under {results_dir}")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "verify_recall.json").write_text(json.dumps(report, indent=1, default=str))
        print(f"wrote {out_dir / 'verify_recall.json'}")


if __name__ == "__main__":
    main()
