"""The demo scene is deterministic, calibrated, and each modality fails where it should."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from stem_fsl_widgets.datasets.demo import CLASSES, demo, region_elements, region_spectra
from stem_fsl_widgets.elements import line_windows
from stem_fsl_widgets.errors import InputError
from stem_fsl_widgets.evaluate import chip_truth


@pytest.fixture(scope="module")
def ds():
    """Build the default 512-px scene once (≈ 0.3 s)."""
    return demo()


@pytest.fixture(scope="module")
def small():
    return demo(size=256, seed=1, eds_binning=4, counts_per_pixel=10.0)


def _window_counts(spectrum: np.ndarray, energy: np.ndarray, elements: list[str]) -> dict:
    """Sum the counts in each Ka line window of ``spectrum`` (E,)."""
    return {
        n: float(spectrum[(energy >= lo) & (energy <= hi)].sum())
        for n, lo, hi in line_windows(elements, energy)
        if n.endswith("_Ka")
    }


def _pure_eds_pixels(ds, cls: int) -> np.ndarray:
    """Boolean map (Ye, Xe) of EDS pixels whose whole footprint lies in class ``cls``."""
    b = int(ds.eds_binning)
    n = ds.eds.shape[0]
    gt = ds.ground_truth[: n * b, : n * b]
    return (gt == cls).reshape(n, b, n, b).all(axis=(1, 3))


def test_same_seed_same_arrays():
    a, b = demo(size=128, seed=3), demo(size=128, seed=3)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.eds, b.eds)
    np.testing.assert_array_equal(a.ground_truth, b.ground_truth)
    c = demo(size=128, seed=4)
    assert not np.array_equal(a.ground_truth, c.ground_truth)


def test_shapes_dtypes_calibration(ds, small):
    assert ds.image.shape == (512, 512) and ds.image.dtype == np.float32
    assert ds.eds.shape == (128, 128, 512) and ds.eds.dtype == np.uint16
    assert small.eds.shape == (64, 64, 512)
    np.testing.assert_allclose(ds.energy_axis, np.arange(512) * 0.02)
    assert ds.energy_axis[-1] == pytest.approx(10.22)
    assert ds.eds_binning == 4.0
    assert ds.pixel_size == pytest.approx(0.03) and ds.eds_pixel_size == pytest.approx(0.12)
    assert ds.pixel_unit == "nm"
    assert ds.name == "demo: Ni / CoCu / Ni[011] / Al2O3"
    assert ds.truth_classes == list(CLASSES)
    assert ds.ground_truth.shape == ds.image.shape
    assert np.issubdtype(ds.ground_truth.dtype, np.integer)
    assert set(np.unique(ds.ground_truth)) == {0, 1, 2, 3}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_four_regions_each_at_least_ten_percent(seed):
    gt = demo(size=128, seed=seed).ground_truth
    frac = np.bincount(gt.ravel(), minlength=4) / gt.size
    assert frac.min() >= 0.10 and frac.sum() == pytest.approx(1.0)


def test_regions_resolved_by_32px_chips(ds):
    """Every class owns many chips of a 16 × 16 grid that are ≥ 90 % pure."""
    y, x = np.meshgrid(np.arange(0, 512, 32), np.arange(0, 512, 32), indexing="ij")
    boxes = np.stack([y.ravel(), x.ravel(), y.ravel() + 32, x.ravel() + 32], axis=1)
    major = chip_truth(ds.ground_truth, boxes)[0]
    purity = np.array(
        [
            (ds.ground_truth[y0:y1, x0:x1] == m).mean()
            for (y0, x0, y1, x1), m in zip(boxes, major, strict=True)
        ]
    )
    for cls in range(4):
        assert np.sum((major == cls) & (purity >= 0.9)) >= 20


def test_counts_and_dose(ds, small):
    per_pixel = ds.eds.sum(axis=-1)
    assert 5 <= per_pixel.mean() <= 50
    assert per_pixel.mean() == pytest.approx(20.0, rel=0.03)
    assert small.eds.sum(axis=-1).mean() == pytest.approx(10.0, rel=0.03)
    assert ds.image.mean() == pytest.approx(200.0, rel=0.01)
    # Poisson counts: whole numbers.
    np.testing.assert_array_equal(ds.image, np.round(ds.image))


def test_matrix_and_precipitate_share_haadf_contrast(ds):
    gt, img = ds.ground_truth, ds.image
    mean = [img[gt == c].mean() for c in range(4)]
    assert mean[1] == pytest.approx(mean[0], rel=0.02)
    # Away from boundaries the Z-contrast model makes them equal to well under 1 %.
    core = [img[ndimage.binary_erosion(gt == c, iterations=16)].mean() for c in range(4)]
    assert core[1] == pytest.approx(core[0], rel=0.01)
    # Same atoms per volume in another projection: same mean brightness too.
    assert core[2] == pytest.approx(core[0], rel=0.02)
    # Al2O3 (mean Z 10) is much darker than Ni (Z 28): (10/28)^1.7 ≈ 0.17 plus offset.
    assert 0.1 < core[3] / core[0] < 0.35


def _ring_ratio(tile: np.ndarray, pixel_nm: float) -> float:
    """Power near fcc (111) (4.9 nm⁻¹) over power near (200) (5.7 nm⁻¹) of a square tile."""
    n = tile.shape[0]
    w = np.outer(np.hanning(n), np.hanning(n))
    power = np.abs(np.fft.fft2((tile - tile.mean()) * w)) ** 2
    f = np.fft.fftfreq(n, pixel_nm)
    g = np.hypot(*np.meshgrid(f, f, indexing="ij"))
    return power[(g >= 4.6) & (g < 5.25)].sum() / power[(g >= 5.3) & (g < 6.1)].sum()


def _pure_tile(gt: np.ndarray, cls: int, n: int) -> tuple[int, int]:
    ok = gt == cls
    for y in range(0, gt.shape[0] - n, 8):
        for x in range(0, gt.shape[1] - n, 8):
            if ok[y : y + n, x : x + n].all():
                return y, x
    raise AssertionError(f"no pure {n}-px tile of class {cls}")


def test_image_texture_separates_matrix_from_011_grain(ds):
    """[001] shows only {200}/{220} spacings; [011] adds the 0.203 nm {111} planes."""
    ratio = {}
    for cls in (0, 1, 2):
        y, x = _pure_tile(ds.ground_truth, cls, 64)
        ratio[cls] = _ring_ratio(ds.image[y : y + 64, x : x + 64], ds.pixel_size)
    assert ratio[0] < 0.7 and ratio[1] < 0.7
    assert ratio[2] > 1.5


def test_expected_spectra_matrix_equals_grain_not_precipitate():
    energy = np.arange(512) * 0.02
    spec = region_spectra(energy, counts=20.0)
    assert spec.shape == (4, 512)
    np.testing.assert_allclose(spec.sum(axis=1), 20.0)
    np.testing.assert_array_equal(spec[0], spec[2])
    ka = [_window_counts(s, energy, ["Ni", "Co", "Cu", "Al", "O"]) for s in spec]
    # Ni region: Ni Ka is strong, Co/Cu Ka are background only; CoCu region: the reverse.
    assert ka[0]["Ni_Ka"] > 20 * ka[0]["Co_Ka"] and ka[0]["Ni_Ka"] > 20 * ka[0]["Cu_Ka"]
    assert ka[1]["Co_Ka"] > 10 * ka[1]["Ni_Ka"] and ka[1]["Cu_Ka"] > 10 * ka[1]["Ni_Ka"]
    assert ka[3]["Al_Ka"] > 0.2 * 20 and ka[3]["O_Ka"] > 0.2 * 20
    # Kramers: the continuum follows mean Z (Ni 28, Al2O3 10), so at equal total counts the
    # oxide has less of it (at 4 keV, far from any line) despite its weaker lines.
    i4 = int(round(4.0 / 0.02))
    assert spec[3, i4] < 0.85 * spec[0, i4]


def test_measured_chip_spectra(ds):
    """Summed over pure EDS pixels, counts separate Ni from CoCu but not Ni from Ni[011]."""
    energy = ds.energy_axis
    ka = []
    for cls in range(4):
        pure = _pure_eds_pixels(ds, cls)
        assert pure.sum() >= 500
        ka.append(_window_counts(ds.eds[pure].sum(axis=0) / pure.sum(), energy, ["Ni", "Co"]))
    assert ka[0]["Ni_Ka"] > 5.0 and ka[0]["Co_Ka"] < 0.3
    assert ka[1]["Co_Ka"] > 3.0 and ka[1]["Ni_Ka"] < 0.5
    assert ka[2]["Ni_Ka"] == pytest.approx(ka[0]["Ni_Ka"], rel=0.05)


def test_region_elements_match_classes():
    elements = region_elements()
    assert list(elements) == list(CLASSES)
    assert elements["Ni matrix"] == elements["Ni grain [011]"] == ["Ni"]
    assert elements["CoCu precipitate"] == ["Co", "Cu"]
    assert elements["Al2O3 oxide"] == ["Al", "O"]


def test_chip_truth_hand_made():
    gt = np.array(
        [
            [0, 0, 1, 1, 2, 2],
            [0, 0, 1, 1, 2, 2],
            [3, 3, 3, 1, -1, -1],
            [3, 3, 0, 0, -1, -1],
        ]
    )
    boxes = np.array(
        [
            [0, 0, 2, 2],  # all 0
            [0, 2, 4, 4],  # 1 ×5, 3 ×1, 0 ×2
            [0, 0, 4, 6],  # 0 ×6, 1 ×5, 2 ×4, 3 ×5: majority 0
            [2, 4, 4, 6],  # unlabelled only
            [2, 0, 4, 2],  # all 3
            [1, 1, 3, 3],  # 0, 1, 3, 3 → 3
            [0, 1, 1, 3],  # one 0, one 1: tie → lower class
        ]
    )
    np.testing.assert_array_equal(chip_truth(gt, boxes)[0], [0, 1, 0, -1, 3, 3, 0])


def test_chip_truth_rejects_bad_boxes():
    gt = np.zeros((4, 4), dtype=int)
    with pytest.raises(InputError, match="outside"):
        chip_truth(gt, np.array([[0, 0, 5, 4]]))
    with pytest.raises(InputError, match=r"\(N, 4\)"):
        chip_truth(gt, np.array([0, 0, 2, 2]))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 32},
        {"eds_binning": 0},
        {"eds_binning": 2.5},
        {"counts_per_pixel": 0.0},
        {"electrons_per_pixel": float("nan")},
    ],
)
def test_demo_rejects_bad_parameters(kwargs):
    with pytest.raises(InputError):
        demo(**kwargs)
