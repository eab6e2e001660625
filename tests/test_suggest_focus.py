"""Suggestions worth a click, and visiting them: "next" centres and zooms on a suggested chip in
both apps, and a digit key labels it and moves on (issue: suggest-next that saves clicks)."""

from __future__ import annotations

import numpy as np
import pytest

import stem_fsl_widgets as sfw
from stem_fsl_widgets.evaluate import chip_truth
from stem_fsl_widgets.distances import prototypes, squared_distances
from stem_fsl_widgets.suggest import (
    IMPACT_THRESHOLD,
    PURE_DISAGREEMENT,
    expected_changes,
    novelty,
    rank_suggestions,
    support_purity,
    typicality,
    view_disagreement,
)
from stem_fsl_widgets.viewmodel import AppModel
from stem_fsl_widgets.viewmodel.drawing import focus_window


@pytest.fixture
def model(two_phase):
    img, eds, energy, _ = two_phase
    s = sfw.Session(sfw.Dataset(img, eds=eds, energy_axis=energy, eds_binning=4, pixel_size=0.5,
                                pixel_unit="nm", name="two phase"), chip_size=16)
    s.add_class("fine")
    s.add_class("coarse")
    m = AppModel(s)
    yield m
    m.close()


def label_two(m):
    m.session.label(0, "fine")
    m.session.label(m.session.grid.n_cols - 1, "coarse")


def test_novelty_is_distance_to_the_nearest_support_over_the_median_capped():
    x = np.array([[0.0], [1.0], [2.0], [4.0], [10.0]])
    sup = np.array([True, False, False, False, False])
    nov = novelty(x, sup)
    # distances 1, 2, 4, 10 to the support; median of the unlabelled 3.0
    np.testing.assert_allclose(nov, [0.0, 1 / 3, 2 / 3, 1.0, 1.0])
    # An uncertain chip next to a support loses to a slightly less uncertain, unlike one.
    ent = np.array([0.0, 0.9, 0.8, 0.1, 0.0])
    assert rank_suggestions(ent, sup, 5, 1, spacing=0).tolist() == [1]
    assert rank_suggestions(ent, sup, 5, 1, spacing=0, novelty=nov).tolist() == [2]
    assert novelty(x, np.zeros(5, bool)).tolist() == [1.0] * 5  # no supports: no opinion


def test_typicality_marks_blends_and_survives_a_reference_subset():
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 0.5, (60, 8))
    b = rng.normal(10.0, 0.5, (60, 8))
    blends = rng.normal(5.0, 0.5, (4, 8))  # chips straddling the a/b boundary
    x = np.vstack([a, b, blends])
    t = typicality(x)
    assert t.max() == 1.0 and np.median(t[:120]) == 1.0
    assert t[120:].max() < 0.35  # every blend far less typical than the regions
    sub = typicality(x, max_reference=50)  # neighbours sought among 50 chips only
    assert np.median(sub[:120]) == 1.0 and sub[120:].max() < 0.5
    # The most uncertain chip is a blend; a typical, slightly less uncertain chip wins.
    ent = np.r_[np.full(120, 0.2), [0.5], np.full(3, 0.9)]
    ent[7] = 0.8
    plain = rank_suggestions(ent, np.zeros(124, bool), 124, 1, spacing=0)
    assert plain.tolist()[0] >= 121
    assert rank_suggestions(ent, np.zeros(124, bool), 124, 1, spacing=0, typicality=t).tolist() == [7]
    assert typicality(x[:5]).tolist() == [1.0] * 5  # too few chips: no opinion


def test_chips_across_a_boundary_are_less_typical_than_pure_chips(two_phase):
    img, _, _, truth = two_phase
    s = sfw.Session(sfw.Dataset(img), chip_size=16, stride=8)  # a column of chips straddles x = 64
    _, purity = chip_truth(truth, s.grid)
    t = s.chip_typicality()
    assert t is s.chip_typicality()  # cached per grid: a suggestion does not recompute it
    pure, mixed = t[purity == 1.0], t[purity < 0.7]
    assert pure.size > 20 and mixed.size > 5
    assert np.median(mixed) < np.median(pure) - 0.1


