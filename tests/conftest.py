"""Shared fixtures: small seeded synthetic scenes (fast) for backend tests."""

from __future__ import annotations

import os

import pytest
from scenes import two_phase_scene

# Keep torch from oversubscribing the 2 cores when tests run beside other work.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def two_phase():
    """The two-phase scene of :func:`scenes.two_phase_scene` (image, eds, energy, truth)."""
    return two_phase_scene(1)
