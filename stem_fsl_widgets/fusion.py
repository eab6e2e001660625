"""Put image and EDS embeddings on one footing and fuse them (early or late).

Each modality is scaled so that its mean squared chip norm is 1 (after per-feature
standardisation for the image, whose features have unrelated units). Early fusion then
concatenates ``sqrt(1-w)·image ⊕ sqrt(w)·eds`` so the squared distance is exactly
``(1-w)·d_image + w·d_eds``; late fusion sums per-modality log-probabilities with the same
weights. :func:`auto_weight` picks ``w`` from how well each modality separates each pair of
the classes the user defined, so a modality that carries no class information is not allowed
to blur the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .distances import normalised_entropy, predict_log_proba, prototypes, squared_distances

__all__ = ["DEFAULT_EDS_WEIGHT", "Scaler", "auto_weight", "fuse_early", "fuse_late", "mean_feature_variance",
           "spatial_coherence", "support_feature_weights"]


#: The EDS weight used while "auto" has too few supports to decide (fewer than two classes).
DEFAULT_EDS_WEIGHT = 0.5


@dataclass
class Scaler:
    """Feature centring/scaling fitted on one image, reusable on others (batch mode).

    Parameters
    ----------
    per_feature : bool
        Divide each feature by its own standard deviation (image features) or all by one
        number (EDS, whose PCA coordinates share units).
    """

    per_feature: bool = True
    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None

    def fit(self, emb: np.ndarray) -> Scaler:
        """Learn centre and scale from embeddings (N, D)."""
        emb = np.asarray(emb, dtype=np.float64)
        self.mean_ = emb.mean(axis=0)
        xc = emb - self.mean_
        if self.per_feature:
            std = xc.std(axis=0)
            std[std < 1e-12] = 1.0  # a constant feature carries nothing; leave it at 0
            self.scale_ = std * np.sqrt(emb.shape[1])  # → mean squared norm 1
        else:
            rms = np.sqrt((xc**2).sum(axis=1).mean())
            self.scale_ = np.full(emb.shape[1], rms if rms > 1e-12 else 1.0)
        return self

    def transform(self, emb: np.ndarray) -> np.ndarray:
        """Apply the fitted scaling, (N, D) float32."""
        x = (np.asarray(emb, dtype=np.float64) - self.mean_) / self.scale_
        return x.astype(np.float32)


def mean_feature_variance(emb: np.ndarray) -> float:
    """Per-feature variance of the chips' embeddings, averaged over the features.

    It depends on the image only, so a session computes it once per grid and passes it to
    :func:`support_feature_weights` at every click (11 ms a click at 16,384 chips otherwise).
    """
    return float(np.asarray(emb, dtype=np.float64).var(axis=0).mean())


def support_feature_weights(views: np.ndarray, labels: np.ndarray, emb: np.ndarray,
                            shrink: float = 0.3, *, mean_variance: float | None = None) -> np.ndarray:
    """Per-feature weights from how much each feature varies inside the user's classes.

    A feature that changes a lot between shifted views of the same support, or between
    supports of one class, is noise for this image; one that stays put inside a class
    separates classes. Each feature is weighted by ``1 / (within-class variance + shrink ·
    mean variance over all chips)``, normalised to mean 1 (a diagonal Mahalanobis metric
    learned from the supports; the shrinkage keeps one or two supports from deciding alone).

    Parameters
    ----------
    views : ndarray, shape (V, S, D)
        Scaled embeddings of V views (the chip itself and shifted windows) of the S supports.
    labels : ndarray of int, shape (S,)
        Class of each support.
    emb : ndarray, shape (N, D)
        Scaled embeddings of every chip of the image.
    shrink : float
    mean_variance : float, optional
        :func:`mean_feature_variance` of ``emb``, when the caller has it cached.

    Returns
    -------
    ndarray, shape (D,), mean 1

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> views = np.stack([np.c_[rng.normal(0, 1, 4), [0., 0., 5., 5.]] for _ in range(3)])
    >>> chips = np.c_[rng.normal(0, 1, 50), rng.normal(0, 3, 50)]
    >>> w = support_feature_weights(views, np.array([0, 0, 1, 1]), chips)
    >>> bool(w[1] > w[0])
    True
    """
    v, s, d = views.shape
    x = views.reshape(-1, d).astype(np.float64)
    lab = np.tile(np.asarray(labels, dtype=np.int64), v)
    n_cls = int(lab.max()) + 1
    sums = np.zeros((n_cls, d))
    np.add.at(sums, lab, x)
    means = sums / np.bincount(lab, minlength=n_cls)[:, None].clip(1)
    var_w = ((x - means[lab]) ** 2).mean(axis=0)
    if mean_variance is None:
        mean_variance = mean_feature_variance(emb)
    var_t = float(mean_variance) or 1.0
    w = 1.0 / (var_w + shrink * var_t)
    return w / w.mean()


def fuse_early(image_emb: np.ndarray | None, eds_emb: np.ndarray | None, eds_weight: float) -> np.ndarray:
    """Concatenate scaled modalities with weights ``sqrt(1-w)`` and ``sqrt(w)``.

    ``eds_weight = 0`` returns the image embedding alone and ``1`` the EDS embedding alone,
    so the single-modality cases are exactly the unfused ones.
    """
    w = float(np.clip(eds_weight, 0.0, 1.0))
    if eds_emb is None or w == 0.0:
        if image_emb is None:
            raise ValueError("no embedding to fuse")
        return image_emb
    if image_emb is None or w == 1.0:
        return eds_emb
    return np.concatenate([np.sqrt(1 - w) * image_emb, np.sqrt(w) * eds_emb], axis=1)


def fuse_late(logp_image: np.ndarray | None, logp_eds: np.ndarray | None, eds_weight: float) -> np.ndarray:
    """Weighted sum of per-modality log-probabilities (N, K), renormalised."""
    w = float(np.clip(eds_weight, 0.0, 1.0))
    if logp_eds is None or w == 0.0:
        z = logp_image
    elif logp_image is None or w == 1.0:
        z = logp_eds
    else:
        z = (1 - w) * logp_image + w * logp_eds
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _confidence(dist: np.ndarray) -> float:
    """Mean ``1 - H/log K`` of the classifier given by distances (N, K)."""
    return float(1.0 - normalised_entropy(np.exp(predict_log_proba(dist))).mean())


def spatial_coherence(labels: np.ndarray, shape: tuple[int, int], step: int = 1,
                      min_pairs: int = 16) -> float | None:
    """How much more often chips ``step`` apart on the grid share a label than chance (a kappa).

    A modality that carries class information paints regions larger than a chip; one that
    carries none paints salt and pepper. ``(agree - chance) / (1 - chance)`` over the pairs of
    chips ``step`` rows or columns apart, with ``chance = Σ f_k²`` from the label fractions;
    floored at 0. ``step`` should make the pairs share no pixels (``ceil(size / stride)``), or
    overlapping chips agree through their shared pixels alone.

    Parameters
    ----------
    labels : ndarray of int, shape (n_rows * n_cols,)
    shape : (int, int)
        Grid rows and columns.
    step : int
    min_pairs : int
        Fewer pairs than this: None (too few to tell).

    Returns
    -------
    float or None
        0 for labels no more alike than chance (or a single label everywhere), 1 for
        neighbours that always agree.

    Examples
    --------
    >>> halves = np.repeat([0, 1], 32)  # an 8 × 8 grid, top half one class
    >>> spatial_coherence(halves, (8, 8))
    0.8571428571428572
    >>> spatial_coherence(np.tile([0, 1], 32), (8, 8))  # stripes a chip wide: 0
    0.0
    """
    grid = np.asarray(labels).reshape(shape)
    pairs = np.r_[(grid[step:] == grid[:-step]).ravel(), (grid[:, step:] == grid[:, :-step]).ravel()]
    if pairs.size < min_pairs:
        return None
    frac = np.bincount(grid.ravel()) / grid.size
    chance = float((frac ** 2).sum())
    if chance >= 1.0 - 1e-12:
        return 0.0
    return max(0.0, (float(pairs.mean()) - chance) / (1.0 - chance))


def _coherence_weight(dists: list[np.ndarray], grid_shape: tuple[int, int], step: int) -> float | None:
    """``κ_eds / (κ_image + κ_eds)`` of each modality's own chip map (from its chip-to-prototype
    distances, image then EDS); None when neither is coherent."""
    ki, ke = (spatial_coherence(np.argmin(d, axis=1), grid_shape, step) for d in dists)
    if ki is None or ke is None or ki + ke <= 1e-12:
        return None
    return float(ke / (ki + ke))


def _held_out_fisher(support: np.ndarray, support_lab: np.ndarray, n_classes: int,
                     weights: np.ndarray) -> float:
    """Leave-one-out margin over spread of one modality's supports (weighted; see :func:`auto_weight`)."""
    s_idx = np.arange(support_lab.size)
    total = np.bincount(support_lab, weights=weights, minlength=n_classes)[support_lab]
    held = (np.bincount(support_lab, minlength=n_classes)[support_lab] >= 2) & (weights > 0)
    d = squared_distances(support, prototypes(support, s_idx, support_lab, n_classes, weights=weights))
    # A weighted class mean without support s is total/(total - w_s) times farther from it.
    own = d[s_idx, support_lab] * (total / np.maximum(total - weights, 1e-12)) ** 2
    d[s_idx, support_lab] = np.inf
    u = weights[held]
    margin = float(((d.min(axis=1) - own)[held] * u).sum() / u.sum())
    spread = float((own[held] * u).sum() / u.sum())
    return max(0.0, margin) / max(spread, 1e-12)


