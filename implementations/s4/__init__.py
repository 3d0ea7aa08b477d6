"""The S4 family: HiPPO, discretization, the S4 convolution kernel and S4D.

Read in this order, each module next to its paper:
    hippo.py           HiPPO-LegS / LegT / LagT matrices and the DPLR form of LegS   (HiPPO 2008.07669; S4 Thm. 1)
    discretization.py  zero-order hold and the generalized bilinear transform        (S4 2111.00396 Sec. 2.3)
    ssm_kernel.py      the SSM convolution kernel: dense powers, S4's Algorithm 1 (Cauchy + Woodbury + iFFT),
                       S4D's Vandermonde product, and the FFT convolution            (S4 Sec. 2.4, 3.3; S4D 2206.11893)
    reference.py       the S4 and S4D layers as mixers: forward (FFT convolution), step (recurrence), prefill
    specs.py           registry entries and analytic cost models
"How to train your HiPPO" (2206.12037) explains why the time-invariant LegS system works: its impulse
response is a basis of exponentially warped Legendre polynomials (tested in tests/test_s4_hippo.py).
"""

from implementations.s4.reference import S4, S4D, build_s4, build_s4d

__all__ = ["S4", "S4D", "build_s4", "build_s4d"]
