"""The SSM convolution kernel and the convolution it defines.

Unrolling the recurrence x_k = A-bar x_{k-1} + B-bar u_k, y_k = C x_k from x_{-1} = 0 gives a convolution
(S4, arXiv 2111.00396, Sec. 2.4):

    y = K * u,      K = (C B-bar, C A-bar B-bar, ..., C A-bar^{L-1} B-bar)                       (S4 eq. 5)

Three ways to the same K live here:

    naive_kernel        the definition, by dense powers of A-bar: O(N^2 L). The tests' ground truth.
    s4_kernel           S4's Algorithm 1 for a DPLR state matrix A = Lambda - P Q* under the bilinear
                        transform: the generating function at the roots of unity, the Cauchy kernel, the
                        Woodbury identity and an inverse FFT. As written (a dense Cauchy product) it costs
                        O(N L) per channel plus one dense power A-bar^L, O(N^3 log L); a fast Cauchy
                        algorithm would give the paper's O~(N + L).
    vandermonde_kernel  S4D (arXiv 2206.11893): for a diagonal A-bar, K_l = sum_n C_n B-bar_n A-bar_n^l is a
                        Vandermonde matrix-vector product, computed through exp(l log A-bar_n).

The state of the convolutional forms after a whole sequence (what `prefill` hands to the recurrence) is
computed by the same tools: `s4_final_state` by the generating function, `vandermonde_final_state` by the
transposed Vandermonde product.

Conjugate pairs. A real SSM's complex modes come in conjugate pairs; the layers keep one of each
(shape (..., M), M = N/2) and the other half is implied. Every function here that takes such halves sums
over both, so the kernels come out real. `naive_kernel` takes whatever dense system it is given.

Large intermediates (a Cauchy or Vandermonde matrix is (H, M, L)) are built in blocks of nodes or
positions so that memory stays bounded at long L; the blocks change nothing but peak memory.
"""

from __future__ import annotations

import math

import torch

from harness.errors import ConfigError
from implementations.s4.discretization import bilinear_dplr, check_step_size
from implementations.s4.hippo import conjugate_pairs

# Complex elements per block of a Cauchy or Vandermonde matrix: 2^25 is 256 MiB in complex64.
BLOCK_ELEMENTS = 2**25


def check_length(L: int) -> None:
    if isinstance(L, bool) or not isinstance(L, int) or L < 1:
        raise ConfigError("L", f"the kernel length must be a positive integer, got {L!r}")