def test_session_results_rank_with_novelty_and_typicality(model):
    label_two(model)
    r = model.session.result
    assert r.features is model.session.image_embeddings()[1]  # no copy per click
    expected = rank_suggestions(r.soft_entropy, r.is_support, r.grid.n_cols, 3,
                                novelty=novelty(r.features, r.is_support),
                                typicality=typicality(r.features), disagreement=r.disagreement,
                                disagreement_weight=1.0 - r.eds_weight, impact=r.impact)
    assert r.impact is not None
    assert 0.0 < r.eds_weight < 1.0  # the EDS tempers the view check
    np.testing.assert_array_equal(r.suggest(3), expected)


def test_boundary_chips_disagree_across_shifted_views_and_count_less_as_supports(two_phase):
    img, _, _, truth = two_phase
    s = sfw.Session(sfw.Dataset(img), chip_size=32, stride=16)  # a column straddles x = 64
    s.add_class("fine")
    s.add_class("coarse")
    _, purity = chip_truth(truth, s.grid)
    s.label(0, "fine")
    s.label(s.grid.n_cols - 1, "coarse")
    dis = s.result.disagreement(np.arange(s.n_chips))
    pure, mixed = dis[purity == 1.0], dis[purity < 0.8]
    assert pure.size == 42 and mixed.size == 7
    # measured: pure median 0.021, boundary chips 0.068-0.08
    assert np.median(pure) < PURE_DISAGREEMENT < mixed.min()
    assert np.median(mixed) > 3 * np.median(pure)
    # Labelled, a boundary chip counts less in its prototype than the chips inside one phase.
    edge = int(np.flatnonzero(purity < 0.8)[0])
    s.label(edge, "fine")
    idx, lab = s._supports_arrays(["fine", "coarse"])
    w = dict(zip(idx.tolist(), s._support_metric(idx, lab).purity.tolist(), strict=True))
    assert w[0] == w[s.grid.n_cols - 1] == 1.0 and w[edge] < 0.8  # measured 0.72


def test_view_disagreement_and_support_purity_by_hand():
    protos = np.array([[0.0, 0.0], [4.0, 0.0]])
    views = np.array([[[0.0, 0.0], [2.0, 0.0]],     # view 0 of chip a (inside) and chip b (edge)
                      [[0.1, 0.0], [0.0, 0.0]],
                      [[0.0, 0.1], [4.0, 0.0]]])
    dis = view_disagreement(views, protos, 1.0)
    assert dis[0] < 1e-3 and 0.3 < dis[1] < 0.35  # p = (0.5, 0.5), (1, 0), (0, 1): 1/3
    np.testing.assert_allclose(support_purity(np.array([0.0, 0.03, 0.06, 0.3])), [1, 1, 0.5, 0.1])


def test_of_the_chips_worth_a_click_those_inside_one_phase_come_first():
    ent = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.1])
    asked = []

    def disagreement(chips):
        asked.append(np.asarray(chips).tolist())
        return np.array([0.3, 0.01, 0.02, 0.05, 0.01, 0.0])[chips]

    free = np.zeros(6, bool)
    # One asked for: the best four are checked; over their median 0.035 chip 0 would keep 0.12
    # of its score, but keeps the floor of 0.7: 0.63 < chip 1's 0.8.
    got = rank_suggestions(ent, free, 6, 1, spacing=0, disagreement=disagreement, candidates=4)
    assert asked == [[0, 1, 2, 3]] and got.tolist() == [1]
    # Three asked for: 3 × 3 candidates, all six; median 0.015: 0.63, 0.8, 0.53, 0.42, 0.5, 0.1.
    asked.clear()
    got = rank_suggestions(ent, free, 6, 3, spacing=0, disagreement=disagreement, candidates=4)
    assert asked == [[0, 1, 2, 3, 4, 5]] and got.tolist() == [1, 0, 2]
    # Where the EDS carries half the weight, the factor is its square root: 0.74, 0.8, 0.61, ...
    got = rank_suggestions(ent, free, 6, 3, spacing=0, disagreement=disagreement, candidates=4,
                           disagreement_weight=0.5)
    assert got.tolist() == [1, 0, 2]
    got = rank_suggestions(ent, free, 6, 2, spacing=0, disagreement=disagreement, candidates=2,
                           disagreement_weight=0.0)
    assert got.tolist() == [0, 1]  # weight 0: the plain order


