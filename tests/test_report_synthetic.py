"""A small synthetic result set covering every plot of the report, with failed jobs and hostile text.

Times follow closed forms (attention ~ L^2, a scan ~ L) so the fitted exponents are known; one option
value and some failure reasons carry markup that the report must show as text.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness import results

HOSTILE = "<script>alert('pwned')</script>"
PROVENANCE = {
    "gpu_name": "NVIDIA H100 80GB HBM3",
    "gpu_count": 1,
    "gpu_memory_bytes": 85_000_000_000,
    "driver_version": "580.65",
    "cuda_version": "13.0",
    "torch_version": "2.11.0+cu130",
    "triton_version": "3.6.0",
    "package_versions": json.dumps({"fla": "0.6.0", "mamba_ssm": "2.3.2.post1", "evil": HOSTILE}),
    "seqbench_commit": "abc1234",
    "seqbench_dirty": False,
    "host_fingerprint": "host-42",
    "peak_matmul_tflops": 716.0,
    "peak_copy_gbps": 3020.0,
}
CONFIG = {"d_model": 1024, "n_heads": 16, "head_dim": 64, "d_state": 64, "expand": 2, "chunk_size": 64}
# implementation -> (family, time per sequence in ms at L = 1024 for fwd, exponent)
IMPLEMENTATIONS = {"attention/sdpa_cudnn": ("attention", 0.05, 2.0), "mamba2/mamba_ssm": ("mamba2", 0.2, 1.0)}
LENGTHS = (1024, 2048, 4096, 8192)


def _row(run_id: str, suite: str, implementation: str, mode: str, seq_len: int, batch: int, **extra) -> dict:
    family = IMPLEMENTATIONS.get(implementation, (implementation.split("/")[0], 0, 0))[0]
    row = {
        "schema_version": results.SCHEMA_VERSION,
        "run_id": run_id,
        # a training's tests at several lengths are rows of one job, as the recall suite writes them
        "job_id": f"{suite}-{implementation}-{mode}-{seq_len}-{batch}-{extra.get('task', '')}"
        f"-{extra.get('d_model', '')}-{extra.get('lr', '')}-{extra.get('seed', '')}",
        "timestamp": "2026-11-22T18:00:00+00:00",
        "suite": suite,
        "family": family,
        "implementation": implementation,
        "backend": "cuda",
        "level": "layer",
        "mode": mode,
        "device": "cuda",
        "dtype": "bfloat16",
        "batch": batch,
        "seq_len": seq_len,
        **CONFIG,
        "status": "ok",
        "reason": "",
        "command": f"seqbench run {suite} --implementation {implementation} --mode {mode} --seq-len {seq_len}",
        **PROVENANCE,
    }
    row.update(extra)
    return row


def throughput_rows(run_id: str = "run-a", scale: float = 1.0, seed: int = 0) -> list[dict]:
    """Constant-tokens sweep: batch * seq_len = 16K; samples drawn around the closed-form median."""
    rng = np.random.default_rng(seed)
    rows = []
    for implementation, (_, base_ms, exponent) in IMPLEMENTATIONS.items():
        for mode, factor in (("fwd", 1.0), ("fwd_bwd", 3.5)):
            for seq_len in LENGTHS:
                batch = 16384 // seq_len
                median = scale * factor * base_ms * (seq_len / 1024) ** exponent * batch
                samples = median * (1 + 0.01 * rng.standard_normal(20))
                if implementation.startswith("attention") and mode == "fwd_bwd" and seq_len == 8192:
                    rows.append(
                        _row(
                            run_id,
                            "throughput",
                            implementation,
                            mode,
                            seq_len,
                            batch,
                            status="oom",
                            reason=f"CUDA out of memory. {HOSTILE}",
                        )
                    )
                    continue
                flops = 4 * batch * seq_len**2 * 1024 / 2 * factor if exponent == 2 else 60 * batch * seq_len * 1024
                min_bytes = 6 * batch * seq_len * 1024 * factor
                rows.append(
                    _row(
                        run_id,
                        "throughput",
                        implementation,
                        mode,
                        seq_len,
                        batch,
                        median_ms=float(np.median(samples)),
                        p10_ms=float(np.percentile(samples, 10)),
                        p90_ms=float(np.percentile(samples, 90)),
                        mean_ms=float(samples.mean()),
                        std_ms=float(samples.std()),
                        cv=float(samples.std() / samples.mean()),
                        reps=20,
                        samples_ms=[float(s) for s in samples],
                        compile_s=1.5,
                        timer="cuda_event",
                        flops=flops,
                        min_bytes=min_bytes,
                        tokens_per_second=batch * seq_len / (median / 1000),
                        achieved_tflops=flops / (median / 1000) / 1e12,
                        achieved_gbps=min_bytes / (median / 1000) / 1e9,
                        frac_peak_tflops=flops / (median / 1000) / 1e12 / 716,
                        frac_peak_gbps=min_bytes / (median / 1000) / 1e9 / 3020,
                    )
                )
        for context in LENGTHS:  # decode: one step at each context length
            step_ms = scale * (0.02 * context / 1024 if implementation.startswith("attention") else 0.05)
            samples = step_ms * (1 + 0.01 * rng.standard_normal(20))
            rows.append(
                _row(
                    run_id,
                    "throughput",
                    implementation,
                    "decode",
                    context,
                    8,
                    median_ms=float(np.median(samples)),
                    samples_ms=[float(s) for s in samples],
                    reps=20,
                    timer="cuda_graph",
                    tokens_per_second=8 / (step_ms / 1000),
                )
            )
    rows.append(
        _row(
            run_id,
            "throughput",
            "rwkv7/fla_chunk",
            "fwd",
            4096,
            4,
            status="crash",
            reason=f"SIGABRT in triton compile {HOSTILE}",
            opt_variant=HOSTILE,
        )
    )
    return rows


def memory_rows(run_id: str = "run-a") -> list[dict]:
    rows = []
    for implementation, (_, _, exponent) in IMPLEMENTATIONS.items():
        for mode, factor in (("fwd", 1.0), ("fwd_bwd", 3.0)):
            for seq_len in (*LENGTHS, 16384, 32768):
                if implementation.startswith("attention") and mode == "fwd_bwd" and seq_len >= 16384:
                    rows.append(
                        _row(
                            run_id,
                            "memory",
                            implementation,
                            mode,
                            seq_len,
                            4,
                            status="oom",
                            reason="torch.OutOfMemoryError: CUDA out of memory",
                        )
                    )
                    continue
                peak = factor * 4 * seq_len * 1024 * 2 * (seq_len / 1024 if exponent == 2 else 1) * 8
                rows.append(_row(run_id, "memory", implementation, mode, seq_len, 4, peak_memory_bytes=peak))
        rows.append(
            _row(
                run_id,
                "memory",
                implementation,
                "fwd_bwd",
                8192 if implementation.startswith("attention") else 32768,
                4,
                oom_frontier_seq_len=8192 if implementation.startswith("attention") else 32768,
            )
        )
        for context in LENGTHS:
            state = 2 * 1024 * context * 2 * 4 if implementation.startswith("attention") else 2048 * 64 * 2 * 4
            rows.append(
                _row(
                    run_id,
                    "memory",
                    implementation,
                    "decode",
                    context,
                    4,
                    state_bytes_analytic=state,
                    state_bytes_measured=state * 1.02,
                )
            )
    return rows


def profile_rows(trace_dir: Path, run_id: str = "run-a") -> list[dict]:
    kernels = {
        "attention/sdpa_cudnn": [
            ("cudnn_fmha_bwd", "core", 0.45),
            ("cudnn_fmha_fwd", "core", 0.2),
            ("gemm_qkv", "projection", 0.15),
            ("gemm_out", "projection", 0.1),
            ("layer_norm", "norm", 0.05),
            ("elementwise", "other", 0.03),
            ("copy", "other", 0.01),
            ("fill", "other", 0.01),
        ],
        "mamba2/mamba_ssm": [
            ("_chunk_scan_bwd_dx", "core", 0.3),
            ("_chunk_state_fwd", "core", 0.2),
            ("causal_conv1d_bwd", "convolution", 0.15),
            ("gemm_in_proj", "projection", 0.15),
            ("rmsnorm_gated", "gating", 0.1),
            ("gemm_out_proj", "projection", 0.06),
            ("copy", "other", 0.02),
            ("fill", "other", 0.02),
        ],
    }
    rows = []
    for implementation, entries in kernels.items():
        trace = trace_dir / implementation.replace("/", "_") / "host.pt.trace.json"
        trace.parent.mkdir(parents=True, exist_ok=True)
        trace.write_text(json.dumps({"traceEvents": []}))
        step_us = 12_000.0 if implementation.startswith("attention") else 9_000.0
        for name, part, share in entries:
            rows.append(
                _row(
                    run_id,
                    "profile",
                    implementation,
                    "fwd_bwd",
                    8192,
                    2,
                    kernel_name=name + "_kernel<float, 128>",
                    kernel_short=name,
                    part=part,
                    calls=2,
                    device_time_us=share * step_us * 5,
                    self_device_time_us=share * step_us * 5,
                    share=share,
                    step_device_time_us=step_us,
                    step_wall_time_us=step_us * 1.1,
                    launches=40,
                    host_gap_us=step_us * 0.1,
                    trace_path=str(trace),
                )
            )
    return rows


def recall_rows(run_id: str = "run-a") -> list[dict]:
    rows = []
    accuracy_of = {  # (implementation, seq_len, d_model) -> accuracy: attention solves it, the LTI mixer needs width
        "attention/reference": lambda seq_len, d_model: 0.99,
        "s4/reference": lambda seq_len, d_model: min(0.95, 0.2 * d_model / 64 * 128 / seq_len),
    }
    for implementation, accuracy in accuracy_of.items():
        for seq_len in (64, 128):
            for d_model in (64, 128, 256):
                for lr in (1e-3, 3e-3):
                    for seed in (0, 1):
                        value = accuracy(seq_len, d_model) - (0.05 if lr == 1e-3 else 0.0) + 0.01 * seed
                        rows.append(
                            _row(
                                run_id,
                                "recall",
                                implementation,
                                "train",
                                seq_len,
                                64,
                                task="mqar",
                                d_model=d_model,
                                lr=lr,
                                seed=seed,
                                accuracy=min(value, 1.0),
                                loss=1 - value,
                                steps=500,
                                wall_s=12.0,
                                params=100_000,
                                vocab_size=8192,
                                n_layers=2,
                            )
                        )
    for implementation in accuracy_of:
        for eval_len in (256, 512, 1024):
            value = 1.0 if implementation.startswith("attention") and eval_len <= 256 else 0.3
            rows.append(
                _row(
                    run_id,
                    "recall",
                    implementation,
                    "train",
                    256,
                    64,
                    task="induction-heads",
                    d_model=64,
                    lr=1e-3,
                    seed=0,
                    accuracy=value,
                    eval_seq_len=eval_len,
                    vocab_size=16,
                    n_layers=2,
                )
            )
    rows.append(
        _row(
            run_id,
            "recall",
            "rwkv7/fla_chunk",
            "train",
            64,
            64,
            task="mqar",
            d_model=64,
            lr=1e-3,
            seed=0,
            status="unavailable",
            reason="fla is not installed (pip install flash-linear-attention)",
        )
    )
    return rows


# In the recall suite's form (suites/recall/references.py): percentages, claims without a number.
TABLE2 = "Mamba (arXiv 2312.00752), Table 2: induction heads, trained at L 256"
REFERENCES = [
    {"task": "mqar", "model": "attention", "accuracy": 100.0, "d_model": 64, "seq_len": 64,
     "source": "Zoology (arXiv 2312.04927), Fig. 2: MQAR"},
    {"task": "mqar", "model": "Attention (1 head)", "accuracy": None, "d_model": 64, "seq_len": 128,
     "claim": "solves MQAR at d_model 64", "source": "Zoology (arXiv 2312.04927), Fig. 2: MQAR"},
    {"task": "mqar", "model": "Based", "accuracy": 95.0, "d_model": 128, "seq_len": 512,
     "source": "made up: a length we did not run"},
    {"task": "mqar", "model": "Based <i>", "accuracy": 0.9, "d_model": None, "seq_len": None,
     "source": f"made up for the test {HOSTILE}"},
    {"task": "induction-heads", "model": "MHA-RoPE", "accuracy": 83.6, "seq_len": 256, "eval_seq_len": 512,
     "source": TABLE2},
    {"task": "induction-heads", "model": "MHA-RoPE", "accuracy": 31.3, "seq_len": 256, "eval_seq_len": 1024,
     "source": TABLE2},
]  # fmt: skip


def check_rows(run_id: str = "run-a") -> list[dict]:
    """Correctness checks: the job ran (status ok) and `passed` gives the verdict."""
    return [
        _row(
            run_id,
            "check",
            "attention/sdpa_cudnn",
            "fwd",
            256,
            2,
            test="parallel",
            rms_ratio=0.004,
            tolerance=0.02,
            passed=True,
        ),
        _row(
            run_id,
            "check",
            "mamba2/mamba_ssm",
            "fwd",
            256,
            2,
            test="recurrent",
            rms_ratio=0.31,
            tolerance=0.02,
            passed=False,
            reason=f"rms ratio 0.31 > 0.02 {HOSTILE}",
        ),
    ]


def all_rows(trace_dir: Path, run_id: str = "run-a") -> list[dict]:
    return (
        throughput_rows(run_id)
        + memory_rows(run_id)
        + profile_rows(trace_dir, run_id)
        + recall_rows(run_id)
        + check_rows(run_id)
    )
