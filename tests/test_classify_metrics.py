"""The classification metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from suites.classify import metrics

# Positives score 0.9, 0.4, 0.8; negatives 0.4, 0.2, 0.7. Of the 9 (positive, negative) pairs the positive
# is higher in 7 and tied in 1 (0.4 = 0.4): AUC = (7 + 0.5) / 9.
LABELS = np.array([1, 1, 0, 0, 1, 0])
SCORES = np.array([0.9, 0.4, 0.4, 0.2, 0.8, 0.7])


def test_auc_is_the_share_of_positive_negative_pairs_ranked_right_ties_half() -> None:
    assert metrics.roc_auc(LABELS, SCORES) == pytest.approx(7.5 / 9)


def test_auc_of_a_perfect_an_inverted_and_a_constant_scorer() -> None:
    labels = np.array([0, 0, 1, 1])
    assert metrics.roc_auc(labels, np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert metrics.roc_auc(labels, np.array([0.4, 0.3, 0.2, 0.1])) == 0.0
    assert metrics.roc_auc(labels, np.zeros(4)) == 0.5
    assert np.isnan(metrics.roc_auc(np.ones(3), np.arange(3.0)))  # one class: undefined


def test_auc_matches_the_pairwise_count_on_random_scores_with_ties() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = rng.integers(0, 20, 300).astype(float)  # many ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
        len(pos) * len(neg)
    )
    assert metrics.roc_auc(labels, scores) == pytest.approx(pairwise)


def test_roc_points_by_hand_and_their_area_is_the_auc() -> None:
    points = metrics.roc_curve(LABELS, SCORES)
    expected = [(0, 0), (0, 1 / 3), (0, 2 / 3), (1 / 3, 2 / 3), (2 / 3, 1), (1, 1)]
    assert np.array(points) == pytest.approx(np.array(expected, dtype=float))
    assert metrics.curve_area(points) == pytest.approx(metrics.roc_auc(LABELS, SCORES))


def test_thinning_keeps_the_ends_and_at_most_the_number_asked() -> None:
    points = [(i / 999, (i / 999) ** 0.5) for i in range(1000)]
    thinned = metrics.thin(points, 11)
    assert len(thinned) == 11 and thinned[0] == points[0] and thinned[-1] == points[-1]


def test_confusion_counts_by_hand() -> None:
    counts = metrics.confusion(LABELS, SCORES > 0.5)  # predicted 1, 0, 0, 0, 1, 1
    assert (counts.tp, counts.fp, counts.tn, counts.fn) == (2, 1, 2, 1)
    assert counts.accuracy == pytest.approx(4 / 6)
