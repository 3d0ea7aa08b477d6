"""Zero-order hold and the generalized bilinear transform against closed forms and against the ODE itself."""

from __future__ import annotations

import math

import pytest
import torch

from harness.errors import ConfigError
from implementations.s4.discretization import bilinear, bilinear_dplr, zoh
from implementations.s4.hippo import conjugate_pairs, dplr_dense, hippo_legs, legs_dplr

F64 = torch.float64


def legs_ssm(N: int) -> tuple[torch.Tensor, torch.Tensor]:
    A, B = hippo_legs(N)
    return -A, B  # x' = A x + B u with the stable sign


def test_scalar_closed_forms() -> None:
    # One state: ZOH gives A-bar = e^{Delta a}, B-bar = (e^{Delta a} - 1)/a b;
    # the GBT gives A-bar = (1 + (1-alpha) Delta a)/(1 - alpha Delta a), B-bar = Delta b/(1 - alpha Delta a).
    a, b, dt = torch.tensor([[-0.7]], dtype=F64), torch.tensor([1.3], dtype=F64), 0.2
    A_bar, B_bar = zoh(a, b, dt)
    assert A_bar.item() == pytest.approx(math.exp(-0.14), rel=1e-15)
    assert B_bar.item() == pytest.approx((math.exp(-0.14) - 1) / -0.7 * 1.3, rel=1e-14)
    for alpha in (0.0, 0.3, 0.5, 1.0):
        A_bar, B_bar = bilinear(a, b, dt, alpha)
        assert A_bar.item() == pytest.approx((1 + (1 - alpha) * -0.14) / (1 + alpha * 0.14), rel=1e-15)
        assert B_bar.item() == pytest.approx(0.2 * 1.3 / (1 + alpha * 0.14), rel=1e-15)


def test_euler_and_bilinear_special_cases() -> None:
    A, B = legs_ssm(6)
    dt, identity = 0.05, torch.eye(6, dtype=F64)
    forward_A, forward_B = bilinear(A, B, dt, alpha=0.0)
    torch.testing.assert_close(forward_A, identity + dt * A, rtol=0, atol=1e-15)
    torch.testing.assert_close(forward_B, dt * B, rtol=0, atol=1e-15)
    backward_A, backward_B = bilinear(A, B, dt, alpha=1.0)
    inverse = torch.linalg.inv(identity - dt * A)
    torch.testing.assert_close(backward_A, inverse, rtol=0, atol=1e-14)
    torch.testing.assert_close(backward_B, inverse @ (dt * B), rtol=0, atol=1e-14)
    tustin_A, _ = bilinear(A, B, dt)  # alpha = 1/2: (I - dA/2)^{-1} (I + dA/2)
    torch.testing.assert_close(tustin_A, torch.linalg.inv(identity - dt / 2 * A) @ (identity + dt / 2 * A))


def test_zoh_equals_the_matrix_exponential_of_the_augmented_system() -> None:
    # Van Loan: exp(Delta [[A, B], [0, 0]]) = [[A-bar, B-bar], [0, 1]] for an input held constant over the step.
    N, dt = 8, 0.3
    A, B = legs_ssm(N)
    augmented = torch.zeros(N + 1, N + 1, dtype=F64)
    augmented[:N, :N], augmented[:N, N] = A, B
    exact = torch.linalg.matrix_exp(dt * augmented)
    A_bar, B_bar = zoh(A, B, dt)
    torch.testing.assert_close(A_bar, exact[:N, :N], rtol=0, atol=1e-13)
    torch.testing.assert_close(B_bar, exact[:N, N], rtol=0, atol=1e-13)


def test_zoh_is_exact_for_piecewise_constant_input() -> None:
    # Integrate x' = A x + B u with RK4 on a fine grid, u constant on each of 5 steps of length Delta.
    N, dt = 6, 0.1
    A, B = legs_ssm(N)
    inputs = torch.tensor([1.0, -0.5, 2.0, 0.0, 0.7], dtype=F64)
    A_bar, B_bar = zoh(A, B, dt)
    x_zoh = torch.zeros(N, dtype=F64)
    x_ode = torch.zeros(N, dtype=F64)
    substeps = 200
    h = dt / substeps
    for u in inputs:
        x_zoh = A_bar @ x_zoh + B_bar * u
        for _ in range(substeps):
            k1 = A @ x_ode + B * u
            k2 = A @ (x_ode + h / 2 * k1) + B * u
            k3 = A @ (x_ode + h / 2 * k2) + B * u
            k4 = A @ (x_ode + h * k3) + B * u
            x_ode = x_ode + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    torch.testing.assert_close(x_zoh, x_ode, rtol=0, atol=1e-11)