def test_expected_changes_match_relabelling_by_brute_force():
    rng = np.random.default_rng(3)
    img, eds = rng.normal(size=(60, 5)), rng.normal(size=(60, 3))
    sup = np.array([0, 1, 2, 3, 4, 5])
    lab = np.array([0, 0, 1, 1, 2, 2])
    u = np.array([1.0, 0.5, 1.0, 1.0, 0.25, 1.0])
    w = 0.3
    mods = [(1 - w, img, img[sup]), (w, eds, eds[sup])]

    def classes(s_idx, s_lab, s_u):
        d = sum(m * squared_distances(e, prototypes(e, s_idx, s_lab, 3, s_u)) for m, e, _ in mods)
        return d.argmin(axis=1)

    cur = classes(sup, lab, u)
    free = np.ones(60, bool)
    free[sup] = False
    probs = rng.dirichlet(np.ones(3), size=60)
    chips = np.array([10, 20, 30, 40])
    cw = np.array([1.0, 0.4, 1.0, 0.7])
    got = expected_changes(mods, lab, u, 3, cur, free, probs, chips, chip_weights=cw)
    want = [sum(probs[c, k] * np.sum((classes(np.r_[sup, c], np.r_[lab, k], np.r_[u, wc]) != cur)
                                     & free) for k in range(3)) for c, wc in zip(chips, cw)]
    np.testing.assert_allclose(got, want)
    assert np.ptp(got) > 0.5  # the candidates differ


def test_a_chip_whose_label_would_fix_a_region_is_not_passed_over():
    ent = np.array([0.9, 0.85, 0.8, 0.8, 0.75, 0.7, 0.6, 0.5])
    typ = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.3, 1.0])  # chip 6: atypical
    free = np.zeros(8, bool)
    changes = np.array([2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 30.0, 1.0])
    asked = []

    def impact(chips):
        asked.append(np.asarray(chips).tolist())
        return changes[chips]

    plain = rank_suggestions(ent, free, 8, 1, spacing=0, typicality=typ)
    assert plain.tolist() == [0]
    # Median impact 1.5: chip 6 changes 20 times that, 8 times the threshold: 0.18 × 8 > 0.9.
    got = rank_suggestions(ent, free, 8, 2, spacing=0, typicality=typ, impact=impact)
    assert asked == [list(range(8))] and got.tolist() == [6, 0]
    # Impacts within the threshold of the median leave the order alone.
    changes[6] = IMPACT_THRESHOLD * 1.5
    assert rank_suggestions(ent, free, 8, 2, spacing=0, typicality=typ, impact=impact).tolist() == [0, 1]


def test_impact_is_measured_only_in_the_metric_it_models(model):
    label_two(model)
    s = model.session
    r = s.result
    chips = np.flatnonzero(~r.is_support)[:6]
    changes = r.impact(chips)
    assert changes.shape == (6,) and np.all(changes >= 0) and np.all(changes <= r.is_support.size)
    # Cosine distances are not the squared Euclidean ones the closed form moves: no impact.
    r = s.configure(metric="cosine")
    assert r.impact is None and r.suggest(2).size == 2


def test_focus_window_centres_and_stays_inside():
    assert focus_window((100, 200, 132, 232), (512, 512)) == (152.0, 280.0, 52.0, 180.0)
    assert focus_window((480, 480, 512, 512), (512, 512)) == (384.0, 512.0, 384.0, 512.0)
    assert focus_window((0, 0, 64, 64), (100, 300)) == (0.0, 256.0, 0.0, 100.0)


