"""What the numbers say, computed once: scaling exponents, best accuracy per recall cell, MAD scores.

The report's pages and the CLI's tables both read these, so a terminal and a page never disagree.
No plotting here (matplotlib stays in the page modules) and no suite imports: rows in, frames out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fit_scaling_exponent(
    seq_len: Sequence[float], time: Sequence[float], longest: int = 3, fewest: int = 3
) -> float | None:
    """Slope of log(time) against log(seq_len) over the `longest` largest lengths (least squares).

    Only the long-L end is fitted: at short L fixed costs (launches, projections) flatten every curve, and
    the exponent a reader cares about is the asymptotic one (attention -> 2, scans -> 1). None with fewer
    than `fewest` lengths: a line through two noisy points is not a scaling law.
    """
    points = sorted((float(x), float(y)) for x, y in zip(seq_len, time, strict=True) if x > 0 and y > 0)
    by_length = dict(points)  # one point per length (the last one wins)
    lengths = sorted(by_length)[-longest:]
    if len(lengths) < max(2, fewest):
        return None
    x = np.log(lengths)
    y = np.log([by_length[length] for length in lengths])
    slope, _ = np.polyfit(x, y, 1)
    return float(slope)
