"""Published performance anchors, and the rows of ours that reproduce them.

Each `Anchor` is one published number (with its source, from REFERENCES.md) and the exact job that
measures the same thing here: implementation, level, mode, sequence length, tokens per call (B·L) and
the config fields that fix the shape (d_model, n_heads). The throughput preset `anchors` runs those jobs;
any results that hold such rows (the H100 baseline, a user's own run) get the comparison table.

Beside the numbers, the seeds' claims are recomputed from measured times rather than looked up:
Mamba-2's SSD against Mamba's scan (2-8x), where SSM layers overtake attention (~2K tokens), the scaling
exponents (attention ≈ 2, SSMs ≈ 1) and the attention/SSM time ratios at 2K, 8K and 128K.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from harness.report.analysis import fit_scaling_exponent
from harness.report.data import key_text, numeric, ok_rows

# Beyond this relative difference the table says so, and a closing note must explain why.
TOLERANCE = 0.20

FA2 = "FlashAttention-2 benchmark (Dao-AILab/flash-attention assets, H100 SXM5)"
FA3 = "FlashAttention-3 paper (Shah et al. 2024, arXiv 2407.08608), H100"
TFLA = "TFLA paper (Beck et al. 2025, arXiv 2503.14376; NX-AI/mlstm_kernels data), H100"


@dataclass(frozen=True)
class Anchor:
    """One published number and the job of ours that measures the same quantity."""

    what: str  # the published quantity, in words
    published: float
    unit: str  # "TFLOP/s" (achieved_tflops) or "ms" (median_ms)
    source: str
    implementation: str
    mode: str
    seq_len: int
    tokens: int  # batch · seq_len
    shape: dict[str, int] = field(default_factory=dict)  # config fields that must match
    level: str = "op"
    note: str = ""  # why ours may differ (docs/anomalies.md), shown beside the verdict

    @property
    def column(self) -> str:
        return "achieved_tflops" if self.unit == "TFLOP/s" else "median_ms"


def _attention(what: str, published: float, implementation: str, mode: str, head_dim: int, source: str) -> Anchor:
    shape = {"d_model": 2048, "n_heads": 2048 // head_dim}
    return Anchor(what, published, "TFLOP/s", source, implementation, mode, 16384, 16384, shape)


_TFLA_SHAPES: dict[str, dict[str, int]] = {
    "attention/sdpa_cudnn": {"d_model": 4096, "n_heads": 32},
    "xlstm/mlstm_kernels_xl_chunk_siging": {"d_model": 2048, "n_heads": 16, "chunk_size": 128},
    "xlstm/mlstm_kernels_xl_chunk": {"d_model": 2048, "n_heads": 16, "chunk_size": 128},
    "xlstm/xlstm_large_triton": {"d_model": 4096, "n_heads": 16, "chunk_size": 64},
    "mamba2/mamba_ssm_ssd": {"d_model": 2048, "n_heads": 64},
    "mamba2/fla_simple_gla": {"d_model": 2048, "n_heads": 64},
    "mamba/mamba_ssm_scan": {"d_model": 2048},
}
# TFLA's constant-token table (B·L = 65,536), fwd+bwd ms at L = 512, 8K, 64K, and forward at 8K.
_TFLA_FWD_BWD: dict[str, tuple[str, tuple[float, float, float]]] = {
    "attention/sdpa_cudnn": ("FlashAttention-3, 32 heads × 128", (12.69, 32.29, 227.0)),
    "xlstm/mlstm_kernels_xl_chunk_siging": ("mLSTMsig TFLA (chunk 128)", (12.70, 12.84, 15.02)),
    "xlstm/mlstm_kernels_xl_chunk": ("mLSTMexp TFLA (chunk 128)", (15.33, 15.23, 17.50)),
    "xlstm/xlstm_large_triton": ("mLSTMexp limit_chunk (chunk 64)", (20.08, 20.03, 25.89)),
    "mamba2/mamba_ssm_ssd": ("Mamba-2 SSD, 64 heads × 64", (28.10, 26.95, 26.86)),
    "mamba/mamba_ssm_scan": ("Mamba selective scan", (27.65, 32.01, 34.43)),
    "mamba2/fla_simple_gla": ("fla chunk_simple_gla", (11.93, 13.19, 14.63)),
}
# Where our job is not the paper's (docs/anomalies.md has the evidence), said beside each of its numbers.
_TFLA_NOTES: dict[str, str] = {
    "xlstm/mlstm_kernels_xl_chunk_siging": (
        "Explained, shape: ours q/k 256 × v 256 per head, the paper's table q/k 128 × v 256 (normalize=False): "
        "1.7x the FLOPs, the measured ratio. The paper's own head-dim sweep at q/k = v = 256 (B 4, L 8192) took "
        "12.16 ms fwd+bwd, 4.08 fwd for half our tokens. docs/anomalies.md"
    ),
    "mamba2/mamba_ssm_ssd": (
        "Partly explained, not the same function: the paper timed mamba_split_conv1d_scan_combined (conv1d + "
        "SSD + z gate, d_state 64, fp32 leaf inputs, gradients accumulated), ours mamba_chunk_scan_combined "
        "alone (d_state 128). Forward agrees; the gap is in the backward. docs/anomalies.md"
    ),
}
_TFLA_FWD_8K: dict[str, tuple[str, float]] = {
    "attention/sdpa_cudnn": ("FlashAttention-3", 7.48),
    "xlstm/mlstm_kernels_xl_chunk_siging": ("mLSTMsig TFLA", 4.39),
    "xlstm/mlstm_kernels_xl_chunk": ("mLSTMexp TFLA", 6.37),
    "mamba2/mamba_ssm_ssd": ("Mamba-2 SSD", 3.63),
}


def published_anchors() -> list[Anchor]:
    anchors = [
        _attention("FA2 fwd+bwd causal, head dim 64, L 16K", 284, "attention/sdpa_flash", "fwd_bwd", 64, FA2),
        _attention("FA2 fwd+bwd causal, head dim 128, L 16K", 328, "attention/sdpa_flash", "fwd_bwd", 128, FA2),
        _attention("FA2 fwd causal, head dim 128, L 16K", 335, "attention/sdpa_flash", "fwd", 128, FA3),
        _attention("cuDNN fwd causal, head dim 128, L 16K", 539, "attention/sdpa_cudnn", "fwd", 128, FA3),
    ]
    for implementation, (label, times_ms) in _TFLA_FWD_BWD.items():
        for seq_len, ms in zip((512, 8192, 65536), times_ms, strict=True):
            what = f"{label}: fwd+bwd, B·L 65,536, L {seq_len}"
            shape, note = _TFLA_SHAPES[implementation], _TFLA_NOTES.get(implementation, "")
            anchors.append(Anchor(what, ms, "ms", TFLA, implementation, "fwd_bwd", seq_len, 65536, shape, note=note))
    for implementation, (label, ms) in _TFLA_FWD_8K.items():
        what = f"{label}: fwd, B·L 65,536, L 8192"
        shape, note = _TFLA_SHAPES[implementation], _TFLA_NOTES.get(implementation, "")
        anchors.append(Anchor(what, ms, "ms", TFLA, implementation, "fwd", 8192, 65536, shape, note=note))
    return anchors


def _matching(rows: pd.DataFrame, anchor: Anchor) -> pd.DataFrame:
    """Rows (any status) of the job that measures `anchor`, newest last."""
    if rows.empty or "implementation" not in rows.columns:
        return rows.iloc[0:0]
    mask = (
        (rows["implementation"] == anchor.implementation)
        & (rows.get("level") == anchor.level)
        & (rows.get("mode") == anchor.mode)
        & (numeric(rows, "seq_len") == anchor.seq_len)
        & (numeric(rows, "batch") * numeric(rows, "seq_len") == anchor.tokens)
    )
    for name, value in anchor.shape.items():
        mask &= numeric(rows, name) == value
    found = rows[mask.fillna(False)]
    return found.sort_values("timestamp") if "timestamp" in found.columns else found


def anchor_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One line per published anchor: ours (or why there is none), published, ratio, >20% mark, and the
    anchor's note where our job is known not to be the paper's (docs/anomalies.md).

    Empty when the results hold no anchor job at all (a report of other sweeps stays free of it)."""
    rows = frame[frame["suite"] == "throughput"] if "suite" in frame.columns else frame
    lines: list[dict[str, Any]] = []
    for anchor in published_anchors():
        found = _matching(rows, anchor)
        if found.empty:
            continue
        ok = ok_rows(found)
        measured = float(numeric(ok, anchor.column).iloc[-1]) if not ok.empty else float("nan")
        ratio = measured / anchor.published if np.isfinite(measured) else float("nan")
        if np.isfinite(ratio):
            verdict = "within 20%" if abs(ratio - 1) <= TOLERANCE else f"differs by {abs(ratio - 1):.0%}"
        else:
            last = found.iloc[-1]
            verdict = f"not measured: {last.get('status')}: {last.get('reason')}"
        lines.append(
            {
                "anchor": anchor.what,
                "implementation": anchor.implementation,
                "shape": ", ".join(f"{k} {v}" for k, v in anchor.shape.items()),
                "unit": anchor.unit,
                "measured": measured,
                "published": anchor.published,
                "ratio": ratio,
                "verdict": verdict,
                "note": anchor.note,
                "source": anchor.source,
            }
        )
    return pd.DataFrame(lines)


