"""Which chips to label next: uncertain, unlike every labelled chip, typical, inside one phase, spread out.

A chip's score is its normalised entropy times its *novelty* times its *typicality*:

- novelty: the feature distance to the nearest support, over the median such distance of
  the unlabelled chips, capped at 1. An uncertain chip that looks like a chip already
  labelled teaches little (on the real Au image the most uncertain chips are many copies of
  one particle rim); beyond the median no extra credit is given, so outliers are not chased.
- typicality: how crowded the chip's neighbourhood in feature space is (median over all
  chips of the mean distance to the 10 nearest chips, over the chip's own), capped at 1.
  Chips that straddle a boundary are blends that few other chips resemble; labelling one
  moves a prototype towards a mixture. Chips in crowded regions are never favoured beyond
  the median, so a rare class is not passed over for the common one.

Measured with ``benchmarks/suggest_curves.py`` (from 1 support per class, one chip added at
a time, each labelled with its true majority class; 11 cases, 5 draws; chip-level maps):
mean accuracy at +4 / +8 / +16 clicks 0.917 / 0.927 / 0.933 against 0.903 / 0.919 / 0.927
without typicality and 0.891 / 0.907 / 0.913 for random picking. Typicality turned the
four-lattice case (0.813 / 0.811 / 0.834 without it, random 0.849 / 0.864 / 0.902) into
0.920 / 0.930 / 0.937, and real Au at +4 from 0.832 to 0.906 (random 0.851); the
textures-with-spectra case fell from 0.924 / 0.942 / 0.946 to the level of random picking.
Measured and left out: typicality uncapped, or squared, or square-rooted; relative to the
chip's predicted class; on image + EDS features; alternating picks with and without it;
novelty uncapped (chases outliers), favouring chips inside one predicted region, k-centre
picks, class-balanced picks, uncertainty-weighted coverage gain.

Of the best-scored chips, those inside one phase come first: each candidate's windows shifted
by a quarter chip are classified too, and a chip whose class changes as its window moves (its
*view disagreement*, :func:`view_disagreement`) straddles a boundary; its score is multiplied
by ``min(1, median / disagreement)`` over the candidates, at least 0.7. And a boundary chip
that is labelled counts less in its prototype (:func:`support_purity`), so one such click no
longer drags a prototype towards the other phase. Measured on the curves above, new instances
of the generated cases included (``--case-seed 1-3``): the four lattices of seed 2 went from
0.900 / 0.857 / 0.882 (random 0.879 / 0.892 / 0.906) to 0.924 / 0.938 / 0.950, the minority
class of seed 1 from 0.897 / 0.900 / 0.904 (random 0.893 / 0.910 / 0.920) to above random;
the tuned four-texture case lost about 0.01 (see README).

Uncertain chips that would change nothing are passed over for chips whose label would fix a
region (:func:`expected_changes`): for the best-scored candidates and the most uncertain and
novel ones, the number of chips that would change class if the candidate were labelled (each
class weighed by its probability, the candidate by the purity it would get as a support) is
counted in the classification's own metric, and a candidate more than
:data:`IMPACT_THRESHOLD` times the median has its score multiplied by the excess. On the
four-texture case with spectra the suggestions kept picking boundary chips while ten chips of
one texture stayed wrong; labelling any one of them fixed 9-10 of the 11 wrong chips, but
they ranked 140th-240th of 256 (atypical: few chips resemble them). With the impact factor
(``benchmarks/suggest_curves.py``, 5 draws, four instances of the generated cases, this
machine's AVX-512 numerics): tuned four textures 0.914 / 0.916 / 0.916 → 0.924 / 0.943 /
0.943 (random 0.910 / 0.920 / 0.920), the minority class of seed 2 0.890 / 0.893 / 0.897 →
0.915 / 0.918 / 0.928; the four lattices of seed 2 lost at +16 (0.952 → 0.926, random 0.916)
and real Au at +4 and +16 (0.884 / 0.958 → 0.869 / 0.947, random 0.849 / 0.867). Measured
and left out: the impact as a plain factor, in place of the typicality, capped at 2 or 1.5, or
counting only uncertain chips' changes (each put the lattices or real Au behind random at +4,
e.g. 0.857 against 0.863; a plain factor with the candidate's purity, 0.842); the expected
error reduction (which favours confident chips).

When several chips are asked for at once, they are picked one at a time and chips within
two grid steps of an earlier pick are passed over, so five suggestions are not five
neighbours on one boundary.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .distances import predict_log_proba, prototypes, squared_distances

__all__ = ["IMPACT_THRESHOLD", "PURE_DISAGREEMENT", "expected_changes", "novelty",
           "rank_suggestions", "reason", "support_purity", "typicality", "view_disagreement"]

#: View disagreement (see :func:`view_disagreement`) up to which a support counts fully in its
#: prototype. Most chips inside one phase stay below it; on the four-lattice case chips that
#: are 50-80 % one phase are at 0.07-0.09 (median).
PURE_DISAGREEMENT = 0.03

#: How many of the best-scored chips :func:`rank_suggestions` checks for view disagreement.
DISAGREEMENT_CANDIDATES = 24

#: How many chips :func:`rank_suggestions` asks ``impact`` about: this many of the best-scored,
#: and this many of the most uncertain and novel (typical or not).
IMPACT_CANDIDATES = 48

#: A candidate whose label would change more than this many times the median candidate's
#: expected changes (see :func:`expected_changes`) has its score multiplied by the excess.
#: Measured on the suggestion curves (5 draws; see the module notes): at 2 the four-lattice
#: case fell to 0.914 / 0.919 / 0.922 (0.923 / 0.933 / 0.935 without; random 0.863 / 0.875 /
#: 0.910); 2.5 and 4 gave about the gains of 3 and more losses on the held-out lattices.
IMPACT_THRESHOLD = 3.0

#: The least a boundary chip's score is multiplied by. Without a floor, a chip that keeps its
#: windows in doubt is passed over click after click: on a held-out thickness-gradient
#: instance one such chip stayed wrong (0.936 against 0.950 with the floor).
DISAGREEMENT_FLOOR = 0.7


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


def typicality(features: np.ndarray, k: int = 10, max_reference: int = 4096, chunk: int = 1024,
               seed: int = 0) -> np.ndarray:
    """How crowded each chip's neighbourhood is in feature space, relative and capped at 1.

    Parameters
    ----------
    features : ndarray, shape (N, D)
        Chip features (the session's scaled image embeddings).
    k : int
        Neighbours whose mean distance measures the crowding.
    max_reference : int
        With more chips than this, neighbours are sought among a fixed random subset of this
        many (``k`` scaled down in proportion, at least 3), which bounds the cost to
        ``N × max_reference`` distances.
    chunk : int
        Chips per block of the distance computation (bounds the memory).
    seed : int
        Seed of the reference subset.

    Returns
    -------
    ndarray, shape (N,)
        In (0, 1]: the median over chips of the mean distance to the ``k`` nearest other
        chips, over the chip's own, capped at 1. All ones with fewer than ``k + 2`` chips.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.r_[rng.normal(0, 1, (30, 2)), rng.normal(9, 1, (30, 2)), [[4.5, 4.5]]]
    >>> t = typicality(x, k=5)
    >>> float(np.median(t[:60])), bool(t[60] < 0.5)  # a blend of the two groups is atypical
    (1.0, True)
    """
    x = np.asarray(features, dtype=np.float32)
    n = x.shape[0]
    if n < k + 2:
        return np.ones(n)
    ref_idx = np.arange(n)
    if n > max_reference:
        ref_idx = np.sort(np.random.default_rng(seed).choice(n, max_reference, replace=False))
        k = max(3, int(round(k * max_reference / n)))
    ref = x[ref_idx]
    in_ref = np.zeros(n, bool)
    in_ref[ref_idx] = True
    rsq = (ref ** 2).sum(1)
    knn = np.empty(n)
    for a in range(0, n, chunk):
        b = x[a:a + chunk]
        d2 = np.clip((b ** 2).sum(1)[:, None] - 2.0 * b @ ref.T + rsq[None, :], 0.0, None)
        near = np.sort(np.partition(d2, k, axis=1)[:, :k + 1], axis=1)
        near = np.sqrt(near)
        # A chip in the reference finds itself at distance 0 first: skip it.
        own = in_ref[a:a + chunk]
        knn[a:a + chunk] = np.where(own, near[:, 1:].mean(1), near[:, :k].mean(1))
    med = float(np.median(knn))
    if med <= 0:
        return np.ones(n)
    return np.minimum(med / np.maximum(knn, 1e-12 * med), 1.0)


def view_disagreement(views: np.ndarray, protos: np.ndarray, temperature: float) -> np.ndarray:
    """How much a chip's class probabilities change as its window shifts: a boundary detector.

    A chip inside one phase keeps its class when the window moves by a quarter chip; a chip
    that straddles a boundary gains or loses the other phase. Each view is given
    ``p ∝ exp(-d / T)`` over the squared distances ``d`` to the prototypes, and the chip's
    disagreement is the mean total-variation distance of its views from their mean.

    Parameters
    ----------
    views : ndarray, shape (V, M, D)
        Embeddings of V windows (the chip and shifted ones) of M chips, in the prototypes' space.
    protos : ndarray, shape (K, D)
    temperature : float
        The distance scale ``T`` (e.g. the median nearest-prototype distance of the chips).

    Returns
    -------
    ndarray, shape (M,)
        In [0, 1): 0 when every view gives the same probabilities.

    Examples
    --------
    >>> protos = np.array([[0.0], [4.0]])
    >>> inside = [[0.0], [0.2], [-0.2]]  # three views of a chip in class 0
    >>> edge = [[2.0], [0.5], [3.5]]     # a chip whose windows cross into class 1
    >>> np.round(view_disagreement(np.array([inside, edge]).transpose(1, 0, 2), protos, 2.0), 2)
    array([0.  , 0.33])
    """
    v = np.asarray(views, dtype=np.float64)
    d = squared_distances(v.reshape(-1, v.shape[-1]), protos)
    p = np.exp(predict_log_proba(d, max(float(temperature), 1e-12))).reshape(*v.shape[:2], -1)
    return np.abs(p - p.mean(axis=0)).sum(axis=-1).mean(axis=0) / 2.0


def support_purity(disagreement: np.ndarray, pure: float = PURE_DISAGREEMENT) -> np.ndarray:
    """Weight of each support in its prototype: 1 up to ``pure`` view disagreement, then less.

    A support that straddles a boundary, labelled with its majority class, would pull the
    prototype towards the other phase; it counts ``pure / disagreement`` of a support
    inside one phase.

    Examples
    --------
    >>> support_purity(np.array([0.01, 0.03, 0.12])).tolist()
    [1.0, 1.0, 0.25]
    """
    dis = np.asarray(disagreement, dtype=np.float64)
    return np.minimum(1.0, pure / np.maximum(dis, 1e-12))


def expected_changes(modalities: list[tuple[float, np.ndarray, np.ndarray]],
                     support_lab: np.ndarray, support_weights: np.ndarray | None, n_classes: int,
                     labels: np.ndarray, is_free: np.ndarray, probabilities: np.ndarray,
                     chips: np.ndarray, chip_weights: np.ndarray | None = None) -> np.ndarray:
    """How many chips would change class if each of ``chips`` were labelled, in expectation.

    Labelling chip ``c`` with class ``k`` adds it to ``k``'s prototype with weight ``u_c``
    (its purity), which moves that prototype by ``α = u_c / (W_k + u_c)`` of the way to the
    chip (``W_k`` the class's summed support weight). The new squared distance of every chip
    ``j`` is ``|g_j|² - 2α g_j·v + α² |v|²`` with ``g_j = x_j - p_k`` and ``v = x_c - p_k``,
    so one matrix product per class scores all candidates at once. The count of unlabelled
    chips whose nearest prototype changes is weighed by ``P(k | c)`` and summed over ``k``.

    A chip whose label changes nothing is not worth a click however uncertain it is; a chip
    whose label would move a whole region is, even where few chips look like it (on the
    four-texture case one such chip fixed 10 of the 11 wrong chips, and ranked 228th of 256
    by entropy × novelty × typicality).

    Parameters
    ----------
    modalities : list of (weight, embeddings, support embeddings)
        Each modality's weight in the fused squared distance, its (N, D) chip embeddings and
        its (S, D) support embeddings (early fusion: ``(1 - w) d_image + w d_eds``).
    support_lab : ndarray of int, shape (S,)
    support_weights : ndarray, shape (S,), optional
        Each support's weight in its prototype; None weighs all alike.
    n_classes : int
    labels : ndarray of int, shape (N,)
        The current class of every chip.
    is_free : ndarray of bool, shape (N,)
        The chips whose changes count (the unlabelled ones).
    probabilities : ndarray, shape (N, K)
        Class probabilities of every chip (the label a user would give).
    chips : ndarray of int, shape (M,)
        The candidates.
    chip_weights : ndarray, shape (M,), optional
        The weight each candidate would get as a support (its purity); None: 1.

    Returns
    -------
    ndarray, shape (M,)

    Examples
    --------
    >>> x = np.array([[0.0], [1.0], [2.4], [2.8], [4.0]])
    >>> mods = [(1.0, x, x[[0, 4]])]
    >>> p = np.array([[1, 0], [1, 0], [0.5, 0.5], [0.5, 0.5], [0, 1]])
    >>> lab = np.array([0, 0, 1, 1, 1])
    >>> free = np.array([False, True, True, True, False])
    >>> expected_changes(mods, np.array([0, 1]), None, 2, lab, free, p, np.array([1, 2])).tolist()
    [0.0, 0.5]
    """
    lab = np.asarray(support_lab, dtype=np.int64)
    u = np.ones(lab.size) if support_weights is None else np.asarray(support_weights, dtype=np.float64)
    total = np.bincount(lab, weights=u, minlength=n_classes)
    chips = np.asarray(chips, dtype=np.int64)
    cw = np.ones(chips.size) if chip_weights is None else np.asarray(chip_weights, dtype=np.float64)
    mods = [(float(w), np.asarray(e, dtype=np.float64), prototypes(np.asarray(sup), np.arange(lab.size),
                                                                  lab, n_classes, u))
            for w, e, sup in modalities if w > 0]
    d = sum(w * squared_distances(e, p) for w, e, p in mods)
    cur = np.asarray(labels, dtype=np.int64)
    free = np.asarray(is_free, dtype=bool)
    probs = np.asarray(probabilities, dtype=np.float64)[chips]
    out = np.zeros(chips.size)
    for k in range(n_classes):
        a = cw / (total[k] + cw)  # (M,) how far prototype k moves towards each candidate
        dk = np.zeros((d.shape[0], chips.size))
        for w, e, p in mods:
            g = e - p[k]
            v = g[chips]
            dk += w * ((g ** 2).sum(1)[:, None] - 2.0 * a[None, :] * (g @ v.T)
                       + (a * a * (v ** 2).sum(1))[None, :])
        others = np.delete(d, k, axis=1)
        rest = np.delete(np.arange(n_classes), k)[others.argmin(axis=1)]
        new = np.where(dk < others.min(axis=1)[:, None], k, rest[:, None])
        out += probs[:, k] * ((new != cur[:, None]) & free[:, None]).sum(axis=0)
    return out


def rank_suggestions(entropy: np.ndarray, is_support: np.ndarray, n_cols: int, n: int,
                     spacing: int = 2, novelty: np.ndarray | None = None,
                     typicality: np.ndarray | None = None,
                     disagreement: Callable[[np.ndarray], np.ndarray] | None = None,
                     candidates: int = DISAGREEMENT_CANDIDATES,
                     disagreement_weight: float = 1.0,
                     impact: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """The ``n`` chips to label next, best first: uncertain, novel and typical, spread out.

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
        Multiplies the entropy (see :func:`novelty`); None leaves it out.
    typicality : ndarray, shape (N,), optional
        Multiplies the entropy (see :func:`typicality`); None leaves it out.
    disagreement : callable, optional
        ``disagreement(chips) -> (M,)`` view disagreement (see :func:`view_disagreement`).
        With it, the ``max(candidates, 3 n)`` best-scored chips are scored again, times
        ``min(1, median / disagreement)`` over them (at least :data:`DISAGREEMENT_FLOOR`), and
        ranked before all others: of the chips worth asking about, those inside one phase
        first.
    candidates : int
    disagreement_weight : float
        Power of that factor: 1 where the image alone classifies; ``1 - w`` where the EDS
        carries weight ``w`` (the shifted views are image views).
    impact : callable, optional
        ``impact(chips) -> (M,)`` how many chips each would change if labelled (see
        :func:`expected_changes`). Asked about the :data:`IMPACT_CANDIDATES` best-scored chips
        and as many of the most uncertain and novel; a candidate whose impact exceeds
        :data:`IMPACT_THRESHOLD` times their median has its score multiplied by the excess
        (before the view check), so a chip that would fix a whole region is not passed over
        for being atypical.

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
    doubt = np.where(free, score, -np.inf)  # uncertain and novel, typical or not
    if typicality is not None:
        score = score * np.nan_to_num(np.asarray(typicality, dtype=np.float64))
    score = np.where(free, score, -np.inf)
    if impact is not None and free.any():
        score = _weigh_impact(score, doubt, free, impact)
    order = np.argsort(-score, kind="stable")
    order = order[np.isfinite(score[order])]
    if disagreement is not None and order.size:
        top = order[: max(int(candidates), 3 * int(n))]
        dis = np.nan_to_num(np.asarray(disagreement(top), dtype=np.float64), nan=0.0)
        ref = float(np.median(dis))
        factor = np.minimum(1.0, ref / np.maximum(dis, 1e-12)) if ref > 0 else np.ones(top.size)
        factor = np.maximum(factor, DISAGREEMENT_FLOOR) ** float(disagreement_weight)
        again = top[np.argsort(-(score[top] * factor), kind="stable")]
        order = np.concatenate([again, order[top.size:]])
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


def _weigh_impact(score: np.ndarray, doubt: np.ndarray, free: np.ndarray,
                  impact: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``score`` with the candidates of exceptional impact raised (see :func:`rank_suggestions`).

    ``doubt`` is entropy × novelty (-inf on supports): its best chips are candidates too.
    """
    m = IMPACT_CANDIDATES
    cand = np.union1d(np.argsort(-score, kind="stable")[:m], np.argsort(-doubt, kind="stable")[:m])
    cand = cand[free[cand]]
    changes = np.nan_to_num(np.asarray(impact(cand), dtype=np.float64))
    ref = float(np.median(changes))
    if ref <= 0:
        return score
    out = score.copy()
    out[cand] = np.maximum(score[cand], 0.0) * np.maximum(1.0, changes / (IMPACT_THRESHOLD * ref))
    return out


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
