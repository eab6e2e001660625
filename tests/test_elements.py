"""X-ray line look-ups come from exSpy's database and fail with helpful messages."""

from __future__ import annotations

import numpy as np
import pytest

from stem_fsl_widgets.elements import (
    atomic_number,
    fwhm_at_energy,
    known_elements,
    line_windows,
    xray_lines,
)
from stem_fsl_widgets.errors import InputError

AXIS = np.arange(512) * 0.02  # keV, the demo's 0–10.22 keV axis


def test_ni_ka_energy_comes_from_the_database():
    from exspy.material import elements as elements_db

    lines = {name: (e, w) for name, e, w in xray_lines("Ni")}
    assert lines["Ni_Ka"][0] == pytest.approx(7.478, abs=0.01)
    assert lines["Ni_Ka"][1] == 1.0
    db_value = elements_db["Ni"]["Atomic_properties"]["Xray_lines"]["Ka"]["energy (keV)"]
    assert lines["Ni_Ka"][0] == db_value


def test_xray_lines_sorted_and_filtered():
    lines = xray_lines("Cu")
    energies = [e for _, e, _ in lines]
    assert energies == sorted(energies)
    assert {"Cu_Ka", "Cu_Kb", "Cu_La"} <= {n for n, _, _ in lines}
    assert [n for n, _, _ in xray_lines("Cu", max_energy=5.0)] == [
        n for n, e, _ in lines if e <= 5.0
    ]
    strong = xray_lines("Cu", min_weight=0.5)
    assert [n for n, _, _ in strong] == ["Cu_La", "Cu_Ka"]
    assert xray_lines("O") == [("O_Ka", pytest.approx(0.5249, abs=1e-4), 1.0)]


@pytest.mark.parametrize(
    ("bad", "hint"),
    [("ni", "did you mean 'Ni'"), ("nickel", "pass the symbol 'Ni'"), ("Cx", "Did you mean")],
)
def test_unknown_element_names_it_and_suggests(bad, hint):
    with pytest.raises(InputError) as err:
        xray_lines(bad)
    msg = str(err.value)
    assert repr(bad) in msg and hint in msg and "known_elements()" in msg


def test_non_string_element_is_rejected():
    with pytest.raises(InputError, match="chemical symbol as a string"):
        line_windows([28], AXIS)


def test_known_elements_by_atomic_number():
    known = known_elements()
    assert {"O", "Al", "Co", "Ni", "Cu"} <= set(known)
    z = [atomic_number(e) for e in known]
    assert z == sorted(z)
    assert atomic_number("Ni") == 28 and atomic_number("Al") == 13


def test_fwhm_scales_from_mn_ka():
    mn_ka = dict((n, e) for n, e, _ in xray_lines("Mn"))["Mn_Ka"]
    assert float(fwhm_at_energy(mn_ka)) == pytest.approx(0.130, abs=1e-9)
    # Fiori & Newbury: FWHM² grows by 2.5 eV per eV of energy.
    expected = np.sqrt(130.0**2 + 2.5 * (7478.1 - mn_ka * 1000)) / 1000
    assert float(fwhm_at_energy(7.4781)) == pytest.approx(expected, rel=1e-6)
    assert np.all(np.diff(fwhm_at_energy(AXIS)) >= 0)
    assert float(fwhm_at_energy(5.0, fwhm_mnka=125.0)) < float(fwhm_at_energy(5.0))


def test_line_windows_inside_axis_and_sorted():
    windows = line_windows(["Ni", "Co", "Cu", "Al", "O"], AXIS)
    names = [n for n, _, _ in windows]
    assert names == ["O_Ka", "Co_La", "Ni_La", "Cu_La", "Al_Ka", "Co_Ka", "Ni_Ka", "Cu_Ka"]
    for _, lo, hi in windows:
        assert AXIS[0] <= lo < hi <= AXIS[-1]
    centres = [(lo + hi) / 2 for _, lo, hi in windows]
    assert centres == sorted(centres)
    ni_ka = dict((n, (lo, hi)) for n, lo, hi in windows)["Ni_Ka"]
    # Default window: ± one FWHM (≈ 144 eV at Ni Ka for 130 eV at Mn Ka).
    assert ni_ka[1] - ni_ka[0] == pytest.approx(2 * float(fwhm_at_energy(7.4781)), rel=1e-6)
    assert 0.28 < ni_ka[1] - ni_ka[0] < 0.30


def test_line_windows_width_and_clipping():
    windows = line_windows("Ni", AXIS, width=0.1)
    assert [(n, round(hi - lo, 6)) for n, lo, hi in windows] == [("Ni_La", 0.1), ("Ni_Ka", 0.1)]
    # A 0–5 keV axis holds Ni's L lines only; a window near the axis start is clipped.
    assert [n for n, _, _ in line_windows("Ni", np.linspace(0, 5, 251))] == ["Ni_La"]
    ((name, lo, hi),) = line_windows("O", np.linspace(0.5, 3, 126))
    assert name == "O_Ka" and lo == 0.5 and hi > 0.5249


@pytest.mark.parametrize("axis", [np.zeros((4, 4)), np.array([1.0, 0.5, 2.0]), [1.0]])
def test_line_windows_rejects_bad_axis(axis):
    with pytest.raises(InputError, match="energy_axis"):
        line_windows("Ni", axis)


def test_line_windows_rejects_bad_width():
    with pytest.raises(InputError, match="width"):
        line_windows("Ni", AXIS, width=-0.1)
