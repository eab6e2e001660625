"""The engine beyond prototypes: context encoding, support metric, auto weight, pixel maps, NaN."""

import numpy as np
import pytest
from scipy import ndimage

import stem_fsl_widgets as sfw
from stem_fsl_widgets.chips import ChipGrid
from stem_fsl_widgets.classify import prototypes, squared_distances
from stem_fsl_widgets.encoders import ContextEncoder, FourierEncoder, chip_windows, get_encoder
from stem_fsl_widgets.errors import InputError
from stem_fsl_widgets.fusion import auto_weight, support_feature_weights


def particles_scene(seed: int = 0, size: int = 256):
    """Bright discs (r 8-20 px, varied brightness) on a noisy support; truth per pixel."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    truth = np.zeros((size, size), np.int64)
    img = 1.0 + 0.3 * ndimage.gaussian_filter(rng.normal(size=(size, size)), 1.5)
    for _ in range(12):
        r, cy, cx = rng.uniform(8, 20), rng.uniform(0, size), rng.uniform(0, size)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        truth[disc] = 1
        img[disc] += rng.uniform(1.5, 3.0)
    return rng.poisson(img * 20) / 20.0, truth


def test_chip_windows_centre_on_chips_and_shift():
    img = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    grid = ChipGrid(64, 64, 16)
    w = chip_windows(img, grid, np.array([5]), context=1)
    y0, x0, y1, x1 = grid.box(5)
    np.testing.assert_array_equal(w[0], img[y0:y1, x0:x1])
    big = chip_windows(img, grid, np.array([5]), context=2)
    assert big.shape == (1, 32, 32)
    np.testing.assert_array_equal(big[0, 8:24, 8:24], img[y0:y1, x0:x1])  # the chip at the centre
    moved = chip_windows(img, grid, np.array([5]), context=1, shift=(4, -4))
    np.testing.assert_array_equal(moved[0], img[y0 + 4 : y1 + 4, x0 - 4 : x1 - 4])


def test_context_encoder_is_the_default_and_doubles_the_features():
    enc = get_encoder("fourier")
    assert isinstance(enc, ContextEncoder) and enc.context == 2
    assert enc.dim(32) == 2 * FourierEncoder().dim(32)
    assert "context=2" in enc.key and get_encoder("fourier_local").key != enc.key
    with pytest.raises(ValueError, match="multiple of 2"):
        enc.encode(np.zeros((1, 33, 33), np.float32))


def test_support_feature_weights_favour_features_steady_within_a_class():
    rng = np.random.default_rng(1)
    labels = np.array([0, 0, 1, 1])
    steady = np.array([0.0, 0.0, 3.0, 3.0])
    views = np.stack([np.c_[rng.normal(0, 1, 4), steady + rng.normal(0, 0.05, 4)] for _ in range(5)])
    w = support_feature_weights(views, labels, rng.normal(0, 1, (100, 2)))
    assert w.mean() == pytest.approx(1.0)
    assert w[1] > 3 * w[0]  # bounded by the shrinkage: (1 + 0.3) / 0.3


def _brute_force_loo(emb, sup, lab, k):
    """Distances of each support to prototypes rebuilt without it (the definition)."""
    out = []
    for j in range(len(lab)):
        keep = np.arange(len(lab)) != j
        out.append(squared_distances(sup[j : j + 1], prototypes(sup, np.flatnonzero(keep), lab[keep], k))[0]
                   if np.sum(lab[keep] == lab[j]) else None)
    return out


def test_auto_weight_closed_form_leave_one_out_matches_the_definition():
    rng = np.random.default_rng(2)
    sup = rng.normal(size=(7, 5))
    lab = np.array([0, 0, 0, 1, 1, 2, 2])
    protos = prototypes(sup, np.arange(7), lab, 3)
    d = squared_distances(sup, protos)
    n = np.bincount(lab)[lab].astype(float)
    d[np.arange(7), lab] *= (n / (n - 1)) ** 2
    for j, ref in enumerate(_brute_force_loo(sup, sup, lab, 3)):
        np.testing.assert_allclose(d[j], ref, rtol=1e-9)


def test_auto_weight_uses_both_modalities_when_both_separate_the_supports():
    rng = np.random.default_rng(4)
    n = 300
    truth = rng.integers(0, 2, n)
    a = np.eye(2)[truth] * 5 + rng.normal(size=(n, 2)) * 0.2
    b = np.eye(2)[truth] * 5 + rng.normal(size=(n, 2)) * 0.3
    sup = np.concatenate([np.flatnonzero(truth == c)[:3] for c in range(2)])
    w = auto_weight(a, b, a[sup], b[sup], truth[sup], 2)
    assert 0.1 <= w < 0.5  # both used; the noisier modality (b) a little less
    assert auto_weight(b, a, b[sup], a[sup], truth[sup], 2) == pytest.approx(1 - w)


def test_pixel_map_beats_the_chip_map_where_particles_are_smaller_than_a_chip():
    img, truth = particles_scene()
    s = sfw.Session(img, chip_size=32)
    grid = s.grid
    from stem_fsl_widgets.evaluate import chip_truth

    labels, purity = chip_truth(truth, grid)
    bg = np.flatnonzero((labels == 0) & (purity > 0.95))[:3]
    part = np.argsort(-purity * (labels == 1))[:3]
    s.label_many(bg, "support")
    r = s.label_many(part, "particle")
    assert not r.pixel_maps_ready  # a click never computes the pixel maps
    chip_acc = np.mean((np.asarray(r.classes)[r.chip_label_map] == "particle") == (truth == 1))
    pix = r.label_map
    assert r.pixel_maps_ready
    pix_acc = np.mean((np.asarray(r.classes)[pix] == "particle") == (truth == 1))
    assert pix.shape == img.shape and pix.dtype == np.int16
    assert pix_acc > chip_acc + 0.03, (pix_acc, chip_acc)
    assert pix_acc > 0.78  # measured 0.80 (chip map 0.75): a thin halo stays around particles
    # Supports keep the user's class at chip level, and their pixels mostly agree.
    sup = np.flatnonzero(r.is_support)
    for i in sup:
        y0, x0, y1, x1 = grid.box(i)
        assert r.labels[i] == (r.classes.index("support") if i in bg else r.classes.index("particle"))
    for i in bg:
        y0, x0, y1, x1 = grid.box(i)
        assert np.mean(pix[y0:y1, x0:x1] == r.classes.index("support")) > 0.9
    ent = r.entropy_map
    assert ent.shape == img.shape and np.nanmin(ent) >= 0 and np.nanmax(ent) <= 1
    assert sum(r.pixel_fractions.values()) == pytest.approx(1.0)
    # Closer to the truth than the chips' area fraction (supports only 57-68 % particle
    # still make both overestimate it: 0.31 and 0.36 for a true 0.11).
    assert abs(r.pixel_fractions["particle"] - truth.mean()) < abs(r.fractions["particle"] - truth.mean())


def test_pixel_maps_off_gives_the_chip_map():
    img, _ = particles_scene(1, 128)
    s = sfw.Session(img, chip_size=32, pixel_maps=False)
    s.label(0, "a")
    r = s.label(5, "b")
    np.testing.assert_array_equal(r.label_map, r.chip_label_map)
    with pytest.raises(InputError, match="pixel_maps"):
        sfw.Session(img, chip_size=32, pixel_maps="yes")


def test_nan_and_overflowing_eds_counts_are_refused_with_their_place():
    ds = sfw.datasets.demo()
    eds = np.array(ds.eds, dtype=np.float32)
    eds[50, 60, 100] = np.nan
    s = sfw.Session(sfw.Dataset(ds.image, eds=eds, energy_axis=ds.energy_axis))
    with pytest.raises(InputError, match=r"row 50, column 60\), channel 100"):
        s.encode()
    eds[50, 60, 100] = np.inf
    s = sfw.Session(sfw.Dataset(ds.image, eds=eds, energy_axis=ds.energy_axis))
    with pytest.raises(InputError, match="NaN or infinite"):
        s.encode()
    eds[50, 60, 100] = 3e38
    eds[51, 60, 100] = 3e38
    s = sfw.Session(sfw.Dataset(ds.image, eds=eds, energy_axis=ds.energy_axis))
    with pytest.raises(InputError, match="float32 range"):
        s.encode()


def test_a_failed_classification_keeps_the_labels():
    ds = sfw.datasets.demo()
    eds = np.array(ds.eds, dtype=np.float32)
    eds[0, 0, 0] = np.nan
    s = sfw.Session(sfw.Dataset(ds.image, eds=eds, energy_axis=ds.energy_axis))
    s.add_class("a")
    s.label(3, "a")
    with pytest.raises(InputError):
        s.label(40, "b")
    assert s.supports == {3: "a"}


def test_pixel_maps_of_a_large_image_come_back_full_size_with_uncovered_edges():
    from stem_fsl_widgets.classify import Result
    from stem_fsl_widgets.refine import pixel_features, refine_probabilities

    img, truth = particles_scene(2, 256)
    img, truth = img[:250, :237], truth[:250, :237]  # not a multiple of the chip or the factor
    s = sfw.Session(img, chip_size=32, edge="drop", pixel_maps=False)
    from stem_fsl_widgets.evaluate import chip_truth

    labels, purity = chip_truth(truth, s.grid)
    s.label_many(np.flatnonzero((labels == 0) & (purity > 0.95))[:3], "support")
    r = s.label_many(np.argsort(-purity * (labels == 1))[:3], "particle")
    pf = pixel_features(img, max_pixels=130 * 120)  # forces a 2× coarser feature grid
    assert pf.factor == 2 and pf.features.shape[:2] == (125, 119)
    refined = Result(classes=r.classes, colours=r.colours, probabilities=r.probabilities,
                     is_support=r.is_support, threshold=r.threshold, grid=r.grid,
                     refiner=lambda res: refine_probabilities(pf, res))
    lab, ent = refined.label_map, refined.entropy_map
    assert lab.shape == ent.shape == img.shape and lab.dtype == np.int16
    uncovered = r.chip_label_map < 0  # edge="drop": the last 26 rows and 13 columns
    assert uncovered.any() and np.all(lab[uncovered] == -1) and np.all(np.isnan(ent[uncovered]))
    inside = ~uncovered
    acc = np.mean((np.asarray(r.classes)[lab[inside]] == "particle") == (truth[inside] == 1))
    chip = np.mean((np.asarray(r.classes)[r.chip_label_map[inside]] == "particle") == (truth[inside] == 1))
    assert acc > chip  # still better than the chips at half the feature resolution


def test_pixel_map_says_when_it_falls_back_to_the_chips():
    from stem_fsl_widgets.refine import pixel_map_note

    assert pixel_map_note({"diag": [0.99, 0.97], "weight": 2.0}, ["a", "b"]) == ""
    part = pixel_map_note({"diag": [0.99, 0.82], "weight": 0.9}, ["a", "b"])
    assert "b is told apart 82 %" in part and "lean on the chips" in part
    assert "cannot separate" in pixel_map_note({"diag": [0.6, 0.7], "weight": 0.0}, ["a", "b"])
    assert pixel_map_note({}, ["a", "b"]) == ""  # no calibration ran: nothing to say
    near = {"diag": [0.94, 0.96], "weight": 0.0, "boundary_disagreement": 0.36, "boundary_kept": 0.0}
    assert pixel_map_note(near, ["a", "b"]) == ("Pixel map: next to the boundaries the pixel features "
                                                "contradict the chips on 36 % of the pixels, so the map "
                                                "follows the chips")
    assert "leans on" in pixel_map_note({**near, "weight": 0.9, "boundary_kept": 0.5}, ["a", "b"])
    kept = pixel_map_note({**near, "weight": 2.0, "boundary_kept": 1.0, "diag": [0.97, 0.99]}, ["a", "b"])
    assert kept == ""  # the check passed: nothing to say
    # One texture everywhere, two classes given at random: the map still comes, and says why
    # it is only the chip map.
    rng = np.random.default_rng(0)
    s = sfw.Session(sfw.Dataset(rng.normal(size=(128, 128)).astype(np.float32)), chip_size=16)
    s.label_many([0, 9, 18, 27], "a")
    s.label_many([36, 45, 54, 63], "b")
    r = s.result
    assert r.label_map.shape == (128, 128) and (r.label_map >= 0).all()
    assert any(n.startswith("Pixel map:") for n in r.notes), r.notes


def test_pixel_map_with_a_single_support_and_no_sure_chips_is_full_size(two_phase):
    from stem_fsl_widgets.refine import pixel_features, refine_probabilities

    img, _, _, truth = two_phase
    s = sfw.Session(sfw.Dataset(img), chip_size=16)
    s.label(0, "a")                         # one support of class a
    s.label(s.grid.n_cols - 1, "b")         # one of class b
    r = s.result
    assert r.label_map.shape == img.shape and (r.label_map >= 0).all()
    # Every chip, the supports too, only 60 % sure (as in a batch, where the image's own most
    # confident chips stand in for supports): no chip is sure enough to veto the pixels.
    import dataclasses

    left = (r.grid.boxes[:, 1] + r.grid.boxes[:, 3]) / 2 < img.shape[1] / 2
    flat = np.where(left[:, None], [0.6, 0.4], [0.4, 0.6])
    unsure = dataclasses.replace(r, probabilities=flat, refiner=None)
    assert (unsure.entropy > 0.5).all()
    info: dict = {}
    p = refine_probabilities(pixel_features(img), unsure, info=info)
    assert p.shape == (*img.shape, 2) and np.allclose(p.sum(axis=2), 1.0, atol=1e-4)
    assert info.get("vetoed", 0) == 0
