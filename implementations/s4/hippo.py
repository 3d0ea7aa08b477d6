"""HiPPO matrices and the NPLR / DPLR form of HiPPO-LegS.

HiPPO (Gu et al. 2020, arXiv 2008.07669) asks: which linear ODE keeps, at every time t, the coefficients
c(t) of the best polynomial approximation of the input's history f(s), s <= t, under a measure mu(t)?
For each measure the answer is a pair (A, B). We write them in the HiPPO paper's sign convention,
every matrix with positive diagonal, and the dynamics carry the minus sign:

    LegS  (scaled Legendre, measure uniform on [0, t]):       dc/dt = -(1/t) A c + (1/t) B f      (HiPPO Thm. 2)
    LegT  (translated Legendre, uniform on [t - theta, t]):  dc/dt = -A c + B f                  (HiPPO Thm. 1)
    LagT  (translated Laguerre, weight e^-(t - s) on s <= t): dc/dt = -A c + B f                 (HiPPO Thm. 1)

The state space model that S4 builds on, x' = A x + B u (S4 eq. 1), uses A_ssm = -A. Dropping LegS's
1/t gives the time-invariant system x' = -A x + B u, whose impulse response e^{-tA} B is the basis of
exponentially warped Legendre polynomials sqrt(2n+1) P_n(2e^-t - 1) e^-t ("How to train your HiPPO",
arXiv 2206.12037); the tests check that closed form.

HiPPO-LegS is not normal, and diagonalising it directly is numerically hopeless: its eigenvector matrix
has entries as large as 2^(4N/3) (S4, arXiv 2111.00396, Lemma 3.2). S4's Theorem 1 instead writes it as a
normal matrix minus a low-rank one (NPLR),

    A_ssm = -A_LegS = V Lambda V* - P P^T,      P_n = sqrt(n + 1/2),

because -A_LegS + P P^T = -I/2 + S with S skew-symmetric. A skew-symmetric matrix is diagonalised
stably by a *unitary* V (i S is Hermitian, so `eigh` applies), which gives the DPLR form used by S4:

    A_ssm = V (Lambda - p p*) V*,      Lambda = -1/2 + i omega,   p = V* P,   B~ = V* B.

The eigenvalues of a real matrix come in conjugate pairs; we keep the N/2 with positive imaginary part
and let the other half be their conjugates (what S4 calls conjugate symmetry).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from harness.errors import ConfigError

F64 = torch.float64


def _check_size(N: int) -> None:
    if isinstance(N, bool) or not isinstance(N, int) or N < 1:
        raise ConfigError("N", f"the HiPPO state size must be a positive integer, got {N!r}")


def hippo_legs(N: int) -> tuple[torch.Tensor, torch.Tensor]:
    """HiPPO-LegS (HiPPO Theorem 2): for dc/dt = -(1/t) A c + (1/t) B f,

        A_nk = sqrt(2n+1) sqrt(2k+1)  if n > k,   n + 1  if n = k,   0  if n < k;     B_n = sqrt(2n+1).

    c_n(t) are the coefficients of f on [0, t] in the basis sqrt(2n+1) P_n(2s/t - 1), orthonormal under ds/t
    (`legs_reconstruct` turns them back into a signal). Returns float64 A (N, N) and B (N,).
    """
    _check_size(N)
    n = torch.arange(N, dtype=F64)
    r = torch.sqrt(2 * n + 1)
    A = torch.tril(r[:, None] * r[None, :], diagonal=-1) + torch.diag(n + 1)
    return A, r.clone()


def hippo_legt(N: int, theta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """HiPPO-LegT (HiPPO Thm. 1, derived in its appendix), a sliding window of length theta: for dc/dt = -A c + B f,

        A_nk = (1/theta) sqrt(2n+1) sqrt(2k+1) * (1 if k <= n, (-1)^(n-k) if k > n);     B_n = sqrt(2n+1) / theta.

    c_n(t) are the coefficients of f on [t - theta, t] in the orthonormal basis sqrt(2n+1) P_n(x), with
    x = 2(s - t)/theta + 1 running from -1 (oldest) to +1 (newest). This is the HiPPO paper's LegT (the
    LMU's matrix, normalised) up to the substitution c_n -> (-1)^n c_n, which flips the window's orientation.
    The ODE is exact up to the one approximation LegT makes: f(t - theta) is read off the coefficients.
    """
    _check_size(N)
    if not theta > 0:
        raise ConfigError("theta", f"the LegT window length must be > 0, got {theta!r}")
    n = torch.arange(N, dtype=F64)
    r = torch.sqrt(2 * n + 1)
    row, col = n[:, None], n[None, :]
    sign = torch.where(col <= row, torch.ones(()), (-1.0) ** (row - col))
    return r[:, None] * r[None, :] * sign / theta, r / theta


def hippo_lagt(N: int, beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """HiPPO-LagT (HiPPO Theorem 1), exponentially decaying memory: for dc/dt = -A c + B f,

        A_nk = beta  if n >= k,  0  if n < k;     B_n = beta.

    c_n(t) = integral of f(t - y) L_n(beta y) beta e^(-beta y) dy over y >= 0, the coefficients of the past
    in the Laguerre basis L_n (`laguerre`). The impulse response is e^{-tA} B = beta L_n(beta t) e^(-beta t).
    """
    _check_size(N)
    if not beta > 0:
        raise ConfigError("beta", f"the LagT time scale must be > 0, got {beta!r}")
    return beta * torch.tril(torch.ones(N, N, dtype=F64)), beta * torch.ones(N, dtype=F64)


# ---------------------------------------------------------------------------------------------
# Orthogonal polynomials, to turn coefficients back into signals


def legendre(N: int, x: torch.Tensor) -> torch.Tensor:
    """P_0(x), ..., P_{N-1}(x) by Bonnet's recurrence (n+1) P_{n+1} = (2n+1) x P_n - n P_{n-1}; (N, *x.shape)."""
    _check_size(N)
    values = [torch.ones_like(x), x]
    for n in range(1, N - 1):
        values.append(((2 * n + 1) * x * values[n] - n * values[n - 1]) / (n + 1))
    return torch.stack(values[:N])


