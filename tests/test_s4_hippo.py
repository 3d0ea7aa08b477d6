"""HiPPO matrices against their defining properties, and the DPLR form of HiPPO-LegS against LegS itself.

The ODEs are driven by an exponential integrator that is independent of the S4 code: over each step of
length h, c(s + h) = e^{-hA} c(s) + integral_0^h e^{-(h - r)A} B f(s + r) dr, the integral by 12-point
Gauss-Legendre quadrature. Its error is far below the approximation errors being measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from harness.errors import ConfigError
from implementations.s4.hippo import (
    conjugate_pairs,
    dplr_dense,
    hippo_lagt,
    hippo_legs,
    hippo_legt,
    laguerre,
    legs_closed_form_impulse_response,
    legs_dplr,
    legs_reconstruct,
    legt_reconstruct,
)

F64 = torch.float64
Signal = Callable[[np.ndarray], np.ndarray]


def smooth_signal(t: np.ndarray) -> np.ndarray:
    """Two tones (2 and 5 cycles per unit time) and a ramp: smooth, not a polynomial."""
    return np.sin(2 * math.pi * 2 * t) + 0.5 * np.cos(2 * math.pi * 5 * t + 0.3) + t


def drive(
    A: torch.Tensor, B: torch.Tensor, forcing: Signal, start: float, stop: float, c0: np.ndarray, h: float
) -> np.ndarray:
    """Integrate dc/ds = -A c + B forcing(s) from `start` to `stop` (exponential integrator, see module doc)."""
    steps = math.ceil((stop - start) / h)
    h = (stop - start) / steps
    nodes, weights = np.polynomial.legendre.leggauss(12)
    offsets, weights = h * (nodes + 1) / 2, weights * h / 2
    propagate = torch.linalg.matrix_exp(-h * A).numpy()
    inject = np.stack([torch.linalg.matrix_exp(-(h - r) * A).numpy() @ B.numpy() for r in offsets], -1) * weights
    c = c0.copy()
    for k in range(steps):
        c = propagate @ c + inject @ forcing(start + k * h + offsets)
    return c


def relative_rms(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.sqrt(np.mean((approx - exact) ** 2) / np.mean(exact**2)))


def legs_reconstruction_error(N: int) -> float:
    """Drive the LegS ODE dc/dt = -(1/t) A c + (1/t) B f over t in (0, 1] and reconstruct f on [0, 1].

    In log time s = log t the ODE is time-invariant, dc/ds = -A c + B f(e^s), which the integrator handles
    without LegS's singularity at t = 0. It starts at t0 = 1e-9 from c = (f(0), 0, ..., 0): a history that
    short is a constant, and the error of that start decays like (t0/t)^(n+1).
    """
    A, B = hippo_legs(N)
    c0 = np.zeros(N)
    c0[0] = smooth_signal(np.zeros(1))[0]
    c = drive(A, B, lambda s: smooth_signal(np.exp(s)), math.log(1e-9), 0.0, c0, h=0.01)
    grid = torch.linspace(0, 1, 2001, dtype=F64)
    reconstruction = legs_reconstruct(torch.from_numpy(c), 1.0, grid).numpy()
    return relative_rms(reconstruction, smooth_signal(grid.numpy()))


def test_legs_coefficients_reconstruct_the_history_better_as_N_grows() -> None:
    # Measured (relative RMS over [0, 1]): N = 16: 1.3e-01, N = 32: 1.7e-08, N = 64: 1.4e-13. Legendre series
    # of a smooth signal converge faster than any power once N exceeds its bandwidth (5 cycles ~ 16 terms).
    errors = {N: legs_reconstruction_error(N) for N in (16, 32, 64)}
    assert errors[16] < 0.2
    assert errors[32] < 1e-6
    assert errors[64] < 1e-10
    assert errors[16] > errors[32] > errors[64]


def test_legs_and_lagt_impulse_responses_have_closed_forms() -> None:
    # "How to train your HiPPO": the time-invariant LegS system's basis is exponentially warped Legendre
    # polynomials; LagT's is Laguerre functions. Both from matrix exponentials, to rounding.
    t = torch.linspace(0, 6, 25, dtype=F64)
    N = 16
    A, B = hippo_legs(N)
    numeric = torch.stack([torch.linalg.matrix_exp(-ti * A) @ B for ti in t], dim=-1)
    torch.testing.assert_close(numeric, legs_closed_form_impulse_response(N, t), rtol=0, atol=1e-12)
    beta = 0.7
    A, B = hippo_lagt(N, beta)
    numeric = torch.stack([torch.linalg.matrix_exp(-ti * A) @ B for ti in t], dim=-1)
    torch.testing.assert_close(numeric, beta * laguerre(N, beta * t) * torch.exp(-beta * t), rtol=0, atol=1e-12)


def test_lagt_ode_computes_the_laguerre_projection() -> None:
    # LagT is exact: c_n(T) = integral_0^T f(s) L_n(T - s) e^-(T - s) ds for f = 0 before 0.
    N, T = 12, 4.0
    A, B = hippo_lagt(N)
    c = drive(A, B, smooth_signal, 0.0, T, np.zeros(N), h=0.01)
    nodes, weights = np.polynomial.legendre.leggauss(200)
    s = T * (nodes + 1) / 2
    basis = laguerre(N, torch.from_numpy(T - s)).numpy() * np.exp(-(T - s))
    projection = basis @ (smooth_signal(s) * weights * T / 2)
    np.testing.assert_allclose(c, projection, rtol=0, atol=1e-10)


def test_legt_reconstructs_the_sliding_window() -> None:
    # LegT's one approximation (f(t - theta) read off the coefficients) makes it inexact; the window is
    # still recovered, better with N. Measured relative RMS over [T - theta, T]: N = 8: 1.4e-1, N = 32: 8.6e-9
    # (the window holds 5 cycles of the fast tone, so N = 8 cannot resolve it).
    theta, T = 1.0, 3.0
    grid = torch.linspace(T - theta, T, 1001, dtype=F64)
    errors = {}
    for N in (8, 32):
        A, B = hippo_legt(N, theta)
        c = drive(A, B, lambda t: np.where(t > 0, smooth_signal(t), 0.0), 0.0, T, np.zeros(N), h=0.005)
        reconstruction = legt_reconstruct(torch.from_numpy(c), T, theta, grid).numpy()
        errors[N] = relative_rms(reconstruction, smooth_signal(grid.numpy()))
    assert errors[8] < 0.2
    assert errors[32] < 1e-7


@pytest.mark.parametrize("N", [2, 8, 16, 64])
def test_dplr_form_reconstructs_legs(N: int) -> None:
    A, B = hippo_legs(N)
    dplr = legs_dplr(N)
    V = conjugate_pairs(dplr.V)  # (N, N): the kept eigenvectors and their conjugates
    torch.testing.assert_close(V.conj().T @ V, torch.eye(N, dtype=V.dtype), rtol=0, atol=1e-12)  # unitary
    reconstructed = V @ dplr_dense(dplr.Lambda, dplr.P) @ V.conj().T
    scale = A.abs().max().item()
    torch.testing.assert_close(reconstructed, -A.to(V.dtype), rtol=0, atol=1e-14 * scale * N)
    torch.testing.assert_close(V @ conjugate_pairs(dplr.B), B.to(V.dtype), rtol=0, atol=1e-13 * N)
    assert torch.allclose(dplr.Lambda.real, torch.full((N // 2,), -0.5, dtype=F64), atol=1e-15)
    assert (dplr.Lambda.imag > 0).all()


def test_legs_matrix_entries() -> None:
    A, B = hippo_legs(3)
    expected = torch.tensor(
        [[1, 0, 0], [math.sqrt(3), 2, 0], [math.sqrt(5), math.sqrt(15), 3]],
        dtype=F64,
    )
    torch.testing.assert_close(A, expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(B, torch.tensor([1, math.sqrt(3), math.sqrt(5)], dtype=F64), rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "call",
    [lambda: hippo_legs(0), lambda: hippo_legt(-1), lambda: hippo_lagt(0), lambda: legs_dplr(0), lambda: legs_dplr(5)],
)
def test_bad_state_size_is_a_one_line_error(call: Callable[[], object]) -> None:
    with pytest.raises(ConfigError, match=r"^N: ") as error:
        call()
    assert "\n" not in str(error.value)


def test_bad_window_and_time_scale() -> None:
    with pytest.raises(ConfigError, match=r"^theta: "):
        hippo_legt(4, theta=0.0)
    with pytest.raises(ConfigError, match=r"^beta: "):
        hippo_lagt(4, beta=-1.0)