def auto_weight(
    image_emb: np.ndarray,
    eds_emb: np.ndarray,
    support_image: np.ndarray,
    support_eds: np.ndarray,
    support_lab: np.ndarray,
    n_classes: int,
    grid_shape: tuple[int, int] | None = None,
    step: int = 1,
    support_weights: np.ndarray | None = None,
) -> float:
    """EDS weight in [0, 1] from how well each modality separates the user's supports.

    Each modality gets a Fisher score from leave-one-out distances: for each support, the
    distance to the nearest other class's prototype minus the distance to its own class's
    prototype rebuilt without it (a class mean that leaves the point out is ``(n/(n-1))²``
    times farther than the full mean, so this is closed-form), averaged over supports and
    divided by the mean own-class distance (the spread inside a class). That is the expected
    log-likelihood ratio a modality contributes per chip, so ``w = F_eds / (F_image + F_eds)``:
    a modality with no class information (margin ≈ 0) gets ≈ 0 weight however confident the
    other one is, and two informative modalities share the weight by how well each separates.
    A click costs O(supports × classes × features) whatever the number of supports.

    With a single support per class there is nothing to hold out. Each modality's own
    classifier then labels every chip, and it is scored by how coherent that map is on the
    chip grid (:func:`spatial_coherence`, with ``grid_shape``): ``w = κ_eds / (κ_image + κ_eds)``.
    The mean confidence ``1 - H/log K`` used before scored a modality of pure noise at
    0.10-0.43 (photographed textures with a flat spectrum, one support per class; its salt and
    pepper scores κ ≈ 0.0-0.06). Without ``grid_shape``, on a grid too small to tell, or when
    neither map is coherent, the confidence decides as before.

    A few held-out supports make a noisy Fisher score, so with ``grid_shape`` the two are
    pooled: ``(h·w_Fisher + K·w_κ) / (h + K)`` for ``h`` held-out supports and ``K`` classes.
    And each support counts in its class mean and in the averages by its ``support_weights``
    (its purity, :func:`.suggest.support_purity`). On the four-texture case with measured
    spectra, one suggested chip half in one texture and half in another (its EDS a blend)
    gave the EDS a negative margin: the weight fell from 0.43-0.52 to 0 and stayed there for
    4-9 clicks, and the chip errors doubled (18 → 31, 14 → 32). Pooled and weighted, the
    weight goes 0.43 → 0.34 → 0.24 and that click costs nothing (17 errors).

    Parameters
    ----------
    image_emb, eds_emb : ndarray, shape (N, Di) and (N, De)
        Scaled embeddings of every chip.
    support_image, support_eds : ndarray, shape (S, Di) and (S, De)
        Scaled embeddings of the supports.
    support_lab : ndarray of int, shape (S,)
    n_classes : int
    grid_shape : (int, int), optional
        Chip grid rows and columns (chips in row-major order), for the coherence scores.
    step : int
        Grid steps between chips that share no pixels (``ceil(size / stride)``).
    support_weights : ndarray, shape (S,), optional
        Weight of each support (its purity); None weighs all alike.

    Returns
    -------
    float

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> lab = np.repeat([0, 1], 3)
    >>> img = np.eye(2)[lab] * 4 + rng.normal(0, 0.3, (6, 2))
    >>> noise = rng.normal(0, 1, (6, 2))
    >>> auto_weight(img, noise, img, noise, lab, 2) < 0.1
    True
    """
    support_lab = np.asarray(support_lab, dtype=np.int64)
    counts = np.bincount(support_lab, minlength=n_classes)
    held = counts[support_lab] >= 2
    s_idx = np.arange(support_lab.size)
    # Each modality's own classification of the chips, from unweighted prototypes.
    dists = [squared_distances(e, prototypes(sup, s_idx, support_lab, n_classes))
             for e, sup in ((image_emb, support_image), (eds_emb, support_eds))]
    coherence = None if grid_shape is None else _coherence_weight(dists, grid_shape, step)
    if not held.any():
        if coherence is not None:
            return coherence
        ci, ce = (_confidence(d) for d in dists)
        return DEFAULT_EDS_WEIGHT if ci + ce < 1e-12 else float(ce / (ci + ce))
    u = (np.ones(support_lab.size) if support_weights is None
         else np.clip(np.asarray(support_weights, dtype=np.float64), 0.0, None))
    if not (u[held] > 0).any():
        u = np.ones(support_lab.size)
    fi, fe = (_held_out_fisher(sup, support_lab, n_classes, u) for sup in (support_image, support_eds))
    w = DEFAULT_EDS_WEIGHT if fi + fe <= 0 else float(fe / (fi + fe))
    if coherence is None:
        return w
    h = int(held.sum())
    return (h * w + n_classes * coherence) / (h + n_classes)