def _blocks(total: int, elements_per_item: int) -> list[tuple[int, int]]:
    size = max(1, BLOCK_ELEMENTS // max(1, elements_per_item))
    return [(start, min(start + size, total)) for start in range(0, total, size)]


# ---------------------------------------------------------------------------------------------
# The definition


def naive_kernel(A_bar: torch.Tensor, B_bar: torch.Tensor, C: torch.Tensor, L: int) -> torch.Tensor:
    """K_l = C A-bar^l B-bar for l < L by repeated multiplication. A_bar (..., N, N), B_bar, C (..., N) -> (..., L)."""
    check_length(L)
    values, state = [], B_bar
    for _ in range(L):
        values.append((C * state).sum(-1))
        state = (A_bar @ state.unsqueeze(-1)).squeeze(-1)
    return torch.stack(values, dim=-1)


# ---------------------------------------------------------------------------------------------
# S4: DPLR state matrix, bilinear transform (Algorithm 1 of the S4 paper)


def cauchy_conjugate_pairs(v: torch.Tensor, g: torch.Tensor, Lambda: torch.Tensor) -> torch.Tensor:
    """The Cauchy kernel summed over both modes of every conjugate pair:

        k_r(g_k) = sum_n  v_nr / (g_k - lambda_n)  +  conj(v_nr) / (g_k - conj(lambda_n))

    v: (..., M, R), R numerators sharing the poles; g: (..., K) nodes; Lambda: (..., M) -> (..., K, R).
    """
    pieces = []
    for start, stop in _blocks(g.shape[-1], Lambda.shape[-1] * max(1, math.prod(Lambda.shape[:-1]))):
        nodes = g[..., start:stop, None]  # (..., k, 1)
        cauchy = 1 / (nodes - Lambda[..., None, :])  # (..., k, M): the Cauchy matrix 1 / (g_k - lambda_n)
        cauchy_of_conjugates = 1 / (nodes - Lambda.conj()[..., None, :])
        pieces.append(cauchy @ v + cauchy_of_conjugates @ v.conj())
    return torch.cat(pieces, dim=-2)


def bilinear_nodes(L: int, device: torch.device, all_nodes: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The roots of unity omega_k = exp(-2 pi i k / L) used by the bilinear generating function: (k, tan(pi k / L)).

    Under the bilinear transform the generating function at omega needs g(omega) = (2/Delta)(1 - omega)/(1 + omega)
    and the factor 2/(1 + omega). With omega = e^{-i theta}: (1 - omega)/(1 + omega) = i tan(theta/2) and
    2/(1 + omega) = 1 + i tan(theta/2), which is how we compute them (accurately, in float64). The node
    omega = -1 (k = L/2, L even) maps to g = infinity; it is left out here and handled apart by the callers.
    k runs over 0 .. ceil(L/2) - 1 (the half spectrum of a real kernel) or, with all_nodes, over 0 .. L-1.
    """
    k = torch.arange(L if all_nodes else (L + 1) // 2, device=device)
    if all_nodes and L % 2 == 0:
        k = torch.cat([k[: L // 2], k[L // 2 + 1 :]])
    return k, torch.tan(math.pi * k.to(torch.float64) / L)


def dplr_power(Lambda: torch.Tensor, P: torch.Tensor, B: torch.Tensor, dt: torch.Tensor, L: int) -> torch.Tensor:
    """A-bar^L of the full (conjugate-completed) DPLR system, as a dense (H, N, N) matrix.

    The one dense computation S4 cannot avoid: truncating the generating function to length L needs
    C~ = C (I - A-bar^L). Repeated squaring costs log2(L) products of N x N matrices per channel.
    """
    A_bar = bilinear_dplr(conjugate_pairs(Lambda), conjugate_pairs(P), dt)
    return torch.linalg.matrix_power(A_bar, L)


def s4_kernel(
    Lambda: torch.Tensor, P: torch.Tensor, B: torch.Tensor, C: torch.Tensor, dt: torch.Tensor, L: int
) -> torch.Tensor:
    """The length-L kernel of the SSM (A = Lambda - P P*, B, C) discretized by the bilinear transform with
    step Delta, by Algorithm 1 of the S4 paper. Lambda, P, B, C: (H, M) halves of conjugate pairs; dt: (H,).
    Returns K: (H, L), real. (Q = P: HiPPO-LegS's low-rank term is P P^T, S4 Theorem 1.)
    """
    check_length(L)
    check_step_size(dt)
    # Step 1 - truncate the SSM generating function: sum_{l<L} C A-bar^l B-bar z^l = C~ (I - A-bar z)^{-1} B-bar
    # at every L-th root of unity z, with C~ = C (I - A-bar^L).
    C_full = conjugate_pairs(C)
    C_tilde = (C_full - (C_full.unsqueeze(-2) @ dplr_power(Lambda, P, B, dt, L)).squeeze(-2))[..., : C.shape[-1]]

    # Step 2 - the Cauchy kernel. (I - A-bar z)^{-1} B-bar = 2/(1+z) (g(z) - A)^{-1} B with
    # g(z) = (2/Delta)(1-z)/(1+z), so four Cauchy sums over the diagonal Lambda give every term we need:
    #   k00 = C~ R B,  k01 = C~ R P,  k10 = P* R B,  k11 = P* R P,       R(z) = (g(z) - Lambda)^{-1}.
    _, tan = bilinear_nodes(L, C.device)
    g = (2j / dt.to(torch.float64)[:, None] * tan).to(C.dtype)  # (H, K)
    numerators = torch.stack([C_tilde * B, C_tilde * P, P.conj() * B, P.conj() * P], dim=-1)  # (H, M, 4)
    k00, k01, k10, k11 = cauchy_conjugate_pairs(numerators, g, Lambda).unbind(-1)

    # Step 3 - the Woodbury identity: (g - Lambda + P P*)^{-1} = R - R P (1 + P* R P)^{-1} P* R, and the factor
    # 2/(1+z) = 1 + i tan. This is the generating function K^(z) of the kernel at z = omega_k.
    K_hat = (1 + 1j * tan).to(C.dtype) * (k00 - k01 * k10 / (1 + k11))

    # Step 4 - the generating function at every root of unity: a real kernel needs only the half spectrum
    # computed above, plus z = -1 when L is even. There g is infinite and the limit is exact and simple,
    # (I + A-bar)^{-1} B-bar = (Delta/2) B, so K^(-1) = (Delta/2) C~ B over both modes of each pair.
    if L % 2 == 0:
        nyquist = dt * (C_tilde * B).sum(-1).real  # (Delta/2) * 2 Re(sum_n C~_n B_n)
        K_hat = torch.cat([K_hat, nyquist.to(K_hat.dtype)[:, None]], dim=-1)

    # Step 5 - the kernel is the inverse FFT of its generating function at the roots of unity.
    return torch.fft.irfft(K_hat, n=L)


def s4_final_state(
    Lambda: torch.Tensor,
    P: torch.Tensor,
    B: torch.Tensor,
    dt: torch.Tensor,
    A_bar_power_L: torch.Tensor,
    u: torch.Tensor,
) -> torch.Tensor:
    """The state x_{L-1} = sum_j A-bar^{L-1-j} B-bar u_j after an input u (batch, H, L), without a loop over time.

    By the same generating function as `s4_kernel`: over the L-th roots of unity omega_k = exp(-2 pi i k / L),

        A-bar^l = (1/L) sum_k omega_k^{-l} (I - A-bar^L)(I - A-bar omega_k)^{-1}      for 0 <= l < L

    (the right side is the inverse DFT of sum_{m<L} A-bar^m omega^m = (I - A-bar^L)(I - A-bar omega)^{-1}), hence

        x = (I - A-bar^L) (1/L) sum_k omega_k U_k (I - A-bar omega_k)^{-1} B-bar,      U = FFT(u).

    Each resolvent is Cauchy + Woodbury again: (I - A-bar omega)^{-1} B-bar = 2/(1+omega) R (B - P sigma) with
    R = (g(omega) - Lambda)^{-1} and sigma = (P* R B)/(1 + P* R P); the sum over k becomes two Cauchy products.
    At omega = -1 the resolvent is (Delta/2) B. A_bar_power_L: A-bar^L of the full system (H, N, N).
    Returns the half state (batch, H, M).
    """
    L = u.shape[-1]
    check_length(L)
    M = Lambda.shape[-1]
    U = torch.fft.fft(u.to(Lambda.dtype), n=L)  # U_k = sum_j u_j omega_k^j
    k = torch.arange(L, dtype=torch.float64, device=u.device)
    omega = torch.polar(torch.ones_like(k), -2 * math.pi * k / L).to(Lambda.dtype)
    weights = omega * U  # omega_k U_k: (batch, H, L)
    regular, tan = bilinear_nodes(L, u.device, all_nodes=True)  # every node but omega = -1
    g = (2j / dt.to(torch.float64)[:, None] * tan).to(Lambda.dtype)  # (H, K)
    weights_regular = weights[..., regular] * (1 + 1j * tan).to(Lambda.dtype)  # times 2/(1 + omega_k)

    k10, k11 = cauchy_conjugate_pairs(torch.stack([P.conj() * B, P.conj() * P], -1), g, Lambda).unbind(-1)
    sigma = k10 / (1 + k11)  # (H, K)

    # y_n = (1/L) sum_k weight_k (B_n - P_n sigma_k) / (g_k - lambda_n): two Cauchy products, summed over the nodes.
    sum_weights = torch.zeros(*u.shape[:-1], M, dtype=Lambda.dtype, device=u.device)
    sum_weights_sigma = torch.zeros_like(sum_weights)
    for start, stop in _blocks(g.shape[-1], M * max(1, math.prod(Lambda.shape[:-1]))):
        cauchy = 1 / (g[..., start:stop, None] - Lambda[..., None, :])  # (H, k, M)
        w = weights_regular[..., start:stop]
        sum_weights = sum_weights + torch.einsum("...hk,hkm->...hm", w, cauchy)
        sum_weights_sigma = sum_weights_sigma + torch.einsum("...hk,hkm->...hm", w * sigma[..., start:stop], cauchy)
    y = B * sum_weights - P * sum_weights_sigma
    if L % 2 == 0:
        y = y + weights[..., L // 2, None] * (dt[:, None] / 2) * B  # the node omega = -1
    y = y / L

    # x = (I - A-bar^L) y on the full conjugate-symmetric vector; keep the first half.
    y_full = conjugate_pairs(y)
    x_full = y_full - (A_bar_power_L @ y_full.unsqueeze(-1)).squeeze(-1)
    return x_full[..., :M]


# ---------------------------------------------------------------------------------------------
# S4D: diagonal state matrix


def vandermonde_kernel(log_A_bar: torch.Tensor, coefficients: torch.Tensor, L: int) -> torch.Tensor:
    """K_l = 2 Re sum_n coefficients_n A-bar_n^l for l < L: S4D's Vandermonde matrix-vector product.

    A-bar_n^l is computed as exp(l log A-bar_n), accurate at every l (repeated multiplication would
    accumulate rounding). For S4D, coefficients = C * B-bar and, under zero-order hold, log A-bar = Delta A exactly.
    log_A_bar, coefficients: (H, M) -> (H, L), real.
    """
    check_length(L)
    pieces = []
    for start, stop in _blocks(L, math.prod(log_A_bar.shape)):
        positions = torch.arange(start, stop, device=log_A_bar.device, dtype=log_A_bar.real.dtype)
        vandermonde = torch.exp(log_A_bar[..., None] * positions)  # (H, M, l): A-bar_n^l
        pieces.append(2 * torch.einsum("...m,...ml->...l", coefficients, vandermonde).real)
    return torch.cat(pieces, dim=-1)


def vandermonde_final_state(log_A_bar: torch.Tensor, B_bar: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """x_{L-1} = sum_j A-bar^{L-1-j} B-bar u_j for diagonal A-bar: the transposed Vandermonde product.
    log_A_bar, B_bar: (H, M); u: (batch, H, L) -> (batch, H, M)."""
    L = u.shape[-1]
    check_length(L)
    newest_first = u.flip(-1).to(log_A_bar.dtype)  # u_{L-1-l} multiplies A-bar^l
    state = torch.zeros(*u.shape[:-1], log_A_bar.shape[-1], dtype=log_A_bar.dtype, device=u.device)
    for start, stop in _blocks(L, math.prod(log_A_bar.shape)):
        positions = torch.arange(start, stop, device=u.device, dtype=log_A_bar.real.dtype)
        vandermonde = torch.exp(log_A_bar[..., None] * positions)  # (H, M, l)
        state = state + torch.einsum("...hl,hml->...hm", newest_first[..., start:stop], vandermonde)
    return B_bar * state


# ---------------------------------------------------------------------------------------------
# The convolution


def causal_fft_convolution(u: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """y_t = sum_{s <= t} K_{t-s} u_s for u (..., H, L) and K (H, L), by FFT of length 2L.

    A length-L FFT would compute a circular convolution (the end of the sequence leaking into its start);
    zero-padding both to 2L makes it the causal linear one (S4 Sec. 2.4 and Thm. 3).
    """
    L = u.shape[-1]
    n = 2 * L
    return torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(K, n=n), n=n)[..., :L]