def test_next_visits_suggestions_and_a_digit_labels_the_visited_chip(model):
    topics = []
    model.watch(lambda t: topics.append(t))
    assert model.next_suggestion() is None and "two classes" in model.message.text
    label_two(model)
    first = model.next_suggestion()
    assert model.suggested and first == model.suggested[0] and model.focus == first
    assert any("focus" in t for t in topics)
    second = model.next_suggestion()
    assert second == model.suggested[1]
    model.key("2")  # label the visited chip "coarse", go on to the next suggestion
    assert model.session.supports[second] == "coarse" and model.active_class == "coarse"
    assert second not in model.suggested and model.focus == model.suggested[0]
    n_before = len(model.session.supports)
    model.key("escape")
    assert model.focus is None and model.suggested == ()
    model.key("1")  # no visit: a digit only picks the class
    assert model.active_class == "fine" and len(model.session.supports) == n_before
    model.key("n")  # n asks for new suggestions and visits the first
    assert model.focus == model.suggested[0]
    model.apply_grid(chip_size=32)
    assert model.focus is None and model.focus_box() is None


def test_the_last_suggestion_labelled_says_so(model):
    label_two(model)
    model.suggest(1)
    chip = model.next_suggestion()
    model.key("1")
    assert model.session.supports[chip] == "fine" and model.focus is None
    assert "no suggestions left" in model.message.text


def test_notebook_view_zooms_on_the_visited_chip(model):
    from stem_fsl_widgets.widgets.app import FewShotApp

    app = FewShotApp(model)
    label_two(model)
    c = app.grid_view.canvas
    zoom0 = c.zoom
    chip = model.next_suggestion()
    y0, x0, y1, x1 = model.session.grid.box(chip)
    assert c.zoom > zoom0 and c.cursor_chip == chip
    # The chip's centre is in the middle of the view.
    cx, cy = c.pan[0] + c.view_width / (2 * c.zoom), c.pan[1] + c.view_height / (2 * c.zoom)
    wx0, wx1, wy0, wy1 = focus_window((y0, x0, y1, x1), model.session.dataset.shape)
    assert cx == pytest.approx((wx0 + wx1) / 2) and cy == pytest.approx((wy0 + wy1) / 2)
    app.results.next_button.click()
    assert c.cursor_chip == model.focus != chip
    app.close()


def test_panel_view_zooms_on_the_visited_chip(model):
    from stem_fsl_widgets.apps.panel_app import PanelApp

    app = PanelApp(model)
    label_two(model)
    app.next_button.clicks += 1
    box = model.focus_box()
    x0, x1, y0, y1 = focus_window(box, model.session.dataset.shape)
    assert (app.figure.x_range.start, app.figure.x_range.end) == (x0, x1)
    assert (app.figure.y_range.start, app.figure.y_range.end) == (y1, y0)
    app.close()


def test_notebook_canvas_shows_the_pixel_map_when_ready(model):
    from stem_fsl_widgets.viewmodel.drawing import MAX_DISPLAY_SIDE
    from stem_fsl_widgets.widgets.app import FewShotApp

    app = FewShotApp(model)
    model.run_on_ui = None  # handlers driven from Python: the refinement runs when asked
    g, c = app.grid_view, app.grid_view.canvas
    label_two(model)
    assert not c.show_pixels and c.seg_image.size == 0  # the chip fills, until asked
    g.show_pixels.value = True  # the layer switch: computes the pixel map and shows it
    assert model.layers.pixels and model.pixels_ready and c.show_pixels
    np.testing.assert_array_equal(c.seg_image, model.segmentation_rgba(MAX_DISPLAY_SIDE))
    lab = model.session.result.label_map
    assert c.seg_image.shape == (*lab.shape, 4)
    model.click(*centre_of(model, 3))  # a new result: the chip fills show at once
    assert not c.show_pixels and not model.pixels_ready
    model.refine()  # the background job's work, done here: the new pixel map is sent
    assert c.show_pixels
    np.testing.assert_array_equal(c.seg_image, model.segmentation_rgba(MAX_DISPLAY_SIDE))
    g.show_pixels.value = False
    assert not c.show_pixels and not model.layers.pixels
    app.close()


def centre_of(m, chip):
    y0, x0, y1, x1 = m.session.grid.box(chip)
    return (x0 + x1) / 2, (y0 + y1) / 2
