"""Encode chip-summed EDS spectra: window, rebin, variance-stabilise, normalise, denoise.

Counts are Poisson: spectra are summed over each chip first (see :func:`chips.chip_spectra`),
then ``sqrt(counts / total)`` — the square root stabilises the Poisson variance and dividing
by the total removes dose and thickness, so Euclidean distance between two chips becomes the
Hellinger distance between their compositions. A PCA fitted on all chips of the image keeps
the directions that vary (X-ray lines) and drops channel noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import CalibrationError, InputError

__all__ = ["EDSEncoder", "DEFAULT_WINDOW", "class_mean_spectra"]

#: Default energy window (keV): starts above the detector's zero (noise) peak.
DEFAULT_WINDOW: tuple[float, float | None] = (0.2, None)


@dataclass
class EDSEncoder:
    """Chip spectra (N, E) → embeddings (N, D).

    Parameters
    ----------
    window : (float, float or None)
        Energy range kept, keV; ``None`` as the upper bound keeps up to the last channel.
        The default starts at 0.2 keV to exclude the zero peak.
    rebin : int
        Sum this many adjacent channels (≥ 1) before anything else.
    n_components : int or None
        PCA components kept (fitted on all chips of the reference image); None keeps all channels.
    elements : sequence of str
        Elements whose line intensities are appended as extra features (line energies from
        exSpy's database via :mod:`stem_fsl_widgets.elements`).

    Examples
    --------
    >>> import numpy as np
    >>> e = np.linspace(0, 10, 200)
    >>> s = np.random.default_rng(0).poisson(5, size=(50, 200)).astype(float)
    >>> EDSEncoder(n_components=4).fit(s, e).transform(s, e).shape
    (50, 4)
    """

    window: tuple[float | None, float | None] = DEFAULT_WINDOW
    rebin: int = 1
    n_components: int | None = 12
    elements: Sequence[str] = ()
    mean_: np.ndarray | None = field(default=None, repr=False)
    components_: np.ndarray | None = field(default=None, repr=False)

    def params(self) -> dict:
        """Parameters that change the embedding (part of the cache key)."""
        return {"window": tuple(self.window), "rebin": self.rebin,
                "n_components": self.n_components, "elements": tuple(self.elements)}

    @property
    def key(self) -> str:
        """Cache key."""
        return "eds(" + ",".join(f"{k}={v}" for k, v in sorted(self.params().items())) + ")"

    def _channels(self, energy: np.ndarray) -> np.ndarray:
        lo, hi = self.window
        lo = -np.inf if lo is None else lo
        hi = np.inf if hi is None else hi
        if hi <= lo:
            raise InputError(f"EDS window {self.window} is empty: the upper bound must exceed the lower.")
        keep = (energy >= lo) & (energy <= hi)
        if keep.sum() < 2:
            raise CalibrationError(
                f"The EDS window {self.window} keV keeps {int(keep.sum())} channel(s) of an axis "
                f"spanning {energy[0]:.3g}–{energy[-1]:.3g} keV; widen the window or check the axis."
            )
        return keep

    def hellinger(self, spectra: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """Windowed, rebinned ``sqrt(counts / total)`` per chip, shape (N, E')."""
        spectra = np.asarray(spectra, dtype=np.float64)
        energy = np.asarray(energy, dtype=np.float64)
        if spectra.ndim != 2 or spectra.shape[1] != energy.size:
            raise CalibrationError(
                f"Spectra of shape {spectra.shape} do not match an energy axis of {energy.size} channels."
            )
        x = spectra[:, self._channels(energy)]
        if self.rebin < 1:
            raise InputError(f"rebin must be ≥ 1, not {self.rebin}.")
        if self.rebin > 1:
            n = x.shape[1] // self.rebin * self.rebin
            x = x[:, :n].reshape(x.shape[0], -1, self.rebin).sum(2)
        total = x.sum(axis=1, keepdims=True)
        if not np.any(total > 0):
            raise InputError(
                "The EDS cube has no counts in the chosen energy window: all chips are empty. "
                "Check that the right file/signal was loaded and widen the window."
            )
        return np.sqrt(x / np.maximum(total, 1.0))

    def _line_features(self, spectra: np.ndarray, energy: np.ndarray) -> np.ndarray:
        from .elements import line_windows

        wins = line_windows(list(self.elements), energy)
        total = np.maximum(spectra[:, self._channels(energy)].sum(1), 1.0)
        cols = [spectra[:, (energy >= lo) & (energy < hi)].sum(1) for _, lo, hi in wins]
        return np.sqrt(np.stack(cols, 1) / total[:, None]) if cols else np.zeros((len(spectra), 0))

    def fit(self, spectra: np.ndarray, energy: np.ndarray) -> EDSEncoder:
        """Fit the PCA basis on the chips of the reference image."""
        h = self.hellinger(spectra, energy)
        self.mean_ = h.mean(axis=0)
        if self.n_components is None or self.n_components >= min(h.shape):
            self.components_ = None
            return self
        # Eigenvectors of the (E'×E') covariance: cheap for any number of chips.
        xc = h - self.mean_
        cov = xc.T @ xc / max(len(h) - 1, 1)
        vals, vecs = np.linalg.eigh(cov)
        self.components_ = vecs[:, ::-1][:, : self.n_components].T.copy()
        return self

    def transform(self, spectra: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """Embed chips with the fitted basis, shape (N, D), float32."""
        if self.mean_ is None:
            raise RuntimeError("EDSEncoder.fit must be called before transform")
        h = self.hellinger(spectra, energy) - self.mean_
        emb = h if self.components_ is None else h @ self.components_.T
        if len(self.elements):
            emb = np.concatenate([emb, self._line_features(np.asarray(spectra, float), energy)], 1)
        return emb.astype(np.float32)

    def encode(self, spectra: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """Fit on these spectra and embed them."""
        return self.fit(spectra, energy).transform(spectra, energy)


def class_mean_spectra(spectra: np.ndarray, labels: np.ndarray, n_classes: int, *,
                       empty: float = np.nan) -> np.ndarray:
    """Mean summed spectrum of the chips of each class (what the spectrum views draw).

    Parameters
    ----------
    spectra : ndarray, shape (N, E)
        Summed counts per chip.
    labels : ndarray of int, shape (N,)
        Class index per chip.
    n_classes : int
    empty : float
        Value of the row of a class with no chip.

    Returns
    -------
    ndarray, shape (n_classes, E), float64

    Examples
    --------
    >>> class_mean_spectra(np.array([[1., 0.], [3., 2.], [5., 5.]]), np.array([0, 0, 1]), 2).tolist()
    [[2.0, 1.0], [5.0, 5.0]]
    """
    spectra = np.asarray(spectra)
    labels = np.asarray(labels, dtype=np.int64)
    out = np.full((n_classes, spectra.shape[1]), float(empty))
    # A masked mean per class: K is small, and this beats a one-hot matmul here.
    for k in range(n_classes):
        mask = labels == k
        if mask.any():
            out[k] = spectra[mask].mean(axis=0, dtype=np.float64)
    return out
