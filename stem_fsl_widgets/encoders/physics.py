"""Physics-informed chip descriptors: lattice periodicity from the FFT, texture, intensity.

Needs no weights and no download. The log power spectrum of a crystalline chip has Bragg
spots at radii set by the lattice spacings and angles set by the projection; binning it in
radius and angle separates lattices and orientations. Rotation-invariant uniform local binary
patterns (scikit-image) describe the local texture whatever the contrast or dose, and
multiscale intensity statistics carry Z-contrast (HAADF intensity ∝ Z^1.7).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .base import ImageEncoder, standardise_chips

__all__ = ["FourierEncoder"]


class FourierEncoder(ImageEncoder):
    """Radial × angular log power spectrum bins + multiscale intensity statistics.

    Parameters
    ----------
    n_radial : int
        Radial frequency bins between the lowest non-zero frequency and Nyquist.
    n_angular : int
        Angular bins over [0, π) (the power spectrum of a real image is centro-symmetric).
    rotation_invariant : bool
        If True (default), replace the angular bins of each radius by the magnitudes of their
        angular Fourier series (harmonics 0..n_angular/2), so the same lattice at any in-plane
        rotation gives (nearly) the same descriptor while its symmetry (2-, 4-, 6-fold) is
        kept. If False, orientation is kept and grains of one phase in different
        orientations are told apart (encoder name "fourier_oriented").
    sigmas : tuple of float
        Gaussian scales (px) for the intensity/texture statistics.
    lbp : tuple of (int, float)
        ``(points, radius)`` of each rotation-invariant uniform local-binary-pattern histogram
        (square-rooted, so Euclidean distance is the Hellinger distance); empty to leave out.

    Examples
    --------
    >>> import numpy as np
    >>> enc = FourierEncoder()
    >>> enc.encode(np.random.default_rng(0).normal(size=(3, 32, 32))).shape
    (3, 82)
    """

    name = "fourier"
    batch_size = 512
    threaded = True

    def __init__(
        self,
        *,
        n_radial: int = 10,
        n_angular: int = 6,
        rotation_invariant: bool = True,
        sigmas: tuple[float, ...] = (1.0, 2.0, 4.0),
        lbp: tuple[tuple[int, float], ...] = ((8, 1.0), (16, 2.0)),
    ) -> None:
        self.n_radial = int(n_radial)
        self.n_angular = int(n_angular)
        self.rotation_invariant = bool(rotation_invariant)
        self.sigmas = tuple(float(s) for s in sigmas)
        self.lbp = tuple((int(p), float(r)) for p, r in lbp)
        self._bins: dict[int, tuple[np.ndarray, int]] = {}

    def params(self) -> dict:
        """Parameters that change the embedding."""
        return {
            "n_radial": self.n_radial,
            "n_angular": self.n_angular,
            "rotation_invariant": self.rotation_invariant,
            "sigmas": self.sigmas,
            "lbp": self.lbp,
        }

    def _bin_index(self, c: int) -> tuple[np.ndarray, int]:
        # Flat bin id for each rfft2 coefficient; -1 = not used (DC and beyond Nyquist).
        if c not in self._bins:
            fy = np.fft.fftfreq(c)[:, None]
            fx = np.fft.rfftfreq(c)[None, :]
            r = np.hypot(fy, fx)
            theta = np.mod(np.arctan2(fy, fx), np.pi)
            r_edges = np.geomspace(1.0 / c, 0.5 * np.sqrt(2), self.n_radial + 1)
            rb = np.searchsorted(r_edges, r, side="right") - 1
            ab = np.minimum((theta / np.pi * self.n_angular).astype(int), self.n_angular - 1)
            idx = rb * self.n_angular + ab
            idx[(rb < 0) | (rb >= self.n_radial)] = -1
            self._bins[c] = (idx.ravel(), self.n_radial * self.n_angular)
        return self._bins[c]

    def _spectrum_features(self, chips: np.ndarray) -> np.ndarray:
        n, c, _ = chips.shape
        win = np.outer(np.hanning(c), np.hanning(c)).astype(np.float32)
        x = standardise_chips(chips) * win
        power = np.abs(np.fft.rfft2(x)) ** 2
        idx, n_bins = self._bin_index(c)
        logp = np.log1p(power.reshape(n, -1))
        keep = idx >= 0
        counts = np.bincount(idx[keep], minlength=n_bins).astype(np.float32)
        # Mean log power per bin, for all chips at once via a sparse sum over coefficients.
        onehot = np.zeros((keep.sum(), n_bins), np.float32)
        onehot[np.arange(keep.sum()), idx[keep]] = 1.0
        sums = logp[:, keep] @ onehot
        empty = counts == 0
        means = sums / np.maximum(counts, 1.0)
        if empty.any():  # tiny chips leave some angular bins empty: borrow the radial mean
            grid = means.reshape(n, self.n_radial, self.n_angular)
            radial = grid.sum(2) / np.maximum((~empty).reshape(self.n_radial, self.n_angular).sum(1), 1)
            grid[:, empty.reshape(self.n_radial, self.n_angular)] = np.repeat(
                radial[:, :, None], self.n_angular, 2
            )[:, empty.reshape(self.n_radial, self.n_angular)]
            means = grid.reshape(n, -1)
        grid = means.reshape(n, self.n_radial, self.n_angular)
        if self.rotation_invariant:
            return np.abs(np.fft.rfft(grid, axis=2)).reshape(n, -1) / self.n_angular
        return means

    def _intensity_features(self, chips: np.ndarray) -> np.ndarray:
        # Image-wide normalised intensities: mean and spread carry Z-contrast and thickness.
        feats = [
            chips.mean(axis=(1, 2)),
            chips.std(axis=(1, 2)),
            *np.percentile(chips, [10, 50, 90], axis=(1, 2)),
        ]
        for s in self.sigmas:
            smooth = ndimage.gaussian_filter(chips, sigma=(0, s, s), mode="reflect")
            grad = ndimage.gaussian_gradient_magnitude(chips, sigma=(0, s, s), mode="reflect")
            log = ndimage.gaussian_laplace(chips, sigma=(0, s, s), mode="reflect")
            feats += [smooth.std(axis=(1, 2)), grad.mean(axis=(1, 2)), np.abs(log).mean(axis=(1, 2))]
        return np.stack(feats, axis=1)

    def _texture_features(self, chips: np.ndarray) -> np.ndarray:
        from skimage.feature import local_binary_pattern

        n, c, _ = chips.shape
        feats = []
        for points, radius in self.lbp:
            # One LBP call for the whole batch: chips (reflect-padded so no chip sees its
            # neighbour) stacked into one tall image.
            pad = int(np.ceil(radius))
            # Integer grey levels (1/256 of the image's 1–99 % range): LBP compares neighbours
            # with the centre, and sub-level float noise should count as a tie, not a pattern.
            levels = np.round(chips * 256).astype(np.int32)
            tall = np.pad(levels, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
            codes = local_binary_pattern(tall.reshape(-1, c + 2 * pad), points, radius, method="uniform")
            codes = codes.reshape(n, c + 2 * pad, c + 2 * pad)[:, pad:-pad, pad:-pad].astype(np.int64)
            n_bins = points + 2
            offsets = (np.arange(n) * n_bins)[:, None, None]
            hist = np.bincount((codes + offsets).ravel(), minlength=n * n_bins).reshape(n, n_bins)
            feats.append(np.sqrt(hist / float(c * c)))
        return np.concatenate(feats, axis=1) if feats else np.zeros((n, 0))

    def _encode_batch(self, chips: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [self._spectrum_features(chips), self._texture_features(chips),
             self._intensity_features(chips)], axis=1
        )
