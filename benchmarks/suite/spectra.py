"""Real measured EDS spectra from exSpy, resampled onto one energy axis, and Poisson cubes.

exSpy ships two measured reference spectra (no download): ``EDS_SEM_TM002`` (BAM reference
material EDS-TM002: C, Al, Mn, Cu, Zr; SEM, 0.01 keV/channel) and
``EDS_TEM_FePt_nanoparticles`` (FePt bimetallic nanoparticles; TEM, 0.02 keV/channel).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Common energy axis of every suite case with EDS (keV): 0.2-10 keV in 40 eV channels.
ENERGY = np.arange(0.2, 10.0, 0.04)


def _resample(sig, energy: np.ndarray) -> np.ndarray:
    ax = sig.axes_manager.signal_axes[0]
    e = ax.offset + ax.scale * np.arange(ax.size)
    if str(ax.units).lower() == "ev":
        e = e / 1000.0
    density = np.clip(np.asarray(sig.data, float), 0, None) / ax.scale  # counts per keV
    out = np.interp(energy, e, density, left=0.0, right=0.0)
    return out / out.sum()


def measured_spectra(energy: np.ndarray = ENERGY) -> dict[str, np.ndarray]:
    """exSpy's measured spectra on ``energy`` (keV), each normalised to unit sum.

    Returns
    -------
    dict
        ``"TM002"`` (SEM, BAM EDS-TM002), ``"FePt"`` (TEM, FePt nanoparticles) and
        ``"FePt continuum"``: the FePt spectrum with its peaks removed by a running minimum
        and smoothing (81 channels), used as the spectrum of a light support film.
    """
    import exspy.data

    out = {"TM002": _resample(exspy.data.EDS_SEM_TM002(), energy),
           "FePt": _resample(exspy.data.EDS_TEM_FePt_nanoparticles(), energy)}
    cont = ndimage.uniform_filter1d(ndimage.minimum_filter1d(out["FePt"], 81), 81)
    out["FePt continuum"] = cont / cont.sum()
    return out


def poisson_cube(rng: np.random.Generator, weights: np.ndarray, spectra: np.ndarray, binning: int,
                 counts_per_pixel: float) -> np.ndarray:
    """EDS spectrum image drawn from per-pixel mixing weights.

    Parameters
    ----------
    weights : ndarray, shape (H, W, M)
        Share of each of the M spectra at each image pixel (e.g. one-hot class maps, or
        thickness-weighted amounts).
    spectra : ndarray, shape (M, E)
        Unit-sum spectra.
    binning : int
        Image pixels per EDS pixel; H and W must be multiples.
    counts_per_pixel : float
        Expected counts in one EDS pixel whose weights sum to 1.

    Returns
    -------
    ndarray of float32, shape (H // binning, W // binning, E)
        Poisson counts.
    """
    h, w, m = weights.shape
    b = int(binning)
    wb = weights.reshape(h // b, b, w // b, b, m).mean(axis=(1, 3))
    lam = (wb @ spectra) * counts_per_pixel
    return rng.poisson(lam).astype(np.float32)
