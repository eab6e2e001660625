"""The evaluation suite's case builders (quick sizes) and the real example files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.suite import cases as suite_cases  # noqa: E402
from benchmarks.suite.run import (  # noqa: E402
    chip_majority_ceiling,
    draw_support_sets,
    evaluate_case,
    grid_for,
    pixel_accuracy,
    uncertainty_table,
)
from stem_fsl_widgets.datasets import real  # noqa: E402

SYNTHETIC = ["textures3_flat_eds", "textures4_spectra", "camera_otsu", "coins_otsu", "haadf_lattices",
             "fept_particles", "minor_class", "ramp_textures", "thickness_lattice"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every synthetic case at its quick size, built fresh into a temporary cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SFW_DATA_DIR", str(tmp_path_factory.mktemp("sfw_data")))
    out = {n: suite_cases.build_case(n, quick=True) for n in SYNTHETIC}
    mp.undo()
    return out


@pytest.mark.parametrize("name", SYNTHETIC)
def test_case_shapes_and_truth(built, name):
    c = built[name]
    h, w = c.image.shape
    assert c.image.dtype == np.float32 and np.isfinite(c.image).all()
    assert c.truth.shape == (h, w) and c.truth.dtype == np.int64
    assert c.truth.min() >= -1 and c.truth.max() == c.n_classes - 1
    assert np.all(c.fractions > 0.02), c.fractions  # every class is really there
    assert grid_for(c).n_chips >= 16  # enough chips to draw supports from and to score
    if c.eds is not None:
        assert c.eds.shape[:2] == (h // c.eds_binning, w // c.eds_binning)
        assert c.eds.shape[2] == c.energy.size and c.energy[-1] < 20
        assert (c.eds >= 0).all() and c.eds.sum() > 0
    c.dataset()  # the package accepts it as it is


def test_minor_class_fractions(built):
    # The issue asks for a class of <= 5 % and one of 5-7 % of the area.
    assert 0.035 <= built["minor_class"].fractions[2] <= 0.05
    assert 0.05 <= built["textures4_spectra"].fractions[3] <= 0.07


def test_flat_eds_carries_no_class_information(built):
    c = built["textures3_flat_eds"]
    b = c.eds_binning
    cls = c.truth[::b, ::b]
    means = np.array([c.eds[cls == k].mean(axis=0) for k in range(3)])
    # Class-mean spectra agree within Poisson noise: relative spread of the total < 2 %.
    tot = means.sum(axis=1)
    assert np.ptp(tot) / tot.mean() < 0.02


def test_cache_round_trip(built, tmp_path):
    c = built["fept_particles"]
    c.save(tmp_path / "c.npz")
    d = suite_cases.Case.load(tmp_path / "c.npz")
    assert d.name == c.name and d.class_names == c.class_names and d.chip_size == 64
    np.testing.assert_array_equal(d.truth, c.truth)
    np.testing.assert_array_equal(d.eds, c.eds)


def test_builders_are_reproducible(tmp_path, monkeypatch):
    monkeypatch.setenv("SFW_DATA_DIR", str(tmp_path))
    a = suite_cases.build_case("minor_class", quick=True, rebuild=True)
    b = suite_cases.build_case("minor_class", quick=True, rebuild=True)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.truth, b.truth)


def test_a_case_seed_builds_new_instances_of_generated_cases_only(tmp_path, monkeypatch):
    monkeypatch.setenv("SFW_DATA_DIR", str(tmp_path))
    base = suite_cases.build_case("minor_class", quick=True)
    other = suite_cases.build_case("minor_class", quick=True, seed=7)
    assert base.truth.shape == other.truth.shape
    assert np.mean(base.truth != other.truth) > 0.02  # another map, not another noise draw
    assert sorted(p.name for p in (tmp_path / "suite").iterdir()) == [
        f"minor_class_quick_v{suite_cases.CASES_VERSION}.npz",
        f"minor_class_quick_v{suite_cases.CASES_VERSION}_s7.npz"]
    # The default seed is back after building, and a fixed image ignores the seed.
    again = suite_cases.build_case("minor_class", quick=True, rebuild=True)
    np.testing.assert_array_equal(again.truth, base.truth)
    cam = suite_cases.build_case("camera_otsu", quick=True, seed=7)
    np.testing.assert_array_equal(cam.truth, suite_cases.build_case("camera_otsu", quick=True).truth)
    assert set(suite_cases.GENERATED) < set(suite_cases.BUILDERS)


def test_ceiling_and_draws(built):
    c = built["fept_particles"]
    grid = grid_for(c)
    ceil = chip_majority_ceiling(c, grid)
    # Particles are smaller than a 64-px chip: the best chip-level map misses most of them.
    assert 1 - c.fractions[1] - 0.05 < ceil < 0.95
    sets = draw_support_sets(c, grid, 3, 2, seed=0)
    assert sets == draw_support_sets(c, grid, 3, 2, seed=0)  # same seed, same supports
    assert sets[0] != sets[1]
    assert {v for v in sets[0].values()} == {0, 1}
    truth_map = np.where(c.truth >= 0, c.truth, 0)
    assert pixel_accuracy(truth_map, c.truth) == 1.0


def test_evaluate_case_with_an_oracle_method(built):
    c = built["minor_class"]

    def oracle(case, supports, grid):
        return case.truth.copy()

    out = evaluate_case(c, oracle, k=1, draws=2)
    assert out["acc"] == [1.0, 1.0] and out["pure"] == 1.0 and out["supports"] == 3


def test_the_uncertain_flag_is_scored_against_the_chips_true_classes(built):
    c = built["ramp_textures"]
    row = {"case": c.name, "k": 3, "methods": {}}
    out = evaluate_case(c, {"pixel_maps": False}, k=3, draws=2)
    row["methods"]["default"] = out
    # Measured on these two draws: 2 % of the chips wrong, every one of them flagged, and
    # 21 % of all chips flagged (71 % on the former median scale); mean top probability 0.92,
    # calibration error 0.07.
    assert 0 < out["chip_error"] < 0.1 and out["errors_flagged"] == 1.0
    assert out["chip_error"] < out["flagged"] < 0.4
    assert 0.85 < out["top_probability"] < 1.0 and out["calibration_error"] < 0.1
    table = uncertainty_table([row])
    assert (f"| ramp_textures | 3 | {1 - out['chip_error']:.2f} | {out['top_probability']:.2f} | "
            f"{out['calibration_error']:.3f} | {out['flagged']:.2f} | 1.00 |") in table


# ---------------------------------------------------------------------- real files
def test_real_file_registry_and_offline_error(tmp_path, monkeypatch):
    assert "au_nanoparticles" in real.available_real_files()
    monkeypatch.setenv("SFW_DATA_DIR", str(tmp_path))
    assert real.cached_real_files() == []
    with pytest.raises(real.RealDataError, match="not in the cache"):
        real.real_file("au_nanoparticles", fetch=False)
    with pytest.raises(real.RealDataError, match="No real file named"):
        real.real_file("nope")


def test_download_failure_is_a_clear_error(tmp_path, monkeypatch):
    # pip answering as it does offline; no network is touched.
    import subprocess

    monkeypatch.setenv("SFW_DATA_DIR", str(tmp_path))
    failed = subprocess.CompletedProcess([], 1, "", "ERROR: No matching distribution found for atomap==0.4.2")
    monkeypatch.setattr(real.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(real.RealDataError, match="Could not download atomap==0.4.2.*offline"):
        real.real_file("atomap_adf")


def _real_or_skip(name):
    try:
        return real.real_file(name)
    except real.RealDataError as err:
        pytest.skip(f"real file not available here: {err}")


def test_real_au_loads_through_the_package():
    import stem_fsl_widgets as sfw

    ds = sfw.load(_real_or_skip("au_nanoparticles"))
    assert ds.image.shape == (2048, 2048)
    assert ds.pixel_unit == "nm" and ds.pixel_size == pytest.approx(0.0075, rel=0.01)
    # A HAADF image of bright particles on a dark support: a strongly bimodal histogram.
    lo, hi = np.percentile(ds.image, [10, 90])
    assert hi - lo > 0.1 * lo


def test_real_mos2_loads_through_the_package():
    import stem_fsl_widgets as sfw

    ds = sfw.load(_real_or_skip("se_mos2"))
    assert ds.image.shape == (1024, 1024)
    assert ds.pixel_size == pytest.approx(0.0127, rel=0.01)
