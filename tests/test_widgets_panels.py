"""ClassPanel, ResultsPanel and SpectrumView driven through their controls (no browser)."""

import numpy as np
import pytest

import stem_fsl_widgets as sfw
from stem_fsl_widgets.elements import xray_lines
from stem_fsl_widgets.viewmodel import entropy_histogram
from stem_fsl_widgets.widgets.classes import ClassPanel, next_palette_colour
from stem_fsl_widgets.widgets.results import ResultsPanel
from stem_fsl_widgets.widgets.spectrum import SpectrumView


@pytest.fixture
def session(two_phase):
    img, eds, energy, _ = two_phase
    s = sfw.Session(sfw.Dataset(img, eds=eds, energy_axis=energy, eds_binning=4), chip_size=16)
    s.add_class("fine")
    s.add_class("coarse")
    return s


def errors_of(view):
    """Error messages the view's model showed (one per failed action)."""
    seen = []
    view.model.watch(lambda topics: "message" in topics and view.model.message.kind == "error"
                     and seen.append(view.model.message.text))
    return seen


def ready(s):
    s.label(0, "fine")
    s.label(7, "coarse")
    return s.result


# ---------------------------------------------------------------------------------- classes
def test_class_panel_add_rename_delete_keeps_supports_consistent(session):
    p = ClassPanel(session)
    errors = errors_of(p)
    ready(session)
    session.label(8, "fine")
    assert list(p.rows) == ["fine", "coarse"]
    assert p.rows["fine"].count.value == "2 labels" and p.rows["coarse"].count.value == "1 label"

    p.new_name.value = "oxide"                          # Enter in the text box adds
    assert list(session.classes) == ["fine", "coarse", "oxide"] and p.active == "oxide"
    assert p.rows["oxide"].swatch.style.button_color == sfw.PALETTE[2]
    assert p.new_name.value == ""

    p.rows["fine"].rename.value = "lattice A"
    assert session.supports == {0: "lattice A", 7: "coarse", 8: "lattice A"}
    assert list(p.rows) == ["lattice A", "coarse", "oxide"]
    assert session.result.classes == ["lattice A", "coarse"]

    p.rows["coarse"].select.value = True
    assert p.active == "coarse"
    assert [r.select.value for r in p.rows.values()] == [False, True, False]
    p.rows["coarse"].select.value = False               # radio: cannot deselect the active one
    assert p.active == "coarse" and p.rows["coarse"].select.value

    p.rows["lattice A"].delete.click()
    assert session.supports == {7: "coarse"} and "lattice A" not in session.classes
    assert session.result is None                       # one class left with labels
    assert "Deleted lattice A and its 2 labels" in p.model.message.text
    session.undo()
    assert session.supports == {0: "lattice A", 7: "coarse", 8: "lattice A"}
    assert list(p.rows) == ["lattice A", "coarse", "oxide"]
    assert errors == []
    p.close()


def test_class_panel_colours_and_errors(session):
    p = ClassPanel(session)
    errors = errors_of(p)
    old = session.classes["fine"]
    p.rows["fine"].swatch.click()
    new = session.classes["fine"]
    assert new in sfw.PALETTE and new != old and new != session.classes["coarse"]
    assert p.rows["fine"].swatch.style.button_color == new
    p.rows["fine"].rename.value = "coarse"              # duplicate name: refused, reported
    assert list(session.classes) == ["fine", "coarse"]
    assert len(errors) == 1 and "Could not rename the class" in errors[0]
    p.add("   ")
    assert len(errors) == 2 and "Type a name" in errors[1]
    p.close()


def test_next_palette_colour_skips_used():
    pal = sfw.PALETTE
    assert next_palette_colour(pal[0], {pal[0], pal[1], pal[2]}) == pal[3]
    assert next_palette_colour(pal[-1], set()) == pal[0]


# ---------------------------------------------------------------------------------- results
def test_results_bars_histogram_and_threshold(session):
    p = ResultsPanel(session)
    assert list(p.fraction_bars.x) == ["-"]             # nothing yet
    r = ready(session)
    assert list(p.fraction_bars.x) == ["fine", "coarse", "uncertain"]
    np.testing.assert_allclose(p.fraction_bars.y, [r.fractions["fine"], r.fractions["coarse"],
                                                   r.uncertain_fraction])
    np.testing.assert_allclose(p.fraction_bars.y[:2], [0.5, 0.5])
    assert list(p.fraction_bars.colors[:2]) == [session.classes["fine"], session.classes["coarse"]]
    assert p.entropy_bars.y.sum() == session.n_chips
    np.testing.assert_array_equal(p.entropy_bars.y, entropy_histogram(r.entropy, 20)[1])

    p.threshold.value = 0.001
    assert session.settings.threshold == 0.001
    assert list(p.threshold_line.x) == [0.001, 0.001]
    assert p.fraction_bars.y[-1] == pytest.approx(session.result.uncertain_fraction)
    assert "% of chips uncertain" in p.summary.value
    p.close()


def test_suggest_and_fusion_controls(session):
    p = ResultsPanel(session)
    errors = errors_of(p)
    p.suggest_button.click()
    assert p.suggested == () and "two classes" in errors[0]
    ready(session)
    p.n_suggest.value = 3
    p.suggest_button.click()
    assert p.suggested == tuple(session.suggest(3).tolist()) and len(p.suggested) == 3
    assert "Suggested next: chips" in p.model.status()

    assert p.eds_auto.value and p.eds_weight.disabled
    w = session.result.eds_weight
    assert f"auto: {w:.2f}" in p.eds_weight_note.value
    p.eds_auto.value = False
    assert session.settings.eds_weight == pytest.approx(round(w, 2))
    p.eds_weight.value = 0.25
    assert session.settings.eds_weight == 0.25 and session.result.eds_weight == 0.25
    p.fusion.value = "late"
    p.metric.value = "cosine"
    assert (session.settings.fusion, session.settings.metric) == ("late", "cosine")
    session.undo()                                       # controls follow the session back
    assert p.metric.value == "sqeuclidean"
    assert errors[1:] == []
    p.close()