# --------------------------------------------------------------------------------------- claims

ATTENTION_LAYERS = ("attention/sdpa_flash", "attention/sdpa_cudnn")
SSM_LAYERS = ("mamba/mamba_ssm", "mamba2/mamba_ssm", "rwkv/rwkv7_fla_layer", "xlstm/xlstm_large_triton", "s4/cufft")
RATIO_LENGTHS = (2048, 8192, 131072)
EXPECTED_EXPONENT = {"attention": 2.0, "other": 1.0}


def scaling_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The anchors preset's scaling sweep: layer forward at batch 1, ok rows, one per (implementation, L)."""
    rows = ok_rows(frame)
    if rows.empty or "level" not in rows.columns:  # nothing measured (an oom row alone): none, with the columns
        rows = rows.iloc[0:0]
    else:
        rows = rows[(rows["suite"] == "throughput") & (rows["level"] == "layer") & (rows["mode"] == "fwd")]
        rows = rows[(numeric(rows, "batch") == 1) & rows["implementation"].isin(ATTENTION_LAYERS + SSM_LAYERS)]
    rows = rows.assign(_seq_len=numeric(rows, "seq_len"), _ms=numeric(rows, "median_ms"))
    if "timestamp" in rows.columns:
        rows = rows.sort_values("timestamp")
    return rows.drop_duplicates(["implementation", "_seq_len"], keep="last").sort_values("_seq_len")


