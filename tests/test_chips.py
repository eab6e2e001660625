import numpy as np
import pytest

from stem_fsl_widgets.chips import ChipGrid, chip_spectra, eds_ranges
from stem_fsl_widgets.errors import CalibrationError, GridError


def test_grid_geometry_no_overlap_exact_fit():
    g = ChipGrid(96, 64, 32)
    assert (g.n_rows, g.n_cols, g.n_chips) == (3, 2, 6)
    assert g.box(0) == (0, 0, 32, 32)
    assert g.box(5) == (64, 32, 96, 64)
    assert g.rowcol(5) == (2, 1) and g.index(2, 1) == 5


def test_edge_shift_adds_flush_chip_and_covers_every_pixel():
    g = ChipGrid(100, 70, 32)
    assert list(g.row_starts) == [0, 32, 64, 68]
    assert list(g.col_starts) == [0, 32, 38]
    cover = np.zeros((100, 70), int)
    for y0, x0, y1, x1 in g.boxes:
        cover[y0:y1, x0:x1] += 1
    assert cover.min() == 1


def test_edge_drop_leaves_remainder_uncovered():
    g = ChipGrid(100, 70, 32, edge="drop")
    assert (g.n_rows, g.n_cols) == (3, 2)
    assert g.chip_at(99, 10) == -1
    vals = g.to_pixels(np.ones(g.n_chips))
    assert np.isnan(vals[99, 10]) and vals[0, 0] == 1


def test_overlap_stride_and_chip_at_nearest_centre():
    g = ChipGrid(64, 64, 32, stride=16)
    assert list(g.row_starts) == [0, 16, 32]
    # Pixel 26 lies in chips starting at 0 and 16; the centre 32 (start 16) is nearer than 16.
    assert g.rowcol(g.chip_at(26, 26)) == (1, 1)
    assert g.rowcol(g.chip_at(20, 20)) == (0, 0)
    assert g.rowcol(g.chip_at(5, 60)) == (0, 2)
    ys, xs = np.array([0, 63]), np.array([0, 63])
    assert list(g.chip_at(ys, xs)) == [0, g.n_chips - 1]
    assert g.chip_at(-1, 3) == -1 and g.chip_at(3, 64) == -1


def test_chip_at_on_a_border_between_chips():
    g = ChipGrid(128, 128, 64)
    assert g.chip_at(0, 63) == 0 and g.chip_at(0, 64) == 1 and g.chip_at(127, 127) == 3
    g = ChipGrid(128, 128, 64, stride=32)  # centres 32, 64, 96: pixel 48 (centre 48.5) → chip 1
    assert g.rowcol(g.chip_at(47, 47)) == (0, 0) and g.rowcol(g.chip_at(48, 48)) == (1, 1)


def test_view_is_a_view_for_regular_grid_and_extract_matches():
    img = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    g = ChipGrid(64, 64, 16, stride=8)
    v = g.view(img)
    assert v.shape == (7, 7, 16, 16) and np.shares_memory(v, img)
    chips = g.extract(img)
    assert chips.shape == (49, 16, 16)
    y0, x0, y1, x1 = g.box(10)
    np.testing.assert_array_equal(chips[10], img[y0:y1, x0:x1])
    np.testing.assert_array_equal(v.reshape(-1, 16, 16), chips)


def test_to_pixels_averages_overlaps():
    g = ChipGrid(8, 8, 4, stride=2)  # 3×3 chips
    vals = np.zeros(g.n_chips)
    vals[0] = 9.0
    pix = g.to_pixels(vals)
    assert pix[0, 0] == 9.0  # covered by chip 0 only
    assert pix[2, 2] == pytest.approx(9.0 / 4)  # covered by 4 chips


@pytest.mark.parametrize(
    "kwargs, match",
    [({"size": 200}, "larger than the image"), ({"size": 3}, "too small"),
     ({"size": 16, "stride": 0}, "between 1"), ({"size": 16, "stride": 17}, "between 1")],
)
def test_bad_grids_raise_clear_errors(kwargs, match):
    with pytest.raises(GridError, match=match):
        ChipGrid(100, 100, **kwargs)


def test_eds_ranges_binning_4():
    lo, hi = eds_ranges(np.array([0, 32, 60]), 32, 4.0, 23)
    assert list(lo) == [0, 8, 15] and list(hi) == [8, 16, 23]


def test_chip_spectra_sum_with_binning_matches_brute_force():
    rng = np.random.default_rng(0)
    eds = rng.poisson(3, size=(25, 25, 7)).astype(np.uint16)
    g = ChipGrid(100, 100, 32, stride=16)
    out = chip_spectra(eds, g, 4.0)
    assert out.shape == (g.n_chips, 7) and out.dtype == np.float32
    for i in (0, 7, g.n_chips - 1):
        y0, x0, y1, x1 = g.box(i)
        expect = eds[y0 // 4 : y1 // 4, x0 // 4 : x1 // 4].sum((0, 1))
        np.testing.assert_array_equal(out[i], expect)
    assert out.sum() > 0


def test_chip_spectra_works_on_dask_and_matches_numpy():
    da = pytest.importorskip("dask.array")
    eds = np.random.default_rng(2).poisson(1, size=(16, 16, 5)).astype(np.uint16)
    g = ChipGrid(64, 64, 16)
    lazy = da.from_array(eds, chunks=(4, 16, 5))
    np.testing.assert_array_equal(chip_spectra(lazy, g, 4.0), chip_spectra(eds, g, 4.0))


def test_chip_spectra_field_of_view_and_negative_counts():
    g = ChipGrid(64, 64, 16)
    with pytest.raises(CalibrationError, match="does not cover"):
        chip_spectra(np.ones((8, 8, 3)), g, 4.0)
    with pytest.raises(CalibrationError, match="negative counts"):
        chip_spectra(-np.ones((16, 16, 3)), g, 4.0)
