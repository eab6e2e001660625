"""Pixel-resolution maps: refine the chip classification with a pixel classifier it trains.

A chip answers for its whole box, so objects smaller than a chip and every boundary come out
blocky; the best any per-chip answer can do is the *chip-majority ceiling*. Here the chips
teach a pixel classifier instead:

1. Per-pixel features, once per image: scikit-image's multiscale intensity, edge and Hessian
   features plus local texture energy, at up to :data:`DEFAULT_MAX_PIXELS` pixels.
2. Two random forests learn pixel classes, each pixel labelled with its chip's class and
   drawn in equal numbers per class: one from the supports alone (what the user said; it
   follows intensity well), one from the supports plus the confident chips that the first
   forest agrees with (many more examples of each texture). A chip labelled "particle" also
   holds support pixels; before each forest is taught, a small forest on fine-scale features
   drops the pixels that look like another class, so the surroundings of a particle are not
   learnt as particle.
3. What a forest's answer is worth on this image is measured out of fold (a confusion matrix
   over interleaved blocks of chips). Classes the pixels cannot tell apart (lattices that
   differ only by orientation) are left to the chips, and the pixels' overall weight falls
   to 0 as the worst-told class nears 70 % out-of-fold accuracy.
4. The calibrated pixel evidence, lightly smoothed, is added (log domain) to the chip
   probabilities smoothed into a prior: the chips say what region a pixel is in, the pixels
   say where the edge is. A confident chip whose majority the pixels overrule gets its own
   answer back.

Each step was kept because it raised pixel accuracy on ``benchmarks/eval_suite.py`` (see the
README); training on supports alone wins on intensity-driven images (real Au particles,
coins), training on confident chips on textures, and the two together are the best found.
Intensity ramps and thickness gradients used to cost 0.02-0.04 against the chip map (the
forests learnt absolute intensity at one end of the field). Now, when mean intensity does not
sort the training chips into their classes and local contrast follows a field-wide plane,
the features are computed on the detrended image instead (:func:`detrended`). Where
intensity does carry the classes, the supports' forest counts twice the confident chips'
one (it follows intensity as the user's chips show it; confident chips that hold small
particles blur it).

Where intensity carries the classes, coarse features let the forests learn *where* the user's
particle chips were (an agglomerate: the only place a chip is mostly particle) rather than what
a particle pixel looks like, and isolated particles smaller than a chip were lost (FePt 0.856,
below the chip-majority ceiling). There, forests on the fine-scale features alone are scored
out of fold against the all-feature ones (both on the pixels that look like their chip's class)
and used unless their error is over three times as large (a lattice against an amorphous cover
needs the coarse scales: real MoS2 keeps all features); the chip prior then counts half, as it
answers for a chip's majority, not for the particles inside a support chip. FePt 0.911, real Au
0.951 (was 0.933). Known cost: balanced training grows sharp-edged particles by a pixel or two.
In that regime, when the EDS was fused into the chips, the prior comes from the chips
classified on the image alone (:attr:`~.classify.Result.image_soft_probabilities`): a chip's
spectrum measures how much particle it holds, not its majority, so a fused prior calls the
carbon of a particle-rich chip "particle". FePt on its tuned instance and three new ones,
mean +0.010 (0.821 → 0.843 and worst draw 0.742 → 0.781 on the third); the tuned instance
moved −0.006 to +0.012 across 1, 3 and 5 supports per class.

Whether intensity carries the classes is also read from the supports' own pixels (smoothed
σ = 2 px; worst-pair AUC ≥ 0.95). With one support per class the chip classifier can be
confidently wrong on many chips, whose means then hide the cue: camera with one support per
class went to the detrended features in 4 draws of 5 (0.753). There, the veto (a confident
chip keeps its class where the pixels overrule it) is off too. One support per class: camera
0.753 → 0.943, real Au 0.785 → 0.871, coins 0.849 → 0.884; with three: coins 0.874 → 0.900
(its collapsing draw 0.567 → 0.643), nothing else moved; textures, lattices, FePt and MoS2
stay at 0.50-0.95 on this measure. The supports' forest then teaches the pixels alone: the
confident chips' labels (many wrong with one support per class, and "particle" chips that
teach a halo round each particle) only act through the prior and as the out-of-fold test
bed. Real Au 0.871 → 0.927 (k = 1), 0.952 → 0.956 (k = 3); coins 0.884 → 0.899 and
0.900 → 0.925; camera, whose dark class has lit folds that only the chips call dark, falls
0.943 → 0.931 and 0.977 → 0.975.

Where intensity carries the classes, the screen of step 2 cannot clean a particle chip when
the support's brightness drifts: the chip's support pixels are brighter than the support
chips' and look like neither class to a forest taught by chip labels, so they are taught as
particle and bright support is called particle (a new FePt instance: 0.843, under its
chip-majority ceiling 0.885). There each class is taught only the pixels that a Gaussian
mixture of the smoothed intensity gives to it (:func:`_intensity_classes`), where that
mixture describes the user's own chips (:func:`_describes_supports`,
:func:`_purity_keeps_chips`) and the forests taught by it still tell the classes apart out of
fold. FePt 0.910 → 0.949 (new instances 0.90-0.92 → 0.96-0.97), coins 0.925 → 0.963, camera
0.975 → 0.977; real Au and MoS2 are refused by the checks and unchanged.

Where intensity does not carry the classes (textures, lattices), the forests are checked once
more where they are weakest: the *boundary band*, pixels whose chip prior is 0.7-0.9 sure
(near a boundary, on the side the chips agree on; the prior errs on ≤ 3 % of it on every
texture case of the suite). The out-of-fold test reads whole chips, mostly inside one phase, and
cannot see a forest whose features straddle two lattices: next to the boundaries it contradicted
the chips on 14-45 % of the band and drew blobs 20-60 px into the other phase (lattices under a
thickness gradient, 0.960 against the chip map's 0.979). The pixels keep their weight up to 5 %
contradiction and lose it linearly to 15 % (``boundary_check``): thickness 0.960 → 0.986;
textures, the ramp and the minority class moved by 0.001 at most. And under a field-wide trend,
chip means sorted by class count as an intensity cue only when the supports' own pixels show it
too (``trend_pixel_auc``): in one draw the gradient ran from one lattice's supports to the
other's (chip means 0.968, support pixels 0.606), and the fine-scale intensity forests of the
particle regime drew 0.924.

The forests are scikit-learn's ``RandomForestClassifier`` (the ilastik/Weka method on the
image's own chips); a fixed seed makes a result reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .encoders.base import robust_normalise

__all__ = ["DEFAULT_MAX_PIXELS", "PixelFeatures", "detrended", "eds_pixel_features",
           "pixel_features", "pixel_map_note", "refine_probabilities"]

#: Pixel features are computed on at most this many pixels (the image is block-averaged
#: by an integer factor above it); maps are brought back to full size afterwards.
DEFAULT_MAX_PIXELS = 1 << 20


@dataclass(frozen=True)
class PixelFeatures:
    """Per-pixel features of one image, possibly on a coarser grid.

    Attributes
    ----------
    features : ndarray, shape (h, w, F), float32
    factor : int
        Image pixels per feature pixel along each axis (1 = full resolution).
    shape : tuple of int
        The full image shape (H, W).
    local : ndarray, shape (h, w, F'), float32
        Fine-scale features only (σ ≤ 2 px): what a pixel looks like, not what is near it.
    image : ndarray, shape (h, w), float32, optional
        The normalised image the features were computed from (for :func:`detrended`).
    n_image : tuple of int, optional
        How many leading columns of ``features`` and ``local`` come from the image (the rest,
        e.g. EDS, are kept as they are by :func:`detrended`).
    """

    features: np.ndarray
    factor: int
    shape: tuple[int, int]
    local: np.ndarray
    image: np.ndarray | None = None
    n_image: tuple[int, int] | None = None
    _cache: dict = field(default_factory=dict, compare=False, repr=False)


def pixel_features(image: np.ndarray, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                   sigma_max: float = 16.0) -> PixelFeatures:
    """Multiscale intensity, edge, Hessian and texture-energy features of every pixel.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    max_pixels : int
        Above this many pixels the image is block-averaged by the smallest integer factor
        that brings it under.
    sigma_max : float
        Largest Gaussian scale, in full-resolution pixels.

    Returns
    -------
    PixelFeatures

    Examples
    --------
    >>> pf = pixel_features(np.random.default_rng(0).random((64, 48)))
    >>> pf.features.shape[:2], pf.factor
    ((64, 48), 1)
    """
    from skimage.transform import downscale_local_mean

    h, w = image.shape
    factor = max(1, int(np.ceil(np.sqrt(h * w / float(max_pixels)))))
    img = robust_normalise(np.asarray(image, dtype=np.float32))
    if factor > 1:
        img = downscale_local_mean(img, (factor, factor)).astype(np.float32)
    feats, local = _image_features(img, max(2.0, sigma_max / factor))
    return PixelFeatures(feats, factor, (h, w), local, img, (feats.shape[2], local.shape[2]))


def _image_features(img: np.ndarray, smax: float) -> tuple[np.ndarray, np.ndarray]:
    """(features, fine-scale features) of one normalised image, both float32 (h, w, ·)."""
    from skimage.feature import multiscale_basic_features

    local = multiscale_basic_features(img, intensity=True, edges=True, texture=True, sigma_min=1.0,
                                      sigma_max=2.0, num_sigma=2)
    feats = [multiscale_basic_features(img, intensity=True, edges=True, texture=True,
                                       sigma_min=1.0, sigma_max=smax)]
    # Local texture energy: how much the image varies around a pixel at each scale, pooled
    # over a window a few times that scale (photographed textures, amorphous vs crystalline).
    for s in (1.0, 2.0, 4.0):
        band = img - ndimage.gaussian_filter(img, s)
        feats.append(np.sqrt(ndimage.gaussian_filter(band * band, 3 * s))[..., None])
    return np.concatenate(feats, axis=2).astype(np.float32), local.astype(np.float32)


def detrended(pf: PixelFeatures, sigma: float, floor: float = 0.25,
              sigma_max: float = 16.0) -> PixelFeatures:
    """The same features computed on the image with its large-scale trend taken out.

    The image minus its Gaussian(``sigma``) background, divided by its local standard
    deviation at the same scale (at least ``floor`` × the median one, so flat areas are not
    blown up into noise): an intensity ramp, a thickness gradient or a varying gain then no
    longer moves a class's features across the field. Non-image columns (EDS) are kept.
    Cached on ``pf``; ``pf`` itself when it does not hold its image.

    Parameters
    ----------
    pf : PixelFeatures
    sigma : float
        Background scale, in feature pixels.
    floor : float
    sigma_max : float
        As for :func:`pixel_features`, in full-resolution pixels.

    Returns
    -------
    PixelFeatures
    """
    if pf.image is None or pf.n_image is None:
        return pf
    key = ("detrended", round(float(sigma), 3), floor)
    if key not in pf._cache:
        img = pf.image
        d = img - ndimage.gaussian_filter(img, sigma)
        sd = np.sqrt(ndimage.gaussian_filter(d * d, sigma))
        d = (d / np.maximum(sd, floor * max(float(np.median(sd)), 1e-12))).astype(np.float32)
        feats, local = _image_features(d, max(2.0, sigma_max / pf.factor))
        nf, nl = pf.n_image
        pf._cache[key] = PixelFeatures(np.concatenate([feats, pf.features[..., nf:]], axis=2),
                                       pf.factor, pf.shape,
                                       np.concatenate([local, pf.local[..., nl:]], axis=2),
                                       d, (feats.shape[2], local.shape[2]))
    return pf._cache[key]


def eds_pixel_features(eds, energy: np.ndarray, encoder, binning: float, pf: PixelFeatures, *,
                       window: int = 3, max_bytes: int = 64 << 20) -> PixelFeatures:
    """Append the EDS, at its own resolution, to pixel features.

    Each EDS pixel's spectrum is summed over a ``window × window`` neighbourhood (single-pixel
    counts are too few to classify) and embedded with the session's fitted
    :class:`~.eds.EDSEncoder`; each feature pixel takes the EDS pixel it lies in. The cube is
    read in row slabs of at most ``max_bytes``, so a lazy cube is never loaded whole.

    Parameters
    ----------
    eds : array-like, shape (Ye, Xe, E)
        Counts (numpy, memmap or dask).
    energy : ndarray, shape (E,)
    encoder : EDSEncoder
        Fitted on the image's chip spectra.
    binning : float
        Image pixels per EDS pixel.
    pf : PixelFeatures
        The image's pixel features.
    window : int
        Odd side of the neighbourhood summed around each EDS pixel.

    Returns
    -------
    PixelFeatures
        ``pf`` with the EDS embedding appended to every pixel's features.
    """
    ye, xe, n_e = (int(v) for v in eds.shape)
    half = window // 2
    rows = max(1, int(max_bytes // max(1, xe * n_e * 4)) - 2 * half)
    parts = []
    for r0 in range(0, ye, rows):
        r1 = min(ye, r0 + rows)
        lo, hi = max(0, r0 - half), min(ye, r1 + half)
        slab = eds[lo:hi]
        slab = np.asarray(slab.compute() if hasattr(slab, "compute") else slab, dtype=np.float32)
        summed = ndimage.uniform_filter(slab, size=(window, window, 1), mode="nearest") * window * window
        summed = summed[r0 - lo : r0 - lo + (r1 - r0)]
        parts.append(encoder.transform(np.clip(summed, 0, None).reshape(-1, n_e), energy)
                     .reshape(r1 - r0, xe, -1))
    emb = np.concatenate(parts, axis=0)
    h, w = pf.features.shape[:2]
    iy = np.clip(((np.arange(h) + 0.5) * pf.factor / binning).astype(np.int64), 0, ye - 1)
    ix = np.clip(((np.arange(w) + 0.5) * pf.factor / binning).astype(np.int64), 0, xe - 1)
    emb = emb[iy][:, ix].astype(np.float32)
    return PixelFeatures(np.concatenate([pf.features, emb], axis=2), pf.factor, pf.shape,
                         np.concatenate([pf.local, emb], axis=2), pf.image, pf.n_image)


def _chip_prior(result, pf: PixelFeatures) -> np.ndarray:
    """Chip probabilities as a smooth map at feature resolution, shape (h, w, K).

    Read from the overlap-averaged cells at each feature pixel's centre, so a large image
    never needs a full-size (H, W, K) array.
    """
    grid = result.grid
    cell, hy, wx = result._cell_probs
    cell = np.nan_to_num(cell, nan=1.0 / result.n_classes)
    h, w = pf.features.shape[:2]
    ys = np.searchsorted(np.cumsum(hy), (np.arange(h) + 0.5) * pf.factor, side="right")
    xs = np.searchsorted(np.cumsum(wx), (np.arange(w) + 0.5) * pf.factor, side="right")
    probs = cell[np.minimum(ys, cell.shape[0] - 1)][:, np.minimum(xs, cell.shape[1] - 1)]
    sigma = grid.size / 4.0 / pf.factor
    return ndimage.gaussian_filter(probs, (sigma, sigma, 0), mode="nearest")


def _training_chips(result, confident: float = 0.5) -> np.ndarray:
    """Supports plus the ``confident`` share of the other chips with the lowest entropy."""
    free = ~result.is_support
    if not free.any() or confident <= 0:
        return np.flatnonzero(result.is_support)
    thr = np.quantile(result.entropy[free], confident)
    return np.flatnonzero(result.is_support | (free & (result.entropy <= thr)))


def _chip_pixels(grid, chips: np.ndarray, factor: int,
                 shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Flat feature-pixel indices inside each chip (at feature resolution) and their chip."""
    h, w = shape
    idx, owner = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]  # no chips: no pixels
    for i in chips:
        y0, x0, y1, x1 = (int(v) for v in grid.box(int(i)))
        ys = np.arange(y0 // factor, min(-(-y1 // factor), h))
        xs = np.arange(x0 // factor, min(-(-x1 // factor), w))
        flat = (ys[:, None] * w + xs[None, :]).ravel()
        idx.append(flat)
        owner.append(np.full(flat.size, i))
    return np.concatenate(idx), np.concatenate(owner)


def _balanced(cand: np.ndarray, lab: np.ndarray, n_classes: int, n_per_class: int,
              rng: np.random.Generator) -> np.ndarray:
    """Up to ``n_per_class`` random picks of ``cand`` per class."""
    out = []
    for k in range(n_classes):
        pool = cand[lab == k]
        if pool.size > n_per_class:
            pool = rng.choice(pool, n_per_class, replace=False)
        out.append(pool)
    return np.concatenate(out)


def _forest(n_jobs: int | None, seed: int, n_estimators: int = 40):
    from sklearn.ensemble import RandomForestClassifier

    # scikit-learn's own default (None) is one core; the trees are independent, so all cores
    # (-1) halve the pixel map's time on two cores and give the same forest (fixed seed).
    return RandomForestClassifier(n_estimators=n_estimators, max_depth=14, min_samples_leaf=20,
                                  n_jobs=-1 if n_jobs is None else n_jobs, random_state=seed)


def _screen(pf: PixelFeatures, result, pix: np.ndarray, lab: np.ndarray, n_per_class: int,
            rng: np.random.Generator, seed: int, n_jobs: int | None):
    """A small forest on fine-scale features (σ ≤ 2 px) of the pixels ``pix`` labelled ``lab``."""
    h, w, _ = pf.local.shape
    pick = _balanced(np.arange(pix.size), lab, result.n_classes, n_per_class, rng)
    return _forest(n_jobs, seed, 20).fit(pf.local.reshape(h * w, -1)[pix[pick]], lab[pick])


def _typical(pf: PixelFeatures, screen, pix: np.ndarray, lab: np.ndarray,
             n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The screen's probability of each pixel's own label, and whether no class beats it."""
    h, w, _ = pf.local.shape
    proba = np.zeros((pix.size, n_classes))
    proba[:, screen.classes_] = screen.predict_proba(pf.local.reshape(h * w, -1)[pix])
    own = proba[np.arange(pix.size), lab]
    return own, own >= proba.max(axis=1) - 1e-9


def _smoothed_image(pf: PixelFeatures, sigma: float) -> np.ndarray:
    """``pf.image`` smoothed by ``sigma`` full-resolution pixels, flat (h·w,); cached."""
    key = ("smoothed", round(float(sigma), 3))
    if key not in pf._cache:
        pf._cache[key] = ndimage.gaussian_filter(pf.image, sigma / pf.factor).ravel()
    return pf._cache[key]


def _intensity_classes(pf: PixelFeatures, result, chips: np.ndarray, sigma: float = 2.0,
                       n_max: int = 20000, seed: int = 0) -> np.ndarray | None:
    """Each feature pixel's class as its smoothed intensity alone says, shape (h·w,).

    A Gaussian mixture of one component per class is fitted to the smoothed intensity
    (σ = ``sigma`` px) of the pixels of ``chips`` (equal numbers per chip class), and each
    component goes to the class whose chips hold the largest share of it. Used where
    intensity carries the classes: a "particle" chip also holds support pixels, and where the
    support's brightness drifts across the field they differ from the support chips' pixels,
    so no classifier taught by chip labels can tell them from particles. By intensity they
    are support. None without an image.
    """
    from sklearn.mixture import GaussianMixture

    if pf.image is None:
        return None
    h, w = pf.image.shape
    smooth = _smoothed_image(pf, sigma)
    pix, owner = _chip_pixels(result.grid, chips, pf.factor, (h, w))
    lab = result.labels[owner]
    k = result.n_classes
    pick = _balanced(np.arange(pix.size), lab, k, n_max // k, np.random.default_rng(seed))
    if np.unique(lab[pick]).size < k:
        return None
    gm = GaussianMixture(k, random_state=seed).fit(smooth[pix[pick], None])
    comp = _intervals(gm, smooth)
    share = np.zeros((k, k))
    np.add.at(share, (comp[pix[pick]], lab[pick]), 1.0)
    share /= np.maximum(share.sum(axis=0, keepdims=True), 1.0)  # per class: balanced
    return np.argmax(share, axis=1)[comp]


def _describes_supports(pf: PixelFeatures, result, pure: np.ndarray, info: dict | None = None,
                        most_moved: float = 0.5, distinct_auc: float = 0.99,
                        sigma: float = 2.0) -> bool:
    """Whether the intensity classes ``pure`` describe the user's own chips.

    They must leave each class at least half of its support chips' pixels, and the pixels
    they give to another class must look like that class: the AUC of their smoothed intensity
    against the other class's own support pixels at most ``distinct_auc`` (moves of under 5 %
    of a class's pixels are not judged). A "particle" chip's support pixels pass (FePt: AUC
    0.64-0.93, a third of the pixels; coins 0.96); a second population of one class fails,
    such as the thick carbon beside the vacuum under real Au particles (AUC 1.00), or a
    lattice's bright columns (real MoS2: 53-63 % of the covered class's pixels moved).
    """
    from scipy.stats import mannwhitneyu

    h, w = pf.image.shape
    smooth = _smoothed_image(pf, sigma)
    pix, owner = _chip_pixels(result.grid, np.flatnonzero(result.is_support), pf.factor, (h, w))
    lab, given = result.labels[owner], pure[pix]
    worst_moved, worst_auc = 0.0, 0.5
    for c in range(result.n_classes):
        own_c = lab == c
        if not own_c.any():
            continue
        worst_moved = max(worst_moved, float(np.mean(given[own_c] != c)))
        for j in range(result.n_classes):
            moved = smooth[pix[own_c & (given == j)]]
            home = smooth[pix[(lab == j) & (given == j)]]
            if j == c or moved.size == 0 or moved.size < 0.05 * own_c.sum() or home.size == 0:
                continue
            auc = mannwhitneyu(moved, home, method="asymptotic").statistic / (moved.size * home.size)
            worst_auc = max(worst_auc, auc, 1.0 - auc)
    if info is not None:
        info["purity_moved"], info["purity_auc"] = round(worst_moved, 2), round(float(worst_auc), 2)
    return worst_moved <= most_moved and worst_auc <= distinct_auc


def _intervals(gm, values: np.ndarray) -> np.ndarray:
    """Each value's component of a 1-D Gaussian mixture, as intervals along the axis.

    Adjacent components (by mean) meet where their weighted densities cross between the two
    means; unlike the mixture's own ``predict``, a broad component cannot claim the far tail
    of a narrow one (a bright patch of support is not a particle).
    """
    mu = gm.means_[:, 0]
    sd = np.sqrt(gm.covariances_.reshape(-1))
    order = np.argsort(mu)
    cuts = []
    for a, b in zip(order[:-1], order[1:], strict=True):
        x = np.linspace(mu[a], mu[b], 512)
        da = gm.weights_[a] * np.exp(-0.5 * ((x - mu[a]) / sd[a]) ** 2) / sd[a]
        db = gm.weights_[b] * np.exp(-0.5 * ((x - mu[b]) / sd[b]) ** 2) / sd[b]
        crossed = db >= da
        cuts.append(x[int(np.argmax(crossed)) if crossed.any() else -1])
    return order[np.searchsorted(np.asarray(cuts), values, side="right")]


def _fit_forest(pf: PixelFeatures, result, chips: np.ndarray, n_per_class: int,
                rng: np.random.Generator, seed: int, n_jobs: int | None, screen=None,
                pure: np.ndarray | None = None):
    """A random forest on the pixels of ``chips``, each labelled with its chip's class.

    Pixels are drawn in equal numbers per class; support pixels weigh three times as much
    as the others (they are what the user said). A chip labelled "particle" also holds
    support pixels; taught as "particle", they would teach the forest that *near* a particle
    is particle (a halo, through the coarse-scale features). So a small forest on fine-scale
    features alone (σ ≤ 2 px: what a pixel looks like, not what surrounds it) first scores
    every training pixel, and pixels it gives to another class are dropped (each chip keeps
    at least its most typical third). ``screen``: that small forest, when the caller has it.
    ``pure``: each pixel's class by intensity (:func:`_intensity_classes`); where given, a
    class's pixels are those its intensity gives to it instead (unless fewer than 5 % are).
    """
    h, w, n_feat = pf.features.shape
    pix, owner = _chip_pixels(result.grid, chips, pf.factor, (h, w))
    lab = result.labels[owner]
    if screen is None:
        screen = _screen(pf, result, pix, lab, n_per_class, rng, seed, n_jobs)
    own, keep = _typical(pf, screen, pix, lab, result.n_classes)
    # ...but never below a third of any chip: rank each chip's pixels by ``own``.
    order = np.lexsort((-own, owner))
    starts = np.flatnonzero(np.r_[True, owner[order][1:] != owner[order][:-1]])
    counts = np.diff(np.r_[starts, order.size])
    rank = np.empty(pix.size, np.int64)
    rank[order] = np.arange(order.size) - np.repeat(starts, counts)
    size = np.empty(pix.size, np.int64)
    size[order] = np.repeat(counts, counts)
    keep |= rank < np.ceil(size / 3)
    if pure is not None:
        agrees = pure[pix] == lab
        for c in range(result.n_classes):
            own_c = lab == c
            if agrees[own_c].sum() >= 0.05 * own_c.sum():
                keep[own_c] = agrees[own_c]
    pick = _balanced(np.flatnonzero(keep), lab[keep], result.n_classes, n_per_class, rng)
    weight = np.where(result.is_support[owner[pick]], 3.0, 1.0)
    return _forest(n_jobs, seed).fit(pf.features.reshape(-1, n_feat)[pix[pick]], lab[pick],
                                     sample_weight=weight)


def _confusion(pf: PixelFeatures, result, chips: np.ndarray, n_per_class: int, rng: np.random.Generator,
               seed: int, n_jobs: int | None, typical_only: bool = False,
               pure: np.ndarray | None = None) -> np.ndarray | None:
    """What the pixel forest's answer means on this image, measured out of fold.

    The training chips are split into two interleaved sets of 2 × 2-chip blocks; a forest
    taught by one set predicts the pixels of the other. (Halves of the image, which test
    how far the forest carries across the field, left four-class images with no valid split
    and did worse overall.) ``M[c, j]`` is the share of "the forest
    says j" that fell on chips of class c (a soft confusion matrix, normalised over c).
    Evidence for class c is then ``Σ_j p(j | pixel) · M[c, j]``: where the forest tells two
    classes apart, M is the identity there and the forest decides; where it cannot (two
    lattices that differ only by orientation, or classes it confuses across an intensity
    ramp), their rows match and the chips decide between them.

    With ``typical_only``, only the held-out pixels that look like their chip's class (to a
    fine-scale screen taught by the other set) are scored: where objects are smaller than a
    chip, a chip's class is not every pixel's, and scoring them all would charge the forest
    for being right about the particle in a support chip.

    ``pure``: see :func:`_fit_forest`.

    Returns None when one set lacks a class.
    """
    grid = result.grid
    k = result.n_classes
    r, c = np.divmod(chips, grid.n_cols)
    fold = ((r // 2) + (c // 2)) % 2
    h, w, n_feat = pf.features.shape
    flat = pf.features.reshape(-1, n_feat)
    conf = np.zeros((k, k))
    for f in (0, 1):
        train, test = chips[fold != f], chips[fold == f]
        if np.unique(result.labels[train]).size < k or test.size == 0:
            return None
        tpix, towner = _chip_pixels(grid, train, pf.factor, (h, w))
        screen = _screen(pf, result, tpix, result.labels[towner], n_per_class // 2, rng, seed, n_jobs)
        forest = _fit_forest(pf, result, train, n_per_class // 2, rng, seed, n_jobs, screen, pure)
        pix, owner = _chip_pixels(grid, test, pf.factor, (h, w))
        if pix.size > 20000:
            keep = rng.choice(pix.size, 20000, replace=False)
            pix, owner = pix[keep], owner[keep]
        if typical_only:
            _, typical = _typical(pf, screen, pix, result.labels[owner], k)
            pix, owner = pix[typical], owner[typical]
        p = np.zeros((pix.size, k))
        p[:, forest.classes_] = forest.predict_proba(flat[pix])
        np.add.at(conf, result.labels[owner], p)
    if np.any(conf.sum(axis=1) == 0):
        return None
    conf /= conf.sum(axis=1, keepdims=True)  # P(forest says j | class c), classes balanced
    return conf / np.maximum(conf.sum(axis=0, keepdims=True), 1e-12)


def _gain_trend(pf: PixelFeatures, sigma: float) -> float:
    """Field-wide trend in local contrast: the spread of a plane fitted to log local std.

    A thickness gradient or a detector gain ramp scales the signal smoothly across the field,
    so log local contrast (at ``sigma`` feature pixels) follows a plane; textures and phases
    make it vary without one. 0 when ``pf`` does not hold its image.
    """
    if pf.image is None:
        return 0.0
    key = ("gain_trend", round(float(sigma), 3))
    if key not in pf._cache:
        img = pf.image
        d = img - ndimage.gaussian_filter(img, sigma)
        z = 0.5 * np.log(ndimage.gaussian_filter(d * d, sigma) + 1e-12)
        h, w = z.shape
        yy, xx = np.mgrid[0:h, 0:w]
        a = np.c_[np.ones(z.size), yy.ravel() / h, xx.ravel() / w]
        coef, *_ = np.linalg.lstsq(a, z.ravel().astype(np.float64), rcond=None)
        pf._cache[key] = float(np.std(a @ coef))
    return pf._cache[key]


def _worst_pair_auc(values: np.ndarray, labels: np.ndarray) -> float:
    """Smallest Mann-Whitney AUC of ``values`` over pairs of classes in ``labels``.

    Folded so 0.5 = no information and 1 = a perfect threshold; 0.5 with fewer than two
    classes.
    """
    from scipy.stats import mannwhitneyu

    groups = [values[labels == c] for c in np.unique(labels)]
    if len(groups) < 2:
        return 0.5
    worst = 1.0
    for i, x in enumerate(groups):
        for y in groups[i + 1:]:
            auc = mannwhitneyu(x, y, method="asymptotic").statistic / (x.size * y.size)
            worst = min(worst, max(auc, 1.0 - auc))
    return float(worst)


def _intensity_separation(pf: PixelFeatures, result, chips: np.ndarray) -> float:
    """How well mean intensity alone sorts ``chips`` into their classes (worst class pair).

    The AUC of chip mean intensity for each pair of classes, folded so 0.5 = no information
    and 1 = a perfect threshold; the smallest over pairs. Near 1, intensity itself carries
    the classes (particles on a support, dark and bright phases) and the absolute-intensity
    features are kept; lower, intensity is at best a nuisance that a ramp or a thickness
    gradient moves across the field.
    """
    h, w, _ = pf.features.shape
    pix, owner = _chip_pixels(result.grid, chips, pf.factor, (h, w))
    n = np.bincount(owner, minlength=result.grid.n_chips)[chips]
    mean = np.bincount(owner, pf.features.reshape(h * w, -1)[pix, 0],
                       minlength=result.grid.n_chips)[chips] / np.maximum(n, 1)
    return _worst_pair_auc(mean, result.labels[chips])


def _support_pixel_separation(pf: PixelFeatures, result, n_max: int = 4000) -> float:
    """How well smoothed pixel intensity (σ = 2 px) alone tells the supports' classes apart.

    :func:`_worst_pair_auc` of the support chips' pixels (at most about ``n_max`` per class);
    0.5 without an image. Unlike :func:`_intensity_separation` it reads only the user's own
    chips, so confidently wrong chips (common with one support per class) cannot hide an
    intensity cue; and it is graded where chip means of one support per class would always
    look perfectly sorted.
    """
    if pf.image is None:
        return 0.5
    h, w = pf.image.shape
    smooth = _smoothed_image(pf, 2.0)
    pix, owner = _chip_pixels(result.grid, np.flatnonzero(result.is_support), pf.factor, (h, w))
    lab = result.labels[owner]
    keep = np.concatenate([np.flatnonzero(lab == c)[:: max(1, int((lab == c).sum()) // n_max)]
                           for c in np.unique(lab)]) if lab.size else np.zeros(0, np.int64)
    return _worst_pair_auc(smooth[pix[keep]], lab[keep])


def _veto(prob: np.ndarray, prior: np.ndarray, result, pf: PixelFeatures, max_entropy: float,
          info: dict | None) -> np.ndarray:
    """Give back to the chips the boxes where the pixels overrule a confident chip's majority."""
    grid = result.grid
    h, w, _ = prob.shape
    lab = np.argmax(prob, axis=2)
    sure = np.flatnonzero(result.entropy <= max_entropy)
    pix, owner = _chip_pixels(grid, sure, pf.factor, (h, w))
    votes = np.zeros((grid.n_chips, result.n_classes))
    np.add.at(votes, (owner, lab.ravel()[pix]), 1.0)
    overruled = sure[np.argmax(votes[sure], axis=1) != result.labels[sure]]
    if info is not None:
        info["vetoed"] = int(overruled.size)
    if overruled.size:
        flat = prob.reshape(h * w, -1)
        pix, _ = _chip_pixels(grid, overruled, pf.factor, (h, w))
        flat[pix] = prior.reshape(h * w, -1)[pix]
    return prob


def _boundary_disagreement(p_pix: np.ndarray, prior: np.ndarray, band: tuple[float, float] = (0.7, 0.9),
                           least: float = 0.01) -> float | None:
    """Share of the boundary band on which the pixel evidence's class is not the chips'.

    The band is the pixels whose smoothed chip prior gives its class 0.7-0.9: within reach
    of a boundary, but where the chips still agree. None when under ``least`` of the image
    lies in it (no boundary to test on).
    """
    sure = prior.max(axis=2)
    near = (sure >= band[0]) & (sure < band[1])
    if near.mean() < least:
        return None
    return float(np.mean(np.argmax(p_pix[near], axis=1) != np.argmax(prior[near], axis=1)))


def _agrees(forest, pf: PixelFeatures, result, chips: np.ndarray) -> np.ndarray:
    """Whether the majority of ``forest``'s pixel answers in each of ``chips`` is its label."""
    h, w, n_feat = pf.features.shape
    pix, owner = _chip_pixels(result.grid, chips, pf.factor, (h, w))
    pred = forest.classes_[np.argmax(forest.predict_proba(pf.features.reshape(-1, n_feat)[pix]), axis=1)]
    votes = np.zeros((result.grid.n_chips, result.n_classes))
    np.add.at(votes, (owner, pred), 1.0)
    return np.argmax(votes[chips], axis=1) == result.labels[chips]


def _purity_keeps_chips(pf: PixelFeatures, result, pure: np.ndarray, confident: float, n_per_class: int,
                        seed: int, n_jobs: int | None, info: dict | None = None,
                        most_lost: float = 0.25) -> bool:
    """Whether the supports' forest, taught by intensity classes, still agrees with the chips.

    Fine-scale forests on the support chips, one taught by the chips' labels and one by
    ``pure``, vote on the confident chips. Where the intensity classes split a class (two
    separate intensities, one of them close to another class), the purified forest calls
    the classifier's confident chips of that class something else; the chips then win
    when the purified forest agrees with ``most_lost`` fewer of them. Measured: vacuum and
    carbon as one class, the carbon close to the particles, 1.00 → 0.48 (refused); coins with
    its "coin" supports on the bright background band, 0.88 → 0.66 (kept: 0.899 against
    0.736); FePt 0.93-1.00 either way.
    """
    fine = _fine_only(pf)
    sup = np.flatnonzero(result.is_support)
    cand = np.setdiff1d(_training_chips(result, confident), sup)
    if cand.size == 0:
        return True
    share = []
    for p in (None, pure):
        forest = _fit_forest(fine, result, sup, n_per_class // 2, np.random.default_rng(seed), seed, n_jobs,
                             pure=p)
        share.append(float(_agrees(forest, fine, result, cand).mean()))
    if info is not None:
        info["purity_agreement"] = [round(v, 2) for v in share]
    return share[1] >= share[0] - most_lost


def _pixel_evidence(pf: PixelFeatures, result, *, n_per_class: int, confident: float, seed: int,
                    n_jobs: int | None, calibrate: bool, support_share: float,
                    typical_only: bool, pure: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray | None, dict, np.ndarray]:
    """Steps 2-3: the two forests' pixel probabilities (h·w, K) and what they mean out of fold.

    Returns the probabilities, the calibration matrix (None when not measured),
    diagnostics (``agreement``) and the chips the forests are measured on (supports and
    agreeing chips). ``support_share`` 1 teaches no second forest. ``pure``: see
    :func:`_fit_forest`.
    """
    k = result.n_classes
    sup_chips = np.flatnonzero(result.is_support)
    h, w, n_feat = pf.features.shape
    flat = pf.features.reshape(-1, n_feat)
    rng = np.random.default_rng(seed)
    diag: dict = {}
    forests = [_fit_forest(pf, result, sup_chips, n_per_class, rng, seed, n_jobs, pure=pure)]
    cand = np.setdiff1d(_training_chips(result, confident), sup_chips)
    ok = np.zeros(0, np.int64)
    if cand.size:
        # A confident chip teaches the second forest only if the supports' forest agrees with
        # its label: a confidently wrong chip (a dim particle called support) would otherwise
        # teach its mistake to every pixel like it.
        agree = _agrees(forests[0], pf, result, cand)
        ok = cand[agree]
        diag["agreement"] = float(agree.mean())
        if ok.size and support_share < 1.0:
            forests.append(_fit_forest(pf, result, np.union1d(sup_chips, ok), n_per_class, rng, seed, n_jobs,
                                       pure=pure))
    p_pix = np.zeros((h * w, k), np.float32)
    shares = [support_share, 1.0 - support_share] if len(forests) > 1 else [1.0]
    for forest, share in zip(forests, shares, strict=True):
        p_pix[:, forest.classes_] += share * forest.predict_proba(flat)
    meaning = None
    # The agreeing chips are the out-of-fold test bed even where they teach nothing.
    train = np.union1d(sup_chips, ok)
    if calibrate:
        meaning = _confusion(pf, result, train, n_per_class, rng, seed, n_jobs, typical_only, pure)
    return p_pix, meaning, diag, train


def _fine_only(pf: PixelFeatures) -> PixelFeatures:
    """``pf`` with its fine-scale features (σ ≤ 2 px, and any EDS) as the only features."""
    return PixelFeatures(pf.local, pf.factor, pf.shape, pf.local, pf.image, None)


def _told_error(meaning: np.ndarray | None) -> float:
    """Out-of-fold error on the worst-told class (1 when not measured)."""
    return 1.0 if meaning is None else 1.0 - float(np.diag(meaning).min())


def refine_probabilities(pf: PixelFeatures, result, *, n_per_class: int = 5000,
                         confident: float = 0.75, pixel_weight: float = 2.0, seed: int = 0,
                         n_jobs: int | None = None, info: dict | None = None,
                         veto: float | None = 0.5, calibrate: bool = True,
                         intensity_auc: float | None = 0.95, gain_trend: float = 0.1,
                         detrend_chips: float = 2.0,
                         support_share: float = 2.0 / 3.0,
                         fine_error_ratio: float = 3.0, fine_prior_power: float = 0.5,
                         support_pixel_auc: float | None = 0.95,
                         purify: bool = True, purified_told: float = 0.8,
                         boundary_check: tuple[float, float] | None = (0.05, 0.15),
                         trend_pixel_auc: float = 0.67) -> np.ndarray:
    """Pixel class probabilities (H, W, K) from a chip-level :class:`~.classify.Result`.

    Parameters
    ----------
    pf : PixelFeatures
        Features of the result's image (see :func:`pixel_features`).
    result : Result
        The chip classification (its grid, probabilities, entropy and supports); its
        :attr:`~.classify.Result.soft_probabilities` where it has them.
    n_per_class : int
        Training pixels drawn per class for each forest.
    confident : float
        Share of the non-support chips, least uncertain first, offered to the second forest.
    pixel_weight : float
        Most weight of the calibrated pixel evidence against the smoothed chip prior (log
        domain), reached when the forests tell every class apart out of fold.
    seed : int
    n_jobs : int, optional
        Threads for the forests (default: all cores).
    info : dict, optional
        Filled with diagnostics: ``agreement`` (share of confident chips the supports' forest
        agrees with), ``diag`` (out-of-fold accuracy per class), ``weight`` (pixel weight
        used), ``vetoed`` (chips given back their own answer), ``features`` ("all",
        "fine" or "detrended": which features taught the forests), ``intensity_auc``,
        ``support_pixel_auc``, ``support_intensity`` (True when the supports' pixels decided
        that intensity carries the classes), ``purified`` (whether ``purify`` acted) with
        ``purity_moved``, ``purity_auc`` and ``purity_agreement`` (its checks),
        ``trend_overrules`` (a field-wide trend, not intensity, sorted the chip means; see
        ``trend_pixel_auc``), ``boundary_disagreement`` and ``boundary_kept`` (the boundary
        check and the share of the pixel weight it kept; see ``boundary_check``).
    veto : float or None
        Chips with normalised entropy at most this keep their class where the pixels would
        overrule its majority; None to switch off.
    calibrate : bool
        Measure the forests out of fold (step 3); False trusts them at ``pixel_weight``.
    intensity_auc : float or None
        Worst-pair AUC of chip mean intensity (supports and confident chips) that counts as
        intensity carrying the classes. At or above it, forests on fine-scale features alone
        are tried too and used when their out-of-fold error is at most ``fine_error_ratio``
        times that of the forests on all features. Below it, with a field-wide contrast trend
        of at least ``gain_trend``, the forests see the detrended image's features. None
        keeps the features as given.
    gain_trend : float
        Least spread of the plane fitted to log local contrast that counts as a trend.
    detrend_chips : float
        Background scale of the detrending, in chips.
    support_share : float
        Share of the supports' forest in the pixel evidence where intensity is kept (0.5
        when detrended; 1, the supports' forest alone, when the supports' pixels show that
        intensity carries the classes).
    fine_error_ratio : float
        See ``intensity_auc``.
    fine_prior_power : float
        Power of the chip prior (log-domain weight) where the fine-scale forests decide.
    support_pixel_auc : float or None
        Worst-pair AUC of the support chips' smoothed pixel intensities (σ = 2 px) at or above
        which intensity counts as carrying the classes whatever the chip means say, and the
        veto is off (the user's chips outrank the classifier's confident ones). None: the
        chip means alone decide.
    purify : bool
        Where intensity carries the classes, teach each class only the pixels that a
        Gaussian mixture of the smoothed intensity gives to it (a particle chip's support
        pixels are taught as support, not as particle), where that mixture describes the
        supports (:func:`_describes_supports`) and does not turn the supports' forest against
        the confident chips (:func:`_purity_keeps_chips`). FePt with 3 supports per class:
        0.910 → 0.949 (a held-out instance 0.843 → 0.96), coins 0.925 → 0.963.
    purified_told : float
        With purification, the least out-of-fold accuracy on the worst-told class below which
        the refinement starts again without it.
    trend_pixel_auc : float
        With a field-wide trend (``gain_trend``), the least ``support_pixel_auc`` at which
        sorted chip means still count as intensity carrying the classes.
    boundary_check : (float, float) or None
        Where intensity does not carry the classes: the share of the *boundary band* (pixels
        whose chip prior is 0.7-0.9 sure, see :func:`_boundary_disagreement`) on which the
        pixel evidence contradicts the chips, at or below which the pixels keep their weight
        and at or above which they lose it (linear between). None: not checked.

    Returns
    -------
    ndarray, shape (h, w, K), float32
        On the feature grid: the image's (H, W) for images up to :data:`DEFAULT_MAX_PIXELS`,
        else ``pf.factor`` times coarser (ceil(H / factor), ceil(W / factor)); rows sum to 1.
        :class:`~.classify.Result` brings label and entropy maps back to full size.
    """
    asked = dict(locals())  # to start again without purification (below)
    # The chip prior, the training chips and the veto were all measured on the softer scale.
    result = result.at_soft_scale() if hasattr(result, "at_soft_scale") else result
    k = result.n_classes
    info = {} if info is None else info
    info["features"] = "all"
    carries = False  # intensity carries the classes
    from_supports = False  # ...as the supports' own pixels show it
    if intensity_auc is not None:
        sigma = detrend_chips * result.grid.size / pf.factor
        sep = _intensity_separation(pf, result, _training_chips(result, confident))
        trend = _gain_trend(pf, sigma)
        info["intensity_auc"], info["gain_trend"] = round(sep, 3), round(trend, 3)
        if support_pixel_auc is not None:
            # The supports' own pixels can show an intensity cue that confidently wrong
            # chips hide from the chip means (camera with one support per class: 0.68-0.91).
            sup_sep = _support_pixel_separation(pf, result)
            info["support_pixel_auc"] = round(sup_sep, 3)
            from_supports = sup_sep >= support_pixel_auc
            info["support_intensity"] = from_supports
            if from_supports:
                # The chips' labels then teach the pixels nothing the supports do not: with
                # one support per class the chip map is confidently wrong on many chips (real
                # Au: 0.57-0.67), and chips labelled "particle" teach a halo round every
                # particle. The supports' forest alone decides; the chips still speak through
                # the prior and are the out-of-fold test bed.
                support_share = 1.0
        carries = sep >= intensity_auc or from_supports
        if carries and not from_supports and trend >= gain_trend and support_pixel_auc is not None \
                and sup_sep < trend_pixel_auc:
            # Under a field-wide trend, chip means sorted by class while the supports' own
            # pixels show no intensity cue: a thickness gradient that runs from one lattice's
            # supports to the other's (chip means 0.968, support pixels 0.606: 0.924 taught
            # on fine-scale intensity, 0.972 on texture). Lattices 0.51-0.61 on this measure,
            # particles on a support (FePt, four instances) 0.73-0.95.
            carries = False
            info["trend_overrules"] = True
        if not carries and trend >= gain_trend:
            pf = detrended(pf, sigma)
            info["features"] = "detrended"
            # Without an intensity cue the supports' few chips say little about texture
            # that the many confident chips do not: both forests count the same.
            support_share = 0.5
    kw = dict(n_per_class=n_per_class, confident=confident, seed=seed, n_jobs=n_jobs,
              calibrate=calibrate, support_share=support_share)
    pure = None
    if carries and purify:
        pure = _intensity_classes(pf, result, _training_chips(result, confident), seed=seed)
        if pure is not None and not (_describes_supports(pf, result, pure, info)
                                     and _purity_keeps_chips(pf, result, pure, confident, n_per_class,
                                                             seed, n_jobs, info)):
            pure = None
        info["purified"] = pure is not None
        kw["pure"] = pure
    prior_power = 1.0
    fine_regime = False
    if carries:
        # Intensity carries the classes (particles on a support, bright and dark phases).
        # Coarse features then let the forests learn *where* the user's particle chips were
        # (inside an agglomerate) instead of what a particle pixel looks like, and isolated
        # particles smaller than a chip are lost. Forests on fine-scale features alone do
        # not have that context; they are used unless they tell the classes apart clearly
        # worse (a texture such as a lattice against an amorphous cover needs the coarse
        # scales). Both are scored on typical pixels only (see _confusion).
        fine = _fine_only(pf)
        p_pix, meaning, diag, train = _pixel_evidence(fine, result, typical_only=True, **kw)
        # The forests on all features are only scored here (same chips, out of fold), and
        # only taught in full when they win.
        m_all = _confusion(pf, result, train, n_per_class, np.random.default_rng(seed + 1), seed, n_jobs,
                           typical_only=True, pure=pure) if calibrate else None
        if _told_error(meaning) + 0.01 <= fine_error_ratio * (_told_error(m_all) + 0.01):
            pf = fine
            info["features"] = "fine"
            # The chips answer for their majority; a support chip's own particles are not
            # its majority, so the chip prior is tempered where the pixels decide by what
            # they look like.
            prior_power = fine_prior_power
            fine_regime = True
        else:  # already scored: teach the all-feature forests without scoring them again
            p_pix, _, diag, _ = _pixel_evidence(pf, result, typical_only=True, **{**kw, "calibrate": False})
            meaning = m_all
    else:
        p_pix, meaning, diag, _ = _pixel_evidence(pf, result, typical_only=False, **kw)
    info.update(diag)
    h, w, _ = pf.features.shape
    if pure is not None and meaning is not None and np.diag(meaning).min() < purified_told:
        # Taught by intensity, the forests cannot tell the classes apart: the mixture did not
        # describe them after all (real MoS2 with one support per class, 0.74 against 0.90
        # taught by the chips). FePt, coins and camera: 0.83-0.99.
        told = float(np.diag(meaning).min())
        info.clear()
        refined = refine_probabilities(**{**asked, "purify": False})
        info.update(purified=False, purified_told=round(told, 2))
        return refined
    if meaning is not None:
        p_pix = p_pix @ meaning.T.astype(np.float32)
        # Trust the pixels as far as they separate the worst-told class (1 at ≥ 0.95
        # of its pixels told right out of fold, 0 at ≤ 0.7).
        pixel_weight *= float(np.clip((np.diag(meaning).min() - 0.7) / 0.25, 0.0, 1.0))
        info["diag"] = np.round(np.diag(meaning), 2).tolist()
        info["weight"] = pixel_weight
    p_pix = ndimage.gaussian_filter(p_pix.reshape(h, w, k), (1.0, 1.0, 0))
    image_only = getattr(result, "image_soft_probabilities", None)
    if fine_regime and image_only is not None:
        # Fine-scale regime (particles smaller than a chip): a fused chip's spectrum says how
        # much particle it holds, not its majority, so the prior comes from the image alone.
        # FePt on four instances: -0.002 (tuned), +0.007, +0.012, +0.022 (worst draw +0.041).
        from dataclasses import replace

        prior = _chip_prior(replace(result, probabilities=image_only, image_soft_probabilities=None), pf)
        info["prior"] = "image"
    else:
        prior = _chip_prior(result, pf)
    if boundary_check is not None and not carries and pixel_weight > 0:
        # The out-of-fold test above reads whole chips, mostly inside one phase; a texture
        # forest can still be wrong in blobs where its features straddle two phases. Next to
        # a boundary, where the chips are sure but not certain, they are right (≤ 3 % error
        # on every texture case of the suite): the pixels are trusted as far as they agree
        # with them there. Lattices under a thickness gradient: 14-45 % disagreement, the
        # pixel map 0.04 below the chips'; textures, ramp, minority class: ≤ 9 %.
        near = _boundary_disagreement(p_pix, prior)
        if near is not None:
            lo, hi = boundary_check
            kept = float(np.clip((hi - near) / (hi - lo), 0.0, 1.0))
            info["boundary_disagreement"], info["boundary_kept"] = round(near, 3), round(kept, 3)
            pixel_weight *= kept
            info["weight"] = pixel_weight
    logp = prior_power * np.log(np.clip(prior, 1e-4, 1.0))
    logp += pixel_weight * np.log(np.clip(p_pix, 1e-4, 1.0))
    logp -= logp.max(axis=2, keepdims=True)
    prob = np.exp(logp)
    prob /= prob.sum(axis=2, keepdims=True)
    if from_supports:
        # The user's own chips say intensity tells the classes apart; a chip the classifier
        # is sure of is then the less reliable party (with one support per class, real Au's
        # chip map is 0.57-0.67 and the veto gave 274 chips back to it).
        veto = None
    if veto is not None:
        prob = _veto(prob, prior, result, pf, veto, info)
    return prob.astype(np.float32)


def pixel_map_note(info: dict, classes: list[str]) -> str:
    """What the pixel map could not do, in words (from :func:`refine_probabilities`'s ``info``).

    "" when the pixel features told every class apart; otherwise which class they confuse
    most and that the map follows the chips there (entirely, when they tell nothing apart),
    or that next to the boundaries they contradict the chips (see ``boundary_check`` of
    :func:`refine_probabilities`).
    """
    diag, weight = info.get("diag"), info.get("weight")
    if not diag or weight is None or len(diag) != len(classes):
        return ""
    worst = int(np.argmin(diag))
    told = f"{classes[worst]} is told apart {100 * diag[worst]:.0f} % of the time out of fold"
    near = info.get("boundary_disagreement")
    if near is not None and info.get("boundary_kept", 1.0) < 1.0 and min(diag) > 0.7:
        # The pixels tell the classes apart inside each phase but not next to a boundary.
        lean = "follows the chips" if weight <= 0 else "leans on the chips"
        return (f"Pixel map: next to the boundaries the pixel features contradict the chips on "
                f"{100 * near:.0f} % of the pixels, so the map {lean}")
    if weight <= 0:
        return (f"Pixel map: the pixel features cannot separate the classes ({told}); "
                "the map follows the chips")
    if min(diag) < 0.95:
        return f"Pixel map: {told}, so its boundaries lean on the chips"
    return ""