def is_anchor_row(frame: pd.DataFrame) -> pd.Series:
    """True for the rows of the anchors preset (its command names it): their shapes are the papers', not
    the suite's, so the scaling plots leave them to the anchor plot and tables of their own."""
    command = frame["command"] if "command" in frame.columns else pd.Series("", index=frame.index)
    return command.map(key_text).str.contains(r"--preset[ =]anchors\b", regex=True)


def _times(rows: pd.DataFrame, implementation: str) -> dict[float, float]:
    mine = rows[rows["implementation"] == implementation]
    return dict(zip(mine["_seq_len"], mine["_ms"], strict=True))


def exponent_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Fitted slope of log(time) vs log(L) over the longest lengths, against the expected exponent."""
    rows = scaling_rows(frame)
    lines = []
    for implementation in ATTENTION_LAYERS + SSM_LAYERS:
        times = _times(rows, implementation)
        exponent = fit_scaling_exponent(list(times), list(times.values()), longest=4)
        if exponent is None:
            continue
        expected = EXPECTED_EXPONENT["attention" if implementation.startswith("attention/") else "other"]
        lengths = sorted(times)[-4:]
        lines.append(
            {
                "implementation": implementation,
                "fitted over L": f"{int(lengths[0])}..{int(lengths[-1])}",
                "exponent": exponent,
                "expected": expected,
                "verdict": "as claimed" if abs(exponent - expected) <= 0.3 else "differs from the claim",
            }
        )
    return pd.DataFrame(lines)


def ratio_table(frame: pd.DataFrame, attention: str = "attention/sdpa_flash") -> pd.DataFrame:
    """Attention layer time / SSM layer time at 2K, 8K and 128K (above 1: the SSM layer is faster), and
    the shortest L from which each SSM layer stays faster than attention."""
    rows = scaling_rows(frame)
    reference = _times(rows, attention)
    lines = []
    for implementation in SSM_LAYERS:
        times = _times(rows, implementation)
        if not times or not reference:
            continue
        line: dict[str, Any] = {"SSM layer": implementation, "attention": attention}
        for seq_len in RATIO_LENGTHS:
            both = seq_len in times and seq_len in reference
            line[f"ratio at {seq_len}"] = reference[seq_len] / times[seq_len] if both else float("nan")
        common = sorted(set(times) & set(reference))
        faster_from = None
        for seq_len in reversed(common):  # the shortest L from which the SSM is faster at every longer L
            if times[seq_len] < reference[seq_len]:
                faster_from = seq_len
            else:
                break
        line["faster from L"] = float(faster_from) if faster_from is not None else float("nan")
        lines.append(line)
    return pd.DataFrame(lines)


def ssd_speedup_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mamba's scan time / Mamba-2's SSD time in the TFLA sweep (same B·L, d_inner 4096), per L and mode:
    the Mamba-2 paper's claim is 2-8x."""
    rows = ok_rows(frame)
    if rows.empty or "implementation" not in rows.columns:
        return pd.DataFrame()
    rows = rows[(rows["suite"] == "throughput") & (rows["level"] == "op") & (numeric(rows, "d_model") == 2048)]
    rows = rows[numeric(rows, "batch") * numeric(rows, "seq_len") == 65536]
    lines = []
    for mode in ("fwd", "fwd_bwd"):
        for seq_len in (512, 8192, 65536):
            at = rows[(rows["mode"] == mode) & (numeric(rows, "seq_len") == seq_len)]
            scan = numeric(at[at["implementation"] == "mamba/mamba_ssm_scan"], "median_ms")
            ssd = numeric(at[at["implementation"] == "mamba2/mamba_ssm_ssd"], "median_ms")
            if scan.empty or ssd.empty:
                continue
            speedup = float(scan.iloc[-1] / ssd.iloc[-1])
            lines.append(
                {
                    "mode": mode,
                    "seq_len": seq_len,
                    "scan ms": float(scan.iloc[-1]),
                    "SSD ms": float(ssd.iloc[-1]),
                    "SSD speedup": speedup,
                    "verdict": "within the claimed 2-8x" if 2 <= speedup <= 8 else "outside the claimed 2-8x",
                }
            )
    return pd.DataFrame(lines)