def test_order_of_accuracy_against_the_exact_exponential() -> None:
    # One step's error in A-bar vs exp(Delta A): O(Delta^2) for the Euler rules, O(Delta^3) for the bilinear one;
    # halving Delta divides it by ~4 and ~8.
    A, B = legs_ssm(4)

    def error(alpha: float, dt: float) -> float:
        return (bilinear(A, B, dt, alpha)[0] - torch.linalg.matrix_exp(dt * A)).abs().max().item()

    for alpha, order in ((0.0, 2), (1.0, 2), (0.5, 3)):
        ratio = error(alpha, 2e-3) / error(alpha, 1e-3)
        assert ratio == pytest.approx(2**order, rel=0.05), (alpha, ratio)


def test_diagonal_and_dense_forms_agree() -> None:
    A = torch.complex(-torch.rand(2, 5, dtype=F64), torch.randn(2, 5, dtype=F64) * 3)  # 2 channels, 5 modes
    B = torch.randn(2, 5, dtype=torch.complex128)
    dt = torch.tensor([0.01, 0.2], dtype=F64)
    for alpha in (None, 0.0, 0.25, 0.5, 1.0):  # None: zero-order hold
        if alpha is None:
            (A_bar, B_bar), (A_bar_dense, B_bar_dense) = zoh(A, B, dt, diagonal=True), zoh(torch.diag_embed(A), B, dt)
        else:
            A_bar, B_bar = bilinear(A, B, dt, alpha, diagonal=True)
            A_bar_dense, B_bar_dense = bilinear(torch.diag_embed(A), B, dt, alpha)
        torch.testing.assert_close(torch.diag_embed(A_bar), A_bar_dense, rtol=0, atol=1e-13)
        torch.testing.assert_close(B_bar, B_bar_dense, rtol=0, atol=1e-13)


@pytest.mark.parametrize("dt", [0.0, -0.1, torch.tensor([0.1, 0.0])])
def test_non_positive_step_is_a_one_line_error(dt: float | torch.Tensor) -> None:
    A, B = legs_ssm(3)
    for fn in (zoh, bilinear):
        with pytest.raises(ConfigError, match=r"^dt: the step size Delta must be real and > 0") as error:
            fn(A, B, dt)
        assert "\n" not in str(error.value)


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_outside_the_unit_interval_is_a_one_line_error(alpha: float) -> None:
    A, B = legs_ssm(3)
    with pytest.raises(ConfigError, match=r"^alpha: .*alpha in \[0, 1\]"):
        bilinear(A, B, 0.1, alpha)


def test_dplr_bilinear_without_a_solve_equals_the_dense_solve() -> None:
    """bilinear_dplr (Sherman-Morrison, no linear solve: CUDA-graph capturable) against bilinear's dense solve
    of the same DPLR matrix, in complex128: HiPPO-LegS's Lambda and P, and a random stable DPLR with one
    step per channel. Agreement to 1e-12 relative is rounding in float64 for these well-conditioned
    (I - Delta/2 A) (Re Lambda < 0)."""
    dplr = legs_dplr(16)
    generator = torch.Generator().manual_seed(0)
    H, M = 3, 8
    Lambda_random = torch.complex(
        -torch.rand(H, M, dtype=F64, generator=generator) - 0.1, torch.randn(H, M, dtype=F64, generator=generator)
    )
    P_random = torch.complex(
        torch.randn(H, M, dtype=F64, generator=generator), torch.randn(H, M, dtype=F64, generator=generator)
    )
    dt = torch.tensor([1e-3, 0.05, 0.7], dtype=F64)
    cases = [
        (dplr.Lambda.to(torch.complex128)[None], dplr.P.to(torch.complex128)[None], torch.tensor([0.1], dtype=F64)),
        (Lambda_random, P_random, dt),
    ]
    for Lambda, P, step in cases:
        dense = dplr_dense(Lambda, P)
        expected, _ = bilinear(dense, torch.zeros(dense.shape[:-1], dtype=dense.dtype), step, alpha=0.5)
        got = bilinear_dplr(conjugate_pairs(Lambda), conjugate_pairs(P), step)
        assert torch.linalg.matrix_norm(got - expected).max() <= 1e-12 * torch.linalg.matrix_norm(expected).max()
