"""Region maps and smooth random fields for the synthetic cases (seeded, numpy/scipy only)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise, zero mean, unit standard deviation, shape ``shape``."""
    f = ndimage.gaussian_filter(rng.normal(size=shape), sigma, mode="wrap")
    return (f - f.mean()) / f.std()


def voronoi_regions(rng: np.random.Generator, shape: tuple[int, int], n_seeds: int, n_classes: int,
                    *, warp: float = 0.08, warp_sigma: float = 0.12, jittered_grid: bool = False) -> np.ndarray:
    """Voronoi cells with wavy boundaries, each cell given one of ``n_classes`` classes.

    Pixel coordinates are displaced by two smooth random fields (amplitude ``warp`` × the
    image side, correlation length ``warp_sigma`` × the side) before the nearest seed is
    taken, so the boundaries curve like grain boundaries rather than being straight. Every
    class gets at least one cell. With ``jittered_grid`` the seeds sit on a jittered
    ``ceil(sqrt(n))``-wide grid, so cells are of similar size (used for big chips).
    """
    h, w = shape
    side = max(h, w)
    if jittered_grid:
        m = int(np.ceil(np.sqrt(n_seeds)))
        gy, gx = np.divmod(rng.permutation(m * m)[:n_seeds], m)
        seeds = (np.stack([gy, gx], 1) + 0.5 + rng.uniform(-0.25, 0.25, (n_seeds, 2))) / m * [h, w]
    else:
        seeds = rng.uniform(0, 1, size=(n_seeds, 2)) * [h, w]
    cls = np.arange(n_seeds) % n_classes
    rng.shuffle(cls)
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    yy += warp * side * smooth_field(rng, shape, warp_sigma * side)
    xx += warp * side * smooth_field(rng, shape, warp_sigma * side)
    _, idx = cKDTree(seeds).query(np.stack([yy.ravel(), xx.ravel()], 1))
    return cls[idx].reshape(shape).astype(np.int64)


def blobs(rng: np.random.Generator, shape: tuple[int, int], radii, *, roughness: float = 0.25,
          margin: int = 0) -> np.ndarray:
    """Boolean mask of non-overlapping discs with wobbly edges, one per radius (px)."""
    h, w = shape
    mask = np.zeros(shape, bool)
    yy, xx = np.mgrid[0:h, 0:w]
    rough = smooth_field(rng, shape, 6.0)
    for r in radii:
        for _ in range(200):  # rejection sampling: keep discs apart
            cy, cx = rng.uniform(r + margin, h - r - margin), rng.uniform(r + margin, w - r - margin)
            d = np.hypot(yy - cy, xx - cx)
            disc = d < r * (1 + roughness * rough)
            grown = d < r * (1 + roughness * rough) + 6
            if not (grown & mask).any():
                mask |= disc
                break
    return mask


def ramp(shape: tuple[int, int], angle_deg: float) -> np.ndarray:
    """A linear ramp from 0 to 1 across the image along ``angle_deg`` (0 = left to right)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    t = np.deg2rad(angle_deg)
    r = xx * np.cos(t) + yy * np.sin(t)
    return (r - r.min()) / (r.max() - r.min())


def class_fractions(truth: np.ndarray, n_classes: int) -> np.ndarray:
    """Area fraction of each class among the labelled (>= 0) pixels."""
    t = truth[truth >= 0]
    return np.bincount(t, minlength=n_classes) / max(t.size, 1)
