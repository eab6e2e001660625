"""Which chips to label next: uncertain ones unlike every labelled chip, spread over the image.

A chip's score is its normalised entropy times its *novelty*: the feature distance to the
nearest support, over the median such distance of the unlabelled chips, capped at 1. An
uncertain chip that looks like a chip already labelled teaches little (on the real Au image
the most uncertain chips are many copies of one particle rim); beyond the median distance no
extra credit is given, so outliers (contamination, a scan glitch) are not chased.

Measured with ``benchmarks/suggest_curves.py`` (from 1 support per class, one chip added at
a time, each labelled with its true majority class; 11 cases, 5 draws; chip-level maps):
mean accuracy at +4 / +8 / +16 clicks 0.903 / 0.919 / 0.927 against 0.902 / 0.909 / 0.927
for entropy alone and 0.891 / 0.907 / 0.913 for random picking. Measured and left out:
novelty uncapped (chases outliers: MoS2 falls below random), squared or square-rooted,
favouring chips inside one predicted region, alternating with k-centre picks, and
class-balanced picks. On the four-lattice case random picking still wins at every step.

When several chips are asked for at once, they are picked one at a time and chips within
two grid steps of an earlier pick are passed over, so five suggestions are not five
neighbours on one boundary.
"""

from __future__ import annotations

import numpy as np

__all__ = ["novelty", "rank_suggestions", "reason"]


def novelty(features: np.ndarray, is_support: np.ndarray, cap: float = 1.0,
            chunk: int = 2048) -> np.ndarray:
    """Distance of each chip to its nearest support in feature space, relative and capped.

    Parameters
    ----------
    features : ndarray, shape (N, D)
        Chip features (the session's scaled image embeddings).
    is_support : ndarray of bool, shape (N,)
    cap : float
        Largest value: distances beyond ``cap`` times the median get no extra credit.
    chunk : int
        Chips per block of the distance computation (bounds the memory).

    Returns
    -------
    ndarray, shape (N,)
        In [0, cap]; the distance over the median distance of the unlabelled chips. All ones
        without supports or unlabelled chips.
    """
    x = np.asarray(features, dtype=np.float32)
    sup = x[np.asarray(is_support, dtype=bool)]
    free = ~np.asarray(is_support, dtype=bool)
    if sup.shape[0] == 0 or not free.any():
        return np.ones(x.shape[0])
    sq = (sup ** 2).sum(1)
    d = np.empty(x.shape[0])
    for a in range(0, x.shape[0], chunk):
        b = x[a:a + chunk]
        d2 = (b ** 2).sum(1)[:, None] - 2.0 * b @ sup.T + sq[None, :]
        d[a:a + chunk] = np.sqrt(np.clip(d2.min(axis=1), 0.0, None))
    med = float(np.median(d[free]))
    return np.minimum(d / med, cap) if med > 0 else np.ones(x.shape[0])


def rank_suggestions(entropy: np.ndarray, is_support: np.ndarray, n_cols: int, n: int,
                     spacing: int = 2, novelty: np.ndarray | None = None) -> np.ndarray:
    """The ``n`` chips to label next, best first: uncertain and novel, spread out.

    Parameters
    ----------
    entropy : ndarray, shape (N,)
        Normalised entropy of each chip.
    is_support : ndarray of bool, shape (N,)
    n_cols : int
        Grid columns (chip ``i`` is at row ``i // n_cols``).
    n : int
    spacing : int
        Chips within this many grid steps of an earlier pick are passed over while others
        remain.
    novelty : ndarray, shape (N,), optional
        Multiplies the entropy (see :func:`novelty`); None ranks by entropy alone.

    Returns
    -------
    ndarray of int

    Examples
    --------
    >>> h = np.array([0.9, 0.8, 0.1, 0.7])  # a 1 × 4 grid
    >>> rank_suggestions(h, np.zeros(4, bool), 4, 2, spacing=1).tolist()
    [0, 3]
    """
    free = ~np.asarray(is_support, dtype=bool)
    score = np.nan_to_num(np.asarray(entropy, dtype=np.float64))
    if novelty is not None:
        score = score * np.nan_to_num(np.asarray(novelty, dtype=np.float64))
    score = np.where(free, score, -np.inf)
    order = np.argsort(-score, kind="stable")
    order = order[np.isfinite(score[order])]
    rows, cols = np.divmod(order, n_cols)
    picked: list[int] = []
    near = np.zeros(order.size, bool)
    for j in range(order.size):
        if len(picked) >= n:
            break
        if near[j]:
            continue
        picked.append(int(order[j]))
        near |= (np.abs(rows - rows[j]) <= spacing) & (np.abs(cols - cols[j]) <= spacing)
    if len(picked) < n:  # too few far-apart chips: fill with the next best
        rest = [int(i) for i in order if int(i) not in set(picked)]
        picked += rest[: n - len(picked)]
    return np.asarray(picked, dtype=np.int64)


def reason(probabilities: np.ndarray, classes: list[str]) -> str:
    """Why a chip is worth a click, from its class probabilities.

    E.g. "between matrix (52 %) and oxide (41 %)".
    """
    p = np.asarray(probabilities, dtype=np.float64)
    top = np.argsort(-p)[:2]
    if p.size < 2 or p[top[1]] < 0.05:
        return f"probably {classes[top[0]]} ({100 * p[top[0]]:.0f} %), but far from every labelled chip"
    return (f"between {classes[top[0]]} ({100 * p[top[0]]:.0f} %) and "
            f"{classes[top[1]]} ({100 * p[top[1]]:.0f} %)")
