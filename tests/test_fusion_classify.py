import numpy as np
import pytest

from stem_fsl_widgets.chips import ChipGrid
from stem_fsl_widgets.classify import (
    Result,
    chip_probabilities,
    normalised_entropy,
    predict_log_proba,
    prototype_probabilities,
    prototype_temperature,
    prototypes,
    squared_distances,
    temperature,
)
from stem_fsl_widgets.errors import NotEnoughSupportsError
from stem_fsl_widgets.fusion import Scaler, auto_weight, fuse_early, fuse_late, spatial_coherence


def test_prototype_maths_hand_computed_two_class_example():
    emb = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [12.0, 0.0], [4.0, 0.0]])
    protos = prototypes(emb, np.array([0, 1, 2, 3]), np.array([0, 0, 1, 1]), 2)
    np.testing.assert_allclose(protos, [[1.0, 0.0], [11.0, 0.0]])
    d = squared_distances(emb, protos)
    np.testing.assert_allclose(d[4], [9.0, 49.0])
    # Nearest-prototype distances are 1, 1, 1, 1, 9 → median 1 = temperature.
    assert temperature(d) == pytest.approx(1.0)
    p = np.exp(predict_log_proba(d))
    # Chip 4: p0 = 1 / (1 + exp(-(49 - 9)/1)).
    assert p[4, 0] == pytest.approx(1 / (1 + np.exp(-40.0)))
    np.testing.assert_allclose(p.sum(1), 1.0)


def test_temperature_makes_probabilities_scale_free():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(50, 8))
    protos = prototypes(emb, np.arange(4), np.array([0, 0, 1, 1]), 2)
    p1 = np.exp(predict_log_proba(squared_distances(emb, protos)))
    p2 = np.exp(predict_log_proba(squared_distances(emb * 7.0, protos * 7.0)))
    np.testing.assert_allclose(p1, p2, atol=1e-9)


def test_calibrated_logit_depends_on_where_a_chip_lies_between_prototypes():
    # One support per class: the prototypes are (0, 0), (3, 0) and (0, 30); the closest pair
    # is 9 apart (squared), so T = 9 / 4.5 = 2.
    sup = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 30.0]])
    lab = np.array([0, 1, 2])
    chips = np.array([[0.0, 0.0], [1.5, 0.0], [0.75, 0.0], [3.0, 0.0]])
    p = prototype_probabilities(chips, sup, lab, 3)
    assert np.log(p[0, 0] / p[0, 1]) == pytest.approx(4.5)  # on a prototype: logit 4.5
    assert p[1, 0] == pytest.approx(p[1, 1])                 # half-way: even
    assert np.log(p[2, 0] / p[2, 1]) == pytest.approx(2.25)  # a quarter of the way: half
    assert p[3, 1] > 0.98 and p[3, 2] < 1e-10
    # Scale-free, and the same for any embedding size (a copy of each feature).
    np.testing.assert_allclose(prototype_probabilities(chips * 7.0, sup * 7.0, lab, 3), p, atol=1e-12)
    np.testing.assert_allclose(prototype_probabilities(np.tile(chips, 5), np.tile(sup, 5), lab, 3), p,
                               atol=1e-12)
    # The median scale (the soft probabilities) gives the same classes on another scale.
    soft = prototype_probabilities(chips, sup, lab, 3, temperature="median")
    np.testing.assert_array_equal(soft.argmax(1)[[0, 2, 3]], p.argmax(1)[[0, 2, 3]])
    assert not np.allclose(soft, p)
    with pytest.raises(ValueError, match="temperature"):
        prototype_probabilities(chips, sup, lab, 3, temperature="hot")


def test_coincident_prototypes_fall_back_to_the_median_scale():
    sup = np.array([[1.0, 1.0], [1.0, 1.0]])  # two classes labelled on identical chips
    assert prototype_temperature(squared_distances(sup, sup)) is None
    p = prototype_probabilities(np.array([[0.0, 0.0], [2.0, 2.0]]), sup, np.array([0, 1]), 2)
    np.testing.assert_allclose(p, 0.5)


def test_entropy_bounds():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), size=200)
    h = normalised_entropy(p)
    assert h.min() >= 0 and h.max() <= 1
    np.testing.assert_allclose(normalised_entropy(np.full((1, 5), 0.2)), [1.0])
    np.testing.assert_allclose(normalised_entropy(np.eye(5)), np.zeros(5))


def test_class_without_support_is_a_clear_error():
    with pytest.raises(NotEnoughSupportsError, match="no labelled chip"):
        prototypes(np.zeros((4, 2)), np.array([0]), np.array([0]), 2)