def test_encoding_controls_reencode_with_progress(session):
    p = ResultsPanel(session)
    errors = errors_of(p)
    seen = []
    session.on_event(lambda e: "progress" in e.kinds and seen.append((e.what, e.fraction)))
    ready(session)
    p.chip_size.value = 32
    p.stride.value = 16
    other = next(e for e in sfw.available_encoders() if e.startswith("fourier") and e != p.encoder.value)
    p.encoder.value = other                              # a fast one: the encoders are FFT based
    p.apply_grid.click()
    st = session.settings
    assert (st.chip_size, st.stride, st.encoder) == (32, 16, other)
    assert session.n_chips == 49
    assert any(w == "encoding image chips" for w, _ in seen) and p.progress.value == 1.0
    assert p.progress_label.value == ""                  # done: no stale "encoding" text
    p.stride.value = 64
    p.apply_grid.click()                                 # stride > chip: refused, control reset
    assert session.settings.stride == 16 and p.stride.value == 16 and session.n_chips == 49
    assert len(errors) == 1 and "Stride 64 is out of range" in errors[0]
    p.close()


# ---------------------------------------------------------------------------------- spectrum
def test_spectrum_hover_and_class_means(session):
    v = SpectrumView(session)
    spectra = session.chip_spectra()
    # Nothing hovered or labelled: the mean of all chips, never a blank plot.
    assert v.chip_line.visible and not v.class_lines.visible and "all chips" in v.legend.value
    np.testing.assert_allclose(v.chip_line.y, spectra.mean(0))
    v.show_chip(9)
    np.testing.assert_array_equal(v.chip_line.y, spectra[9])
    assert "chip 9 (unlabelled)" in v.legend.value and v.chip_line.visible
    r = ready(session)
    expected = np.stack([spectra[r.labels == k].mean(0) for k in range(2)])
    np.testing.assert_allclose(v.class_lines.y, expected)
    assert list(v.class_lines.colors) == [session.classes["fine"], session.classes["coarse"]]
    # Left half carries a line at channel 20, right half at channel 40.
    assert v.class_lines.y[0, 20] > 10 * v.class_lines.y[0, 40]
    assert v.class_lines.y[1, 40] > 10 * v.class_lines.y[1, 20]
    v.log_y.value = True
    assert v.chip_line.scales["y"] is v.y_log and v.y_axis.scale is v.y_log
    assert v.class_lines.y.min() >= 0.1 and v.chip_line.y.min() >= 0.1
    assert 0 < v.y_log.min < v.y_log.max < np.inf       # finite log limits: no NaN transform
    np.testing.assert_allclose(v.chip_line.y, np.maximum(spectra[9].astype(float), 0.1))
    session.configure(chip_size=32)                      # new chips: the old index is stale
    assert v.chip == -1 and "chip 9" not in v.legend.value
    assert v.class_lines.y.shape == (2, spectra.shape[1])
    v.close()


def test_spectrum_elements_and_brush_window(session):
    v = SpectrumView(session)
    errors = errors_of(v)
    ready(session)
    v.elements.value = ["Ti"]
    assert session.settings.elements == ["Ti"]
    ti = sorted(e for n, e, w in xray_lines("Ti", max_energy=6.35, min_weight=0.5))
    np.testing.assert_allclose(sorted(v.marker_lines.x[:, 0]), ti)
    assert "Ti Ka" in list(v.marker_labels.text) and v.marker_lines.visible
    v.elements.value = ["Ti", "ni"]                     # wrong case: refused, tags put back
    assert session.settings.elements == ["Ti"] and list(v.elements.value) == ["Ti"]
    assert "did you mean 'Ni'" in errors[0]

    before = session.result
    v.brush.brushing = True
    v.brush.selected = np.array([3.0, 1.0])
    assert session.settings.eds_window == [0.2, None]    # still dragging
    v.brush.brushing = False
    assert session.settings.eds_window == [1.0, 3.0]
    assert session.result is not before and "1.00–3.00 keV" in v.window_label.value
    v.reset_window.click()
    assert session.settings.eds_window == [0.2, None]
    assert len(errors) == 1
    v.close()


def test_element_labels_are_staggered_not_clipped(session):
    v = SpectrumView(session)
    v.elements.value = ["Ti", "V"]                      # Ti Ka 4.51, V Ka 4.95 keV: close
    heights = list(v.marker_labels.y)
    assert max(heights) <= 0.9 and len(set(heights)) > 1
    v.close()


def test_size_histogram_writes_few_tick_labels(session):
    from stem_fsl_widgets.measure import measure_labels

    lab = np.zeros((200, 200), dtype=int)
    for i, r in enumerate(range(1, 13)):  # 12 particles from 2 to 24 px across
        y, x = 20 + (i // 4) * 60, 20 + (i % 4) * 50
        lab[y - r:y + r, x - r:x + r] = 1
    meas = measure_labels(lab, ["fine", "coarse"])
    p = ResultsPanel(session)
    p._draw_sizes(meas)
    bars, ticks = list(p.size_bars.x), list(p.size_x_axis.tick_values)
    assert len(bars) == 15 and p.size_bars.visible
    assert 3 <= len(ticks) <= 6 and ticks == bars[::3]  # every third bin centre is written
    assert np.asarray(p.size_bars.y).sum(axis=1).tolist() == [1, 12]  # the background, 12 squares
    p.close()
