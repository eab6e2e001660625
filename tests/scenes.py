"""Small synthetic scenes for tests (importable as `scenes` from the tests folder)."""

from __future__ import annotations

import numpy as np


def lattice(shape: tuple[int, int], period: float, angle: float = 0.0, rng=None) -> np.ndarray:
    """A blurred square lattice of Gaussian columns (float64), period in px."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    c, s = np.cos(angle), np.sin(angle)
    u, v = (c * xx + s * yy) / period, (-s * xx + c * yy) / period
    return (np.cos(np.pi * u) ** 2 * np.cos(np.pi * v) ** 2) ** 4
