"""Binary classification metrics from labels (1 positive, 0 negative) and scores (higher: more positive).

ROC AUC is computed by ranks, as the Mann-Whitney U statistic: the probability that a random positive scores
above a random negative, ties counting one half. Sorting once makes it O(n log n) and exact, with no
threshold grid. The ROC curve's points are (false-positive rate, true-positive rate) at every distinct score
used as a threshold, from (0, 0) to (1, 1); its trapezoidal area equals the rank AUC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_ROC_POINTS = 201  # a curve of 25,000 scores thinned to this many points for the rows (the AUC is exact)


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def accuracy(self) -> float:
        total = self.tp + self.fp + self.tn + self.fn
        return (self.tp + self.tn) / total if total else float("nan")


def confusion(labels: np.ndarray, predicted: np.ndarray) -> Confusion:
    """Counts of (predicted, actual) pairs, positive = 1."""
    labels, predicted = np.asarray(labels).astype(bool), np.asarray(predicted).astype(bool)
    return Confusion(
        tp=int((predicted & labels).sum()),
        fp=int((predicted & ~labels).sum()),
        tn=int((~predicted & ~labels).sum()),
        fn=int((~predicted & labels).sum()),
    )


def _average_ranks(scores: np.ndarray) -> np.ndarray:
    """Ranks 1..n of the scores, tied scores sharing the mean of their ranks."""
    order = np.argsort(scores, kind="mergesort")
    ordered = scores[order]
    # the start of each run of equal scores, and each score's run
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    run = np.cumsum(np.r_[True, ordered[1:] != ordered[:-1]]) - 1
    ends = np.r_[starts[1:], len(scores)]
    mean_rank = (starts + 1 + ends) / 2.0  # ranks starts+1 .. ends, averaged
    ranks = np.empty(len(scores))
    ranks[order] = mean_rank[run]
    return ranks


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney: (sum of the positives' ranks - n_pos (n_pos + 1) / 2) / (n_pos n_neg); NaN with one class."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> list[tuple[float, float]]:
    """[(fpr, tpr)]: predicting positive at score >= t, for t from above the highest score down to the lowest."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return []
    order = np.argsort(-scores, kind="mergesort")
    ordered, hits = scores[order], labels[order]
    last_of_run = np.r_[ordered[1:] != ordered[:-1], True]  # thresholds between distinct scores only
    tpr = np.cumsum(hits)[last_of_run] / n_pos
    fpr = np.cumsum(~hits)[last_of_run] / n_neg
    return [(0.0, 0.0), *zip(fpr.tolist(), tpr.tolist(), strict=True)]


def thin(points: list[tuple[float, float]], most: int = MAX_ROC_POINTS) -> list[tuple[float, float]]:
    """At most `most` points, evenly spaced along the list, first and last kept (for the rows' JSON)."""
    if len(points) <= most:
        return points
    keep = np.unique(np.linspace(0, len(points) - 1, most).round().astype(int))
    return [points[i] for i in keep]


def curve_area(points: list[tuple[float, float]]) -> float:
    """The trapezoidal area under (x, y) points."""
    if len(points) < 2:
        return float("nan")
    x, y = np.array(points).T
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))
