"""Small synthetic scenes for tests (importable as `scenes` from the tests folder)."""

from __future__ import annotations

import numpy as np
import pytest


def lattice(shape: tuple[int, int], period: float, angle: float = 0.0, rng=None) -> np.ndarray:
    """A blurred square lattice of Gaussian columns (float64), period in px."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    c, s = np.cos(angle), np.sin(angle)
    u, v = (c * xx + s * yy) / period, (-s * xx + c * yy) / period
    return (np.cos(np.pi * u) ** 2 * np.cos(np.pi * v) ** 2) ** 4


def two_phase_scene(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """128×128 image: left half a fine lattice, right half a coarse rotated one, + EDS cube.

    EDS (4× binning, 64 channels over 0–6.4 keV): left has a line at channel 20,
    right at channel 40; ~20 counts per EDS pixel. Returns (image, eds, energy, truth).
    """
    rng = np.random.default_rng(seed)
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


def case_registry(cases: list):
    """A decorator factory: ``@case(Error, "regex")`` registers a setup function in ``cases``
    as a bad input expected to raise ``Error`` with a message matching the regex."""

    def case(exc, match: str):
        def register(setup):
            cases.append(pytest.param(setup, exc, match, id=setup.__name__))
            return setup

        return register

    return case


def labelled_session(img: np.ndarray, cube: np.ndarray, energy: np.ndarray):
    """A session on the two-phase scene with one chip labelled in each of two classes."""
    import stem_fsl_widgets as sfw

    s = sfw.Session(sfw.Dataset(img, eds=cube, energy_axis=energy, eds_binning=4), chip_size=16)
    s.label(int(s.grid.chip_at(10, 20)), "fine")
    s.label(int(s.grid.chip_at(10, 100)), "coarse")
    return s


def snapshot(s) -> tuple:
    """Everything a user did on a session, comparable with ==."""
    from dataclasses import asdict

    return (dict(s.supports), dict(s.classes), asdict(s.settings), s.grid.shape,
            None if s.result is None else s.result.labels.tolist())


def assert_refused_untouched(setup, exc, match: str, tmp_path, monkeypatch, *,
                             must_work: bool = False) -> None:
    """Run a bad-input case: the action raises exactly ``exc`` (a package error an app shows as a
    message), the session is unchanged, and it still labels (always, or when it was ready)."""
    from stem_fsl_widgets.errors import SFWError

    session, action = setup(tmp_path, monkeypatch)
    before = snapshot(session)
    with pytest.raises(exc, match=match) as err:
        action()
    assert type(err.value) is exc  # the specific type, not a parent or a wrapped crash
    assert isinstance(err.value, SFWError)  # an app shows it as a message
    assert snapshot(session) == before  # the user's work is untouched
    if must_work or session.ready:  # and the session still works
        free = next(i for i in range(session.n_chips) if i not in session.supports)
        assert session.label(free, "fine") is not None
