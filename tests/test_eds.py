import numpy as np
import pytest

from stem_fsl_widgets.eds import EDSEncoder
from stem_fsl_widgets.errors import CalibrationError, InputError


def _spectra(rng, n=40, e=100):
    energy = np.linspace(0.0, 10.0, e)
    base = np.full(e, 0.5)
    base[:3] += 200  # zero (noise) peak
    s = rng.poisson(base, size=(n, e)).astype(float)
    s[: n // 2, 60] += rng.poisson(40, n // 2)
    s[n // 2 :, 70] += rng.poisson(40, n - n // 2)
    return s, energy


def test_window_excludes_zero_peak_and_hellinger_is_unit_norm():
    rng = np.random.default_rng(0)
    s, energy = _spectra(rng)
    enc = EDSEncoder(window=(0.2, None), n_components=None)
    h = enc.hellinger(s, energy)
    assert h.shape == (40, int((energy >= 0.2).sum()))
    np.testing.assert_allclose((h**2).sum(1), 1.0, rtol=1e-6)
    # Without the window the zero peak dominates every chip's vector.
    h_all = EDSEncoder(window=(None, None), n_components=None).hellinger(s, energy)
    assert h_all[:, :3].sum(1).min() > h.sum(1).min() * 0 and (h_all[:, :3] ** 2).sum(1).mean() > 0.5


def test_dose_invariance_and_separation():
    rng = np.random.default_rng(1)
    s, energy = _spectra(rng)
    enc = EDSEncoder(n_components=4).fit(s, energy)
    e1 = enc.transform(s, energy)
    e10 = enc.transform(s * 10, energy)  # ten times the dose, same composition
    np.testing.assert_allclose(e1, e10, atol=1e-5)
    within = np.linalg.norm(e1[0] - e1[1])
    between = np.linalg.norm(e1[0] - e1[-1])
    assert between > 3 * within


def test_rebin_sums_channels():
    s = np.ones((2, 10))
    enc = EDSEncoder(window=(None, None), rebin=2, n_components=None)
    h = enc.hellinger(s, np.arange(10.0))
    assert h.shape == (2, 5)
    np.testing.assert_allclose(h, np.sqrt(0.2))


def test_bad_eds_inputs():
    energy = np.linspace(0, 10, 50)
    with pytest.raises(InputError, match="no counts"):
        EDSEncoder().encode(np.zeros((4, 50)), energy)
    with pytest.raises(CalibrationError, match="keeps 0 channel"):
        EDSEncoder(window=(20.0, 30.0)).encode(np.ones((4, 50)), energy)
    with pytest.raises(CalibrationError, match="do not match"):
        EDSEncoder().encode(np.ones((4, 49)), energy)
    with pytest.raises(InputError, match="empty"):
        EDSEncoder(window=(5.0, 1.0)).encode(np.ones((4, 50)), energy)
