"""Shared fixtures: small seeded synthetic scenes (fast) for backend tests."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scenes import lattice

# Keep torch from oversubscribing the 2 cores when tests run beside other work.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def two_phase():
    """128×128 image: left half a fine lattice, right half a coarse rotated one, + EDS cube.

    EDS (4× binning, 64 channels over 0–6.4 keV): left has a line at channel 20,
    right at channel 40; ~20 counts per EDS pixel.
    """
    rng = np.random.default_rng(1)
    h = w = 128
    img = lattice((h, w), 5.0)
    img[:, w // 2 :] = lattice((h, w // 2), 8.0, 0.5)
    img = rng.poisson(img * 50 + 10).astype(np.float32)
    energy = np.linspace(0.0, 6.4, 64, endpoint=False) + 0.05
    mean = np.full((h // 4, w // 4, 64), 0.15)
    mean[:, : w // 8, 20] += 10
    mean[:, w // 8 :, 40] += 10
    eds = rng.poisson(mean).astype(np.uint16)
    truth = np.zeros((h, w), int)
    truth[:, w // 2 :] = 1
    return img, eds, energy, truth
