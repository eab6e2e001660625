"""Score a session's segmentation against ground truth, the way the benchmarks and tests do.

Supports are drawn at random among "pure" chips (≥ 90 % one class), as a user clicks inside
a region rather than on a boundary; accuracy is measured on every chip against its
majority ground-truth class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .chips import ChipGrid
from .errors import InputError

__all__ = ["chip_truth", "draw_supports", "macro_f1", "roc_auc", "Score", "score_result"]


def chip_truth(ground_truth: np.ndarray, boxes) -> tuple[np.ndarray, np.ndarray]:
    """Majority class of each chip and its purity (fraction of the chip's pixels).

    Parameters
    ----------
    ground_truth : ndarray of int, shape (H, W)
        Per-pixel class index; negative values mean "unlabelled" and are not counted.
    boxes : ChipGrid or ndarray of int, shape (N, 4)
        A grid, or chip boxes ``(y0, x0, y1, x1)`` in pixels, end-exclusive.

    Returns
    -------
    labels : ndarray of int64, shape (N,)
        Most frequent class in each box (ties go to the lower index); -1 when a box holds no
        labelled pixel.
    purity : ndarray of float, shape (N,)
        Share of the box's pixels in that class.

    Raises
    ------
    InputError
        If the shapes are wrong or a box lies outside the map.

    Examples
    --------
    >>> gt = np.array([[0, 0, 1, 1], [0, 1, 1, 1]])
    >>> chip_truth(gt, np.array([[0, 0, 2, 2], [0, 2, 2, 4]]))
    (array([0, 1]), array([0.75, 1.  ]))
    """
    gt = np.asarray(ground_truth)
    b = np.asarray(boxes.boxes if isinstance(boxes, ChipGrid) else boxes)
    if gt.ndim != 2 or not np.issubdtype(gt.dtype, np.integer):
        raise InputError(f"ground_truth must be a 2-D integer map; got {gt.dtype} {gt.shape}.")
    if b.ndim != 2 or b.shape[1] != 4:
        raise InputError(f"boxes must have shape (N, 4) as (y0, x0, y1, x1); got {b.shape}.")
    b = b.astype(np.int64)
    h, w = gt.shape
    bad = (b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > h) | (b[:, 3] > w)
    bad |= (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"Box {i} {tuple(b[i])} is empty or outside the {h}×{w} map.")
    n_cls = int(gt.max()) + 1 if gt.size and gt.max() >= 0 else 0
    labels = np.full(len(b), -1, dtype=np.int64)
    purity = np.zeros(len(b))
    for i, (y0, x0, y1, x1) in enumerate(b):
        tile = gt[y0:y1, x0:x1].ravel()
        counts = np.bincount(tile[tile >= 0], minlength=n_cls)
        if counts.sum():
            labels[i] = int(np.argmax(counts))
            purity[i] = counts[labels[i]] / tile.size
    return labels, purity


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