def test_fusion_weights_zero_and_one_reduce_to_single_modality():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(10, 3)), rng.normal(size=(10, 4))
    np.testing.assert_array_equal(fuse_early(a, b, 0.0), a)
    np.testing.assert_array_equal(fuse_early(a, b, 1.0), b)
    fused = fuse_early(a, b, 0.25)
    d = squared_distances(fused, fused[:2])
    expect = 0.75 * squared_distances(a, a[:2]) + 0.25 * squared_distances(b, b[:2])
    np.testing.assert_allclose(d, expect, atol=1e-9)
    la = predict_log_proba(squared_distances(a, a[:2]))
    lb = predict_log_proba(squared_distances(b, b[:2]))
    np.testing.assert_allclose(fuse_late(la, lb, 0.0), la, atol=1e-12)
    np.testing.assert_allclose(fuse_late(la, lb, 1.0), lb, atol=1e-12)
    np.testing.assert_allclose(np.exp(fuse_late(la, lb, 0.5)).sum(1), 1.0)


def test_scaler_gives_unit_mean_squared_norm_and_reuses_stats():
    rng = np.random.default_rng(0)
    x = rng.normal(5, [1, 100, 0.01], size=(200, 3))
    s = Scaler(per_feature=True).fit(x)
    z = s.transform(x)
    assert (z**2).sum(1).mean() == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(z.std(0), 1 / np.sqrt(3), rtol=1e-5)
    z2 = s.transform(x[:5] + 0)  # stats from the fit, not refitted
    np.testing.assert_allclose(z2, z[:5])


