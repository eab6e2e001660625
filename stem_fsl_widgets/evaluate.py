"""Score a session's segmentation against ground truth, the way the benchmarks and tests do.

Supports are drawn at random among "pure" chips (≥ 90 % one class), as a user clicks inside
a region rather than on a boundary; accuracy is measured on every chip against its
majority ground-truth class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chips import ChipGrid

__all__ = ["chip_truth", "draw_supports", "macro_f1", "roc_auc", "Score", "score_result"]


def chip_truth(ground_truth: np.ndarray, grid: ChipGrid) -> tuple[np.ndarray, np.ndarray]:
    """Majority class and its purity (fraction of the chip's pixels) per chip."""
    k = int(ground_truth.max()) + 1
    chips = grid.extract(ground_truth.astype(np.int64))
    counts = np.stack([(chips == c).sum((1, 2)) for c in range(k)], 1)
    return counts.argmax(1), counts.max(1) / float(grid.size**2)


def draw_supports(truth: np.ndarray, purity: np.ndarray, k: int, rng: np.random.Generator,
                  *, min_purity: float = 0.9) -> dict[int, int]:
    """``k`` random pure chips per class → {chip: class index}."""
    out: dict[int, int] = {}
    for c in np.unique(truth):
        pool = np.flatnonzero((truth == c) & (purity >= min_purity))
        if pool.size == 0:
            pool = np.flatnonzero(truth == c)
        for i in rng.choice(pool, size=min(k, pool.size), replace=False):
            out[int(i)] = int(c)
    return out


def macro_f1(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean of per-class F1 scores."""
    f1 = []
    for c in range(n_classes):
        tp = np.sum((pred == c) & (truth == c))
        fp = np.sum((pred == c) & (truth != c))
        fn = np.sum((pred != c) & (truth == c))
        f1.append(2 * tp / max(2 * tp + fp + fn, 1))
    return float(np.mean(f1))


def roc_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for the boolean ``positive`` (Mann–Whitney)."""
    pos, neg = score[positive], score[~positive]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(order.size)
    ranks[order] = np.arange(1, order.size + 1)
    # Average ranks of ties so equal scores count one half.
    allv = np.concatenate([pos, neg])
    _, inv, cnt = np.unique(allv, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = (sums / cnt)[inv]
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


@dataclass
class Score:
    """Chip accuracy, macro-F1 and how well entropy flags wrong chips (AUROC)."""

    accuracy: float
    macro_f1: float
    entropy_auroc: float


def score_result(result, truth: np.ndarray, class_ids: list[int]) -> Score:
    """Score a :class:`Result` whose classes map to ground-truth ids ``class_ids``."""
    pred = np.asarray(class_ids)[result.labels]
    free = ~result.is_support
    wrong = pred != truth
    return Score(
        accuracy=float(np.mean(~wrong[free])),
        macro_f1=macro_f1(truth[free], pred[free], int(truth.max()) + 1),
        entropy_auroc=roc_auc(result.entropy[free], wrong[free]),
    )
