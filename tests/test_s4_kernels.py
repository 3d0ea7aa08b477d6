"""The fast SSM kernels (S4's Cauchy + Woodbury + iFFT, S4D's Vandermonde) against the definition by dense
matrix powers, the parallel final states against the recurrence, and the FFT convolution against a sum."""

from __future__ import annotations

import pytest
import torch

from harness.errors import ConfigError
from implementations.s4 import ssm_kernel as kernels
from implementations.s4.discretization import bilinear, zoh
from implementations.s4.hippo import conjugate_pairs, dplr_dense, legs_closed_form_impulse_response, legs_dplr
from implementations.s4.ssm_kernel import (
    causal_fft_convolution,
    naive_kernel,
    s4_final_state,
    s4_kernel,
    vandermonde_final_state,
    vandermonde_kernel,
)

F64, C128 = torch.float64, torch.complex128
LENGTHS = [1, 2, 3, 7, 16, 33, 64]  # odd and even: the node z = -1 exists only for even L


def dplr_system(N: int = 8, H: int = 3, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """HiPPO-LegS in DPLR form, perturbed per channel (so no test leans on LegS's special values), random C,
    and a different step size per channel."""
    generator = torch.Generator().manual_seed(seed)
    dplr = legs_dplr(N)
    M = N // 2

    def noise(scale: float) -> torch.Tensor:
        return scale * torch.randn(H, M, dtype=C128, generator=generator)

    Lambda = dplr.Lambda.repeat(H, 1) + noise(0.1)
    Lambda = torch.complex(-Lambda.real.abs(), Lambda.imag)  # keep it stable
    P, B = dplr.P.repeat(H, 1) + noise(0.1), dplr.B.repeat(H, 1) + noise(0.1)
    C = noise(1.0)
    dt = torch.tensor([0.01, 0.1, 0.5], dtype=F64)[:H]
    return Lambda, P, B, C, dt


def dense_bilinear(
    Lambda: torch.Tensor, P: torch.Tensor, B: torch.Tensor, dt: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """The full (conjugate-completed) system as dense matrices, discretized by the dense bilinear transform."""
    return bilinear(dplr_dense(Lambda, P), conjugate_pairs(B), dt)


def recurrence_states(A_bar: torch.Tensor, B_bar: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """x_{L-1} by the loop x_k = A-bar x_{k-1} + B-bar u_k, for dense A-bar (H, N, N) or diagonal A-bar (H, N)."""
    x = torch.zeros(*u.shape[:-1], B_bar.shape[-1], dtype=B_bar.dtype)
    for k in range(u.shape[-1]):
        Ax = (A_bar @ x.unsqueeze(-1)).squeeze(-1) if A_bar.dim() == B_bar.dim() + 1 else A_bar * x
        x = Ax + B_bar * u[..., k, None]
    return x


@pytest.mark.parametrize("L", LENGTHS)
def test_s4_kernel_equals_dense_matrix_powers(L: int) -> None:
    Lambda, P, B, C, dt = dplr_system()
    A_bar, B_bar = dense_bilinear(Lambda, P, B, dt)
    expected = naive_kernel(A_bar, B_bar, conjugate_pairs(C), L)
    assert expected.imag.abs().max() < 1e-14  # a conjugate-symmetric system has a real kernel
    fast = s4_kernel(Lambda, P, B, C, dt, L)
    torch.testing.assert_close(fast, expected.real, rtol=0, atol=1e-13 * expected.abs().max().item())


@pytest.mark.parametrize("L", [1, 2, 7, 16, 33])
def test_s4_final_state_equals_the_recurrence(L: int) -> None:
    Lambda, P, B, _, dt = dplr_system()
    A_bar, B_bar = dense_bilinear(Lambda, P, B, dt)
    u = torch.randn(2, 3, L, dtype=F64)
    expected = recurrence_states(A_bar, B_bar, u)  # full state (2, H, N)
    M = Lambda.shape[-1]
    torch.testing.assert_close(expected[..., M:], expected[..., :M].conj())  # conjugate symmetry
    fast = s4_final_state(Lambda, P, B, dt, torch.linalg.matrix_power(A_bar, L), u)
    torch.testing.assert_close(fast, expected[..., :M], rtol=0, atol=1e-13 * expected.abs().max().item())


@pytest.mark.parametrize("alpha", [None, 0.0, 0.3, 0.5, 1.0])  # None: zero-order hold
def test_vandermonde_kernel_and_state_equal_the_definition(alpha: float | None) -> None:
    Lambda, _, B, C, dt = dplr_system(N=10)
    if alpha is None:
        A_bar, B_bar = zoh(Lambda, B, dt, diagonal=True)
    else:
        A_bar, B_bar = bilinear(Lambda, B, dt, alpha, diagonal=True)
    L = 33
    expected = naive_kernel(torch.diag_embed(conjugate_pairs(A_bar)), conjugate_pairs(B_bar), conjugate_pairs(C), L)
    fast = vandermonde_kernel(torch.log(A_bar), C * B_bar, L)
    torch.testing.assert_close(fast, expected.real, rtol=0, atol=1e-13 * expected.abs().max().item())

    u = torch.randn(2, 3, L, dtype=F64)
    expected_state = recurrence_states(A_bar, B_bar, u)
    torch.testing.assert_close(vandermonde_final_state(torch.log(A_bar), B_bar, u), expected_state, rtol=1e-12, atol=0)


def test_s4_kernel_without_low_rank_term_equals_the_diagonal_kernel() -> None:
    # Two independent fast paths: with P = 0 the DPLR matrix is diagonal, and S4's Cauchy kernel must give
    # S4D's Vandermonde kernel under the same bilinear transform.
    Lambda, P, B, C, dt = dplr_system()
    A_bar, B_bar = bilinear(Lambda, B, dt, diagonal=True)
    for L in (16, 33):
        torch.testing.assert_close(
            s4_kernel(Lambda, torch.zeros_like(P), B, C, dt, L),
            vandermonde_kernel(torch.log(A_bar), C * B_bar, L),
            rtol=0,
            atol=1e-12,
        )


def test_s4_legs_kernel_is_the_warped_legendre_basis() -> None:
    # "How to train your HiPPO": with C picking the n-th LegS coefficient (C = row n of V in the DPLR basis),
    # the continuous kernel is sqrt(2n+1) P_n(2e^-t - 1) e^-t. The bilinear kernel samples it at the
    # midpoints t = (l + 1/2) Delta, to O(Delta^2): measured max error 3.1e-3 at Delta = 2e-3, 8.0e-4 at 1e-3.
    N = 8
    dplr = legs_dplr(N)
    errors = {}
    for dt in (2e-3, 1e-3):
        L = round(4 / dt)
        step = torch.full((N,), dt, dtype=F64)
        expand = [t.expand(N, -1) for t in (dplr.Lambda, dplr.P, dplr.B)]
        K = s4_kernel(*expand, dplr.V, step, L) / dt  # channel n reads coefficient n
        midpoints = (torch.arange(L, dtype=F64) + 0.5) * dt
        errors[dt] = (K - legs_closed_form_impulse_response(N, midpoints)).abs().max().item()
    assert errors[1e-3] < 2e-3
    assert errors[2e-3] / errors[1e-3] == pytest.approx(4, rel=0.1)  # second order


def test_blocking_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    Lambda, P, B, C, dt = dplr_system()
    A_bar_diag, B_bar_diag = zoh(Lambda, B, dt, diagonal=True)
    u = torch.randn(2, 3, 33, dtype=F64)
    A_bar_L = torch.linalg.matrix_power(dense_bilinear(Lambda, P, B, dt)[0], 33)

    def compute() -> list[torch.Tensor]:
        return [
            s4_kernel(Lambda, P, B, C, dt, 33),
            s4_final_state(Lambda, P, B, dt, A_bar_L, u),
            vandermonde_kernel(torch.log(A_bar_diag), C * B_bar_diag, 33),
            vandermonde_final_state(torch.log(A_bar_diag), B_bar_diag, u),
        ]

    whole = compute()
    monkeypatch.setattr(kernels, "BLOCK_ELEMENTS", 20)  # a handful of nodes / positions per block
    for blocked, unblocked in zip(compute(), whole, strict=True):
        torch.testing.assert_close(blocked, unblocked, rtol=1e-13, atol=1e-15)


def test_fft_convolution_is_the_causal_sum() -> None:
    u = torch.randn(2, 3, 20, dtype=F64)
    K = torch.randn(3, 20, dtype=F64)
    expected = torch.zeros_like(u)
    for t in range(20):
        for s in range(t + 1):
            expected[..., t] += K[:, t - s] * u[..., s]
    torch.testing.assert_close(causal_fft_convolution(u, K), expected, rtol=0, atol=1e-13)


def test_bad_length_is_a_one_line_error() -> None:
    Lambda, P, B, C, dt = dplr_system()
    for call in (
        lambda: s4_kernel(Lambda, P, B, C, dt, 0),
        lambda: vandermonde_kernel(Lambda, C, -3),
        lambda: naive_kernel(torch.eye(2), torch.ones(2), torch.ones(2), 0),
    ):
        with pytest.raises(ConfigError, match=r"^L: the kernel length must be a positive integer"):
            call()
    with pytest.raises(ConfigError, match=r"^dt: "):
        s4_kernel(Lambda, P, B, C, -dt, 8)


def test_gradients_of_the_fast_kernels_match_finite_differences() -> None:
    # Training differentiates through the Cauchy kernel, the Woodbury identity, A-bar^L and the iFFT.
    Lambda, P, B, C, dt = (t[:1].clone().requires_grad_(True) for t in dplr_system(N=4))
    assert torch.autograd.gradcheck(lambda *args: s4_kernel(*args, 8), (Lambda, P, B, C, dt))
    log_A_bar = (dt[:, None] * Lambda).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, c: vandermonde_kernel(a, c, 9), (log_A_bar, C))
