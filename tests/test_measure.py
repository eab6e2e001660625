"""Measurements of a label map: areas, particle counts and equivalent diameters, in calibrated units."""

import csv
import doctest

import numpy as np
import pytest

import stem_fsl_widgets as sfw
from stem_fsl_widgets import measure
from stem_fsl_widgets.errors import InputError
from stem_fsl_widgets.measure import measure_labels, measure_result, size_histogram

# Discs of known radius (px) on a 200×200 background, centres well inside the image.
DISCS = [((40, 40), 12), ((40, 130), 8), ((120, 60), 20), ((150, 150), 5), ((100, 170), 15)]


def disc_map(shape=(200, 200), discs=DISCS) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    lab = np.zeros(shape, dtype=np.int16)
    for (cy, cx), r in discs:
        lab[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    return lab


def test_discs_counted_and_sized_within_a_pixel():
    m = measure_labels(disc_map(), ["carbon", "Pt"], pixel_size=0.25, unit="nm")
    pt = m["Pt"]
    assert pt.n_particles == 5 and m["carbon"].n_particles == 1
    assert m.length_unit == "nm" and m.area_unit == "nm²" and m.calibrated
    # Particles in label (scan) order: sort both by diameter to compare.
    expected = np.sort([2 * r * 0.25 for _, r in DISCS])
    assert np.allclose(np.sort(pt.diameters), expected, atol=0.25)  # within one pixel (0.25 nm)
    assert pt.area == pytest.approx(pt.pixels * 0.0625)
    assert pt.area == pytest.approx(sum(np.pi * (r * 0.25) ** 2 for _, r in DISCS), rel=0.02)
    assert pt.area_fraction + m["carbon"].area_fraction == pytest.approx(1.0)
    assert pt.area_fraction == pytest.approx(pt.pixels / 200**2)
    # Centroids (px) match the disc centres.
    found = sorted(map(tuple, np.round(pt.centroids).astype(int)))
    assert found == sorted(c for c, _ in DISCS)


def test_micrometre_field_switches_area_unit_and_angstrom_converts():
    m = measure_labels(disc_map(), ["c", "p"], pixel_size=10.0, unit="nm")  # 2 µm field
    assert (m.length_unit, m.area_unit) == ("µm", "µm²")
    assert m["c"].area + m["p"].area == pytest.approx(4.0)  # (200 px · 0.01 µm)²
    a = measure_labels(disc_map(), ["c", "p"], pixel_size=2.5, unit="Å")
    b = measure_labels(disc_map(), ["c", "p"], pixel_size=0.25, unit="nm")
    assert a.length_unit == "nm" and np.allclose(a["p"].diameters, b["p"].diameters)


def test_uncalibrated_measures_in_pixels_with_a_note():
    m = measure_labels(disc_map(), ["c", "p"])
    assert (m.length_unit, m.area_unit, m.pixel_size) == ("px", "px²", None)
    assert not m.calibrated and "not calibrated" in m.notes[0]
    assert m["p"].area == m["p"].pixels
    d = np.sort(m["p"].diameters)
    assert np.allclose(d, np.sort([2 * r for _, r in DISCS]), atol=1.0)


def test_unknown_unit_is_kept_and_said():
    m = measure_labels(disc_map(), ["c", "p"], pixel_size=2.0, unit="furlong")
    assert m.length_unit == "furlong" and m.area_unit == "furlong²" and "not a known" in m.notes[0]


def test_connectivity_decides_whether_corner_touching_squares_merge():
    lab = np.zeros((10, 10), dtype=int)
    lab[1:4, 1:4] = 1
    lab[4:7, 4:7] = 1  # touches the first square at one corner
    assert measure_labels(lab, ["a", "b"], connectivity=2)["b"].n_particles == 1
    m4 = measure_labels(lab, ["a", "b"], connectivity=1)
    assert m4["b"].n_particles == 2 and m4.connectivity == 1
    assert np.allclose(m4["b"].diameters, np.sqrt(4 * 9 / np.pi))


def test_min_pixels_and_exclude_border_filter_particles_not_areas():
    lab = disc_map()
    lab[0:6, 190:200] = 1  # cut by the edge: 60 px
    lab[199, 5] = 1  # a one-pixel speck, on the edge too
    lab[100, 100] = 1  # a one-pixel speck inside
    full = measure_labels(lab, ["c", "p"])
    assert full["p"].n_particles == 8
    assert measure_labels(lab, ["c", "p"], min_pixels=2)["p"].n_particles == 6
    cut = measure_labels(lab, ["c", "p"], exclude_border=True)
    assert cut["p"].n_particles == 6 and cut["p"].n_regions == 8
    assert cut["p"].pixels == full["p"].pixels  # areas never filtered
    # The background touches the border: excluded from the particle count as well.
    assert cut["c"].n_particles == 0


def test_unassigned_pixels_are_excluded_and_count_as_border():
    lab = disc_map()
    lab[:, 180:] = -1  # an uncovered strip (edge policy "drop")
    m = measure_labels(lab, ["c", "p"])
    assert m.unassigned_pixels == 200 * 20
    assert m["c"].pixels + m["p"].pixels == 200 * 180
    assert m["c"].area_fraction + m["p"].area_fraction == pytest.approx(1.0)
    # The disc at column 170, r=15 is cut by the strip: it touches unassigned pixels.
    assert measure_labels(lab, ["c", "p"], exclude_border=True)["p"].n_particles == 4


def test_rows_table_and_particle_rows():
    m = measure_labels(disc_map(), ["carbon", "Pt"], pixel_size=0.25, unit="nm")
    rows = m.rows()
    assert [r["class"] for r in rows] == ["carbon", "Pt"]
    pt = rows[1]
    assert pt["particles"] == 5 and pt["area_unit"] == "nm²" and pt["length_unit"] == "nm"
    assert pt["diameter_max"] == pytest.approx(10.0, abs=0.25)  # the r = 20 px disc: 10 nm
    assert pt["diameter_min"] == pytest.approx(2.5, abs=0.25)
    assert pt["diameter_median"] == pytest.approx(np.median(m["Pt"].diameters), rel=1e-6)
    parts = m.particle_rows()
    assert len(parts) == 6 and {p["class"] for p in parts} == {"carbon", "Pt"}
    assert sum(p["area"] for p in parts if p["class"] == "Pt") == pytest.approx(m["Pt"].area, rel=1e-6)
    empty = measure_labels(np.zeros((8, 8), dtype=int), ["a", "b"]).rows()[1]
    assert empty["particles"] == 0 and np.isnan(empty["diameter_mean"])
    assert "Pt" in m.summary() and "nm²" in m.summary()


def test_size_histogram_shares_edges():
    m = measure_labels(disc_map(), ["c", "p"], pixel_size=0.25, unit="nm")
    edges, counts = size_histogram(m, bins=5)
    assert edges[0] == 0 and edges[-1] >= m["p"].diameters.max() and len(edges) == 6
    assert counts["p"].sum() == 5 and set(counts) == {"c", "p"}
    edges, counts = size_histogram(m, bins=[0, 5, 20], classes=["p"])
    assert list(counts) == ["p"] and counts["p"].tolist() == [2, 3]  # 2.5, 4 nm | 6, 7.5, 10 nm


def test_csv_files(tmp_path):
    m = measure_labels(disc_map(), ["carbon", "Pt"], pixel_size=0.25, unit="nm")
    path = measure.write_measurements_csv(tmp_path / "m.csv", m)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == ["carbon", "Pt"]
    assert int(rows[1]["particles"]) == 5 and rows[1]["area_unit"] == "nm²"
    assert float(rows[1]["area"]) == pytest.approx(m["Pt"].area, rel=1e-6)
    path = measure.write_particles_csv(tmp_path / "p.csv", m)
    with open(path, newline="", encoding="utf-8") as f:
        parts = list(csv.DictReader(f))
    assert len(parts) == 6
    assert sorted(float(p["equivalent_diameter"]) for p in parts if p["class"] == "Pt") == \
        pytest.approx(np.sort(m["Pt"].diameters), rel=1e-6)


def test_csv_bytes_header_always_nan_empty_and_formulas_escaped():
    lab = np.zeros((8, 8), dtype=int)  # class "+x" never appears: no particle, NaN statistics
    m = measure_labels(lab, ["@matrix", "+x"], pixel_size=1.0, unit="nm")
    text = measure.measurements_csv(m).decode("utf-8")
    rows = list(csv.reader(text.splitlines()))
    assert tuple(rows[0]) == measure.CLASS_COLUMNS
    assert rows[1][0] == "'@matrix" and rows[2][0] == "'+x"  # a spreadsheet shows text, runs nothing
    assert rows[2][rows[0].index("diameter_mean")] == ""  # NaN → empty cell, not "nan"
    assert rows[1][rows[0].index("area")] == "64.0"
    parts = measure.measurements_csv(measure_labels(lab, ["a", "b"]), particles=True).decode()
    assert parts.splitlines()[0].split(",") == list(measure.PARTICLE_COLUMNS) and len(parts.splitlines()) == 2


def test_measure_result_uses_the_dataset_calibration():
    ds = sfw.Dataset(np.random.default_rng(0).random((64, 64)), pixel_size=0.5, pixel_unit="nm")

    class FakeResult:  # a Result's measured surface: label_map and classes
        label_map = disc_map((64, 64), [((32, 32), 10)])
        classes = ["matrix", "particle"]

    m = measure_result(FakeResult(), ds, connectivity=1)
    assert m.length_unit == "nm" and m.connectivity == 1
    assert m["particle"].diameters[0] == pytest.approx(10.0, abs=0.5)


def test_measure_result_matches_the_result_fractions():
    # A chip-level Result (no pixel refiner): its label map's class shares are its fractions.
    ds = sfw.Dataset(np.random.default_rng(1).random((512, 512)), pixel_size=0.03, pixel_unit="nm")
    grid = sfw.ChipGrid(*ds.shape, 48)  # 11 × 11 chips, the last row/column shifted (overlap)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=grid.n_chips)
    r = sfw.Result(["a", "b", "c"], ["#E69F00", "#56B4E9", "#009E73"], probs,
                   np.zeros(grid.n_chips, bool), 0.5, grid)
    m = measure_result(r, ds)
    assert (m.length_unit, m.area_unit) == ("nm", "nm²")  # 0.03 nm pixels, a 15 nm field
    assert sum(c.pixels for c in m.classes) + m.unassigned_pixels == ds.image.size
    for c in m.classes:
        assert c.area_fraction == pytest.approx(r.fractions[c.name], abs=1e-9)
        assert c.area == pytest.approx(c.pixels * 0.03**2)


@pytest.mark.parametrize("bad, kwargs, match", [
    (np.zeros((4, 4, 2), dtype=int), {}, "2-D integer"),
    (np.zeros((4, 4)), {}, "2-D integer"),
    (np.full((4, 4), -2), {}, "-1 means unassigned"),
    (np.full((4, 4), 3), {"classes": ["a", "b"]}, "only 2 class names"),
    (np.zeros((4, 4), dtype=int), {"connectivity": 3}, "connectivity"),
    (np.zeros((4, 4), dtype=int), {"pixel_size": -1.0, "unit": "nm"}, "positive"),
    (np.zeros((4, 4), dtype=int), {"min_pixels": 0}, "min_pixels"),
])
def test_bad_input_says_what_to_do(bad, kwargs, match):
    with pytest.raises(InputError, match=match):
        measure_labels(bad, **kwargs)


def test_docstring_examples_run():
    res = doctest.testmod(measure, extraglobs={"np": np}, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted >= 4 and res.failed == 0


@pytest.mark.parametrize("connectivity", [1, 2])
def test_a_map_given_per_cell_measures_as_the_pixels_it_tiles(connectivity):
    # Uneven cells, as a grid whose stride is not the chip size makes, with unassigned cells.
    rng = np.random.default_rng(3)
    cells = rng.integers(-1, 3, size=(9, 11)).astype(np.int16)
    cells[cells == -1] = np.where(rng.random((cells == -1).sum()) < 0.3, -1, 0)
    heights, widths = rng.integers(1, 6, 9), rng.integers(1, 6, 11)
    pixels = np.repeat(np.repeat(cells, heights, axis=0), widths, axis=1)
    names = ["matrix", "oxide", "pore"]
    for kw in ({}, {"min_pixels": 9}, {"exclude_border": True}):
        a = measure_labels(pixels, names, pixel_size=0.3, unit="nm", connectivity=connectivity, **kw)
        b = measure_labels(cells, names, pixel_size=0.3, unit="nm", connectivity=connectivity,
                           cell_sizes=(heights, widths), **kw)
        np.testing.assert_equal(b.rows(), a.rows())  # NaN sizes of a class without particles too
        np.testing.assert_equal(b.particle_rows(), a.particle_rows())
        assert a.unassigned_pixels == b.unassigned_pixels > 0
        assert sum(c.n_regions for c in b.classes) > 10  # a real test: many regions
        for ca, cb in zip(a.classes, b.classes, strict=True):
            np.testing.assert_allclose(ca.centroids, cb.centroids)
            assert ca.n_regions == cb.n_regions
    with pytest.raises(InputError, match="one positive height per row"):
        measure_labels(cells, names, cell_sizes=(heights[:-1], widths))


def test_region_sums_by_blocks_of_rows_add_up_to_the_whole():
    # A large map is summed a block of rows at a time; blocks of one row give the same sums.
    from skimage.measure import label

    regions = label(disc_map() == 1)
    n = int(regions.max())
    centres = np.arange(200, dtype=float)
    whole = measure._region_sums(regions, n, None, centres, centres)
    rows = measure._region_sums(regions, n, None, centres, centres, block=200)
    for a, b in zip(whole, rows, strict=True):
        np.testing.assert_allclose(a, b)
    assert n == 5 and whole[0][1:].sum() == (regions > 0).sum()