def test_auto_weight_ignores_a_modality_without_class_information():
    rng = np.random.default_rng(0)
    n = 200
    truth = np.repeat([0, 1], n // 2)
    informative = rng.normal(size=(n, 6)) + 3.0 * truth[:, None]
    noise = rng.normal(size=(n, 6))
    idx = np.array([0, 1, 2, 100, 101, 102])
    lab = truth[idx]
    w = auto_weight(informative, noise, informative[idx], noise[idx], lab, 2)
    assert w < 0.1
    w_swapped = auto_weight(noise, informative, noise[idx], informative[idx], lab, 2)
    assert w_swapped > 0.9
    w_both = auto_weight(informative, informative * 1.0, informative[idx], informative[idx], lab, 2)
    assert w_both == pytest.approx(0.5)
    # Three classes, pure noise in the second modality: still ignored.
    truth3 = rng.integers(0, 3, n)
    image = rng.normal(size=(n, 6)) * 0.3 + np.eye(3)[truth3] @ rng.normal(size=(3, 6)) * 2
    sup = np.concatenate([np.flatnonzero(truth3 == c)[:3] for c in range(3)])
    assert auto_weight(image, noise, image[sup], noise[sup], truth3[sup], 3) <= 0.1


def test_auto_weight_with_one_support_per_class_reads_the_maps_coherence():
    # Two regions on a 16 × 16 chip grid (left / right), one support each. The noise
    # modality's own classifier paints salt and pepper; its confidence alone still scored it.
    rng = np.random.default_rng(1)
    truth = np.repeat(np.arange(16)[None, :] >= 8, 16, axis=0).ravel().astype(int)
    informative = rng.normal(size=(256, 6)) + 1.5 * truth[:, None]
    noise = rng.normal(size=(256, 6))
    idx = np.array([35, 60])  # one chip in each half
    lab = truth[idx]
    assert lab.tolist() == [0, 1]
    old = auto_weight(informative, noise, informative[idx], noise[idx], lab, 2)
    w = auto_weight(informative, noise, informative[idx], noise[idx], lab, 2, grid_shape=(16, 16))
    assert w < 0.1 < old
    swapped = auto_weight(noise, informative, noise[idx], informative[idx], lab, 2, grid_shape=(16, 16))
    assert swapped > 0.9
    assert auto_weight(informative, informative, informative[idx], informative[idx], lab, 2,
                       grid_shape=(16, 16)) == pytest.approx(0.5)
    # Chips that overlap agree through shared pixels: compared ``step`` apart, a map smoothed
    # over neighbours (as overlapping chips' noise would be) is no longer taken for regions.
    smooth = np.repeat(np.repeat(rng.integers(0, 2, (24, 24)), 2, axis=0), 2, axis=1).ravel()
    assert spatial_coherence(smooth, (48, 48)) > 0.4
    assert spatial_coherence(smooth, (48, 48), step=2) < 0.1
    assert spatial_coherence(truth, (16, 16), step=2) > 0.7
    assert spatial_coherence(truth[:8], (2, 4)) is None  # too few pairs to tell


def test_result_maps_fractions_and_suggestions():
    g = ChipGrid(8, 8, 4, stride=2)  # 3×3 chips, overlapping
    p = np.tile([0.9, 0.1], (9, 1))
    p[8] = [0.2, 0.8]  # bottom-right chip
    p[4] = [0.55, 0.45]  # centre chip: unsure
    sup = np.zeros(9, bool)
    sup[0] = True
    r = Result(["a", "b"], ["#000000", "#ffffff"], p, sup, 0.5, g)
    assert r.label_map.shape == (8, 8) and r.label_map[0, 0] == 0
    assert r.label_map[7, 7] == 1  # covered by chip 8 only
    assert r.label_map[5, 5] == 0  # averaged with neighbours that say "a"
    assert r.fractions["b"] == pytest.approx(4 / 64)
    assert sum(r.fractions.values()) == pytest.approx(1.0)
    assert r.uncertain[4] and not r.uncertain[0]
    assert r.suggest(1)[0] == 4
    assert 0 not in r.suggest(9)  # a support is never suggested
    assert r.entropy_map.shape == (8, 8) and 0 <= np.nanmin(r.entropy_map)


def test_early_fusion_sums_each_modalitys_distances_as_the_concatenation_would():
    # Chips of two modalities with supports of unequal weight: the shortcut (distances summed
    # per modality, computed once) must give the probabilities of the concatenated features.
    rng = np.random.default_rng(5)
    img, eds = rng.normal(size=(300, 12)), rng.normal(size=(300, 5))
    idx, lab = np.arange(0, 30, 2), np.arange(15) % 3
    weights, w = rng.uniform(0.2, 1.0, 15), 0.35
    out = chip_probabilities(img, img[idx], lab, 3, eds_emb=eds, support_eds=eds[idx],
                             eds_weight=w, support_weights=weights)
    fused = fuse_early(img, eds, w)
    protos = prototypes(fused[idx], np.arange(15), lab, 3, weights)
    d = squared_distances(fused, protos)
    t = prototype_temperature(squared_distances(protos, protos))
    np.testing.assert_allclose(out["probabilities"], np.exp(predict_log_proba(d, t)), atol=1e-12)
    np.testing.assert_allclose(out["soft_probabilities"], np.exp(predict_log_proba(d)), atol=1e-12)
    d_img = squared_distances(img, prototypes(img[idx], np.arange(15), lab, 3, weights))
    np.testing.assert_allclose(out["image_soft_probabilities"], np.exp(predict_log_proba(d_img)),
                               atol=1e-12)
    assert 0.2 < out["probabilities"].max(1).mean() < 0.99  # neither flat nor one-hot: a real check
    same = prototype_probabilities(img, img[idx], lab, 3, eds_emb=eds, support_eds=eds[idx],
                                   eds_weight=w, support_weights=weights)
    np.testing.assert_allclose(same, out["probabilities"], atol=1e-12)


def test_auto_weight_survives_one_impure_support():
    # Left / right regions on a 16 × 16 grid; both modalities separate them, the EDS better.
    # A third support, labelled left (its majority) but on the boundary, has a summed spectrum
    # dominated by the right phase (which emits more counts): held out on its own it gives
    # the EDS a negative margin, and the weight collapsed to 0.
    rng = np.random.default_rng(2)
    truth = np.repeat(np.arange(16)[None, :] >= 8, 16, axis=0).ravel().astype(int)
    image = rng.normal(size=(256, 6)) + 1.2 * truth[:, None]
    eds = rng.normal(size=(256, 4)) * 0.3 + 2.0 * truth[:, None]
    eds[7] = 0.3 * eds[6] + 0.7 * eds[8]  # chip 7: on the boundary
    idx = np.array([35, 60, 7])
    lab = np.array([0, 1, 0])
    args = (image, eds, image[idx], eds[idx], lab, 2)
    one_each = auto_weight(image, eds, image[idx[:2]], eds[idx[:2]], lab[:2], 2, grid_shape=(16, 16))
    assert one_each > 0.4
    assert auto_weight(*args) < 0.05  # held out alone: the blend outweighs the class spread
    pooled = auto_weight(*args, grid_shape=(16, 16))
    assert 0.25 < pooled < one_each
    # Its purity (how much it straddles) makes it count less still.
    purity = np.array([1.0, 1.0, 0.2])
    weighted = auto_weight(*args, grid_shape=(16, 16), support_weights=purity)
    assert pooled < weighted <= one_each
    # Pure supports: the weights change nothing.
    idx2 = np.array([35, 60, 20, 100])
    lab2 = truth[idx2]
    a2 = (image, eds, image[idx2], eds[idx2], lab2, 2)
    assert auto_weight(*a2, grid_shape=(16, 16), support_weights=np.ones(4)) == pytest.approx(
        auto_weight(*a2, grid_shape=(16, 16)))
