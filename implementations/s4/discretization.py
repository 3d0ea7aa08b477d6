"""Discretization: from the continuous SSM x'(t) = A x(t) + B u(t) to the recurrence x_k = A-bar x_{k-1} + B-bar u_k.

With step size Delta (S4, arXiv 2111.00396, Sec. 2.3; the generalized bilinear transform of the HiPPO and LSSL papers):

    zero-order hold (u constant over each step, exact for such inputs):
        A-bar = exp(Delta A),     B-bar = (Delta A)^{-1} (exp(Delta A) - I) Delta B

    generalized bilinear transform (GBT), alpha in [0, 1]:
        A-bar = (I - alpha Delta A)^{-1} (I + (1 - alpha) Delta A),     B-bar = (I - alpha Delta A)^{-1} Delta B
        alpha = 0: forward Euler,  alpha = 1: backward Euler,  alpha = 1/2: the bilinear (Tustin) transform,
        the one S4 uses (S4 eq. 3) because it keeps the DPLR structure within reach of the Cauchy kernel.

Both functions take a dense A (..., N, N), or with `diagonal=True` the diagonal of a diagonal A (..., N)
(S4D), and B (..., N); Delta broadcasts over the leading dimensions (one step size per channel).
"""

from __future__ import annotations

import torch

from harness.errors import ConfigError


def check_step_size(dt: torch.Tensor | float) -> None:
    if isinstance(dt, torch.Tensor) and dt.device.type != "cpu":
        return  # reading a GPU tensor would stall the stream; the layers make Delta = exp(log Delta) > 0 anyway
    values = torch.as_tensor(dt)
    if values.is_complex() or not bool((values > 0).all()):
        raise ConfigError("dt", f"the step size Delta must be real and > 0, got {_describe(values)}")


def check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError("alpha", f"the generalized bilinear transform needs alpha in [0, 1], got {alpha!r}")


def _describe(values: torch.Tensor) -> str:
    return f"{values.item()!r}" if values.numel() == 1 else f"min {values.real.min().item()!r}"


def _as_column(dt: torch.Tensor | float, like: torch.Tensor, dims: int) -> torch.Tensor:
    """Delta with `dims` trailing singleton dimensions so it broadcasts against A's last dimensions."""
    dt = torch.as_tensor(dt, dtype=like.real.dtype, device=like.device)
    return dt.reshape(*dt.shape, *([1] * dims))


def _solve(matrix: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """matrix^{-1} rhs without the singularity check: torch.linalg.solve reads LU's info flag back to the
    host, a synchronisation that a CUDA-graph capture of the training step refuses. (I - Delta/2 A) is
    invertible for the stable A these layers keep, so the check has nothing to catch."""
    return torch.linalg.solve_ex(matrix, rhs, check_errors=False).result


def zoh(
    A: torch.Tensor, B: torch.Tensor, dt: torch.Tensor | float, *, diagonal: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-order hold: A-bar = exp(Delta A), B-bar = (Delta A)^{-1} (exp(Delta A) - I) Delta B.

    The closed form for B-bar needs an invertible A (true of every HiPPO matrix and S4D init)."""
    check_step_size(dt)
    if diagonal:
        dtA = _as_column(dt, A, 1) * A
        A_bar = torch.exp(dtA)
        return A_bar, (A_bar - 1) / dtA * _as_column(dt, A, 1) * B
    dtA = _as_column(dt, A, 2) * A
    A_bar = torch.linalg.matrix_exp(dtA)
    identity = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    dtB = _as_column(dt, B, 1) * B
    B_bar = _solve(dtA, ((A_bar - identity) @ dtB.unsqueeze(-1))).squeeze(-1)
    return A_bar, B_bar


def bilinear(
    A: torch.Tensor, B: torch.Tensor, dt: torch.Tensor | float, alpha: float = 0.5, *, diagonal: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized bilinear transform with dA = Delta A:

    A-bar = (I - alpha dA)^{-1} (I + (1 - alpha) dA),     B-bar = (I - alpha dA)^{-1} Delta B."""
    check_step_size(dt)
    check_alpha(alpha)
    if diagonal:
        dtA = _as_column(dt, A, 1) * A
        inverse = 1 / (1 - alpha * dtA)
        return inverse * (1 + (1 - alpha) * dtA), inverse * _as_column(dt, A, 1) * B
    dtA = _as_column(dt, A, 2) * A
    identity = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    dtB = _as_column(dt, B, 1) * B
    left = identity - alpha * dtA
    A_bar = _solve(left, identity + (1 - alpha) * dtA)
    B_bar = _solve(left, dtB.unsqueeze(-1)).squeeze(-1)
    return A_bar, B_bar


def bilinear_dplr(Lambda: torch.Tensor, p: torch.Tensor, dt: torch.Tensor | float) -> torch.Tensor:
    """The bilinear A-bar = (I - dA/2)^{-1} (I + dA/2) of a DPLR A = diag(Lambda) - p p*, dense (..., N, N),
    from the full Lambda, p (..., N), without a linear solve.

    With left = I - (Delta/2) A = D^{-1} + (Delta/2) p p*, D = diag(1 / (1 - (Delta/2) Lambda)), the
    Sherman-Morrison (rank-one Woodbury) identity gives left^{-1} = D - (Delta/2) D p p* D / (1 + (Delta/2)
    p* D p), the step the S4 paper's DPLR discretization rests on; and I + (Delta/2) A = 2 I - left, so
    A-bar = 2 left^{-1} - I. Elementwise products only: a CUDA graph captures it, where torch's batched
    complex solve (bilinear above) was refused during capture for 256 channels on an H200 (2026-12-02)."""
    check_step_size(dt)
    half_step = _as_column(dt, Lambda, 1) / 2  # (..., 1)
    d = 1 / (1 - half_step * Lambda)  # the diagonal of D
    dp = d * p
    denominator = 1 + half_step * (p.conj() * dp).sum(-1, keepdim=True)  # (..., 1)
    inverse = (
        torch.diag_embed(d) - (half_step / denominator)[..., None] * dp[..., :, None] * (p.conj() * d)[..., None, :]
    )
    identity = torch.eye(Lambda.shape[-1], dtype=inverse.dtype, device=inverse.device)
    return 2 * inverse - identity