def laguerre(N: int, x: torch.Tensor) -> torch.Tensor:
    """L_0(x), ..., L_{N-1}(x) by (n+1) L_{n+1} = (2n+1-x) L_n - n L_{n-1}; orthonormal under e^-x on x >= 0."""
    _check_size(N)
    values = [torch.ones_like(x), 1 - x]
    for n in range(1, N - 1):
        values.append(((2 * n + 1 - x) * values[n] - n * values[n - 1]) / (n + 1))
    return torch.stack(values[:N])


def legs_reconstruct(c: torch.Tensor, t: float, s: torch.Tensor) -> torch.Tensor:
    """The signal that LegS coefficients c (N,) at time t describe: f(s) ~ sum_n c_n sqrt(2n+1) P_n(2s/t - 1)."""
    n = torch.arange(c.shape[-1], dtype=c.dtype)
    return torch.einsum("n,n...->...", c * torch.sqrt(2 * n + 1), legendre(c.shape[-1], 2 * s / t - 1))


def legt_reconstruct(c: torch.Tensor, t: float, theta: float, s: torch.Tensor) -> torch.Tensor:
    """The window that LegT coefficients describe: f(s) ~ sum_n c_n sqrt(2n+1) P_n(2(s - t)/theta + 1)."""
    n = torch.arange(c.shape[-1], dtype=c.dtype)
    return torch.einsum("n,n...->...", c * torch.sqrt(2 * n + 1), legendre(c.shape[-1], 2 * (s - t) / theta + 1))


# ---------------------------------------------------------------------------------------------
# The NPLR / DPLR form of HiPPO-LegS (S4 Theorem 1)


class DPLR(NamedTuple):
    """A_ssm = V (diag(Lambda) - p p*) V*, B~ = V* B, on the N/2 modes with positive imaginary part.

    Each tensor holds one of every conjugate pair; the full N-dimensional system is that half followed by
    its conjugate (`conjugate_pairs`). Lambda, P, B: (N/2,) complex128; V: (N, N/2) complex128, orthonormal columns.
    """

    Lambda: torch.Tensor
    P: torch.Tensor
    B: torch.Tensor
    V: torch.Tensor


def legs_low_rank_term(N: int) -> torch.Tensor:
    """P with P_n = sqrt(n + 1/2): -A_LegS + P P^T = -I/2 + S, S skew-symmetric (S4 Sec. 3.2)."""
    _check_size(N)
    return torch.sqrt(torch.arange(N, dtype=F64) + 0.5)


def conjugate_pairs(half: torch.Tensor) -> torch.Tensor:
    """The full set of modes from one of each conjugate pair: [v, conj(v)] along the last dimension."""
    return torch.cat([half, half.conj()], dim=-1)


def legs_dplr(N: int) -> DPLR:
    """The DPLR form of HiPPO-LegS of size N (even), computed stably: diagonalise the skew-symmetric part
    of the normal matrix with `eigh` (unitary V), never the non-normal LegS matrix itself."""
    _check_size(N)
    if N % 2:
        raise ConfigError("N", f"conjugate pairs need an even state size, got {N}")
    A, B = hippo_legs(N)
    P = legs_low_rank_term(N)
    normal = -A + P[:, None] * P[None, :]  # = -I/2 + S, S = (normal - normal^T)/2 skew-symmetric
    real_part = torch.diagonal(normal).mean()  # exactly -1/2
    skew = (normal - normal.T) / 2
    # i S is Hermitian: eigh gives real omega and a unitary V with S V = V diag(i omega).
    omega, V = torch.linalg.eigh(-1j * skew.to(torch.complex128))
    # Eigenvalues of a real skew-symmetric matrix come in pairs +-omega (none zero for even N);
    # eigh sorts them ascending, so the last N/2 are the ones with positive imaginary part.
    omega, V = omega[N // 2 :], V[:, N // 2 :]
    Lambda = real_part + 1j * omega
    V_adjoint = V.conj().T
    return DPLR(Lambda, V_adjoint @ P.to(V.dtype), V_adjoint @ B.to(V.dtype), V)


def dplr_dense(Lambda: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """The full state matrix diag(Lambda, conj Lambda) - p p* as a dense (..., N, N) complex matrix,
    from the halves Lambda, P (..., N/2). Used where dense powers are unavoidable (A-bar^L) and by the tests."""
    Lambda_full, p_full = conjugate_pairs(Lambda), conjugate_pairs(P)
    return torch.diag_embed(Lambda_full) - p_full[..., :, None] * p_full.conj()[..., None, :]


def legs_closed_form_impulse_response(N: int, t: torch.Tensor) -> torch.Tensor:
    """e^{-t A_LegS} B_LegS in closed form: sqrt(2n+1) P_n(2 e^-t - 1) e^-t, shape (N, *t.shape).

    Substituting s = e^t turns the LegS ODE into x' = -A x + B f(e^t); an impulse at t = 0 is a point mass
    at s = 1, whose LegS coefficients at time s are sqrt(2n+1) P_n(2/s - 1) / s.
    """
    n = torch.arange(N, dtype=t.dtype).view(-1, *([1] * t.dim()))
    decay = torch.exp(-t)
    return torch.sqrt(2 * n + 1) * legendre(N, 2 * decay - 1) * decay
