"""ChipGridView driven through the canvas's Python handlers (no browser)."""

from unittest import mock

import numpy as np
import pytest

import stem_fsl_widgets as sfw
from stem_fsl_widgets.viewmodel import AppModel, display_image, rgba
from stem_fsl_widgets.widgets.grid_view import ChipGridView

ORANGE, BLUE = "#E69F00", "#56B4E9"


@pytest.fixture
def view(two_phase):
    img, eds, energy, _ = two_phase
    s = sfw.Session(sfw.Dataset(img, eds=eds, energy_axis=energy, eds_binning=4), chip_size=16)
    s.add_class("fine", ORANGE)
    s.add_class("coarse", BLUE)
    v = ChipGridView(AppModel(s))
    yield v
    v.close()


def errors(view):
    m = view.model.message
    return [m.text] if m.kind == "error" else []


def click(view, x, y, **kw):
    view.canvas.handle_mouse_down(x, y, **kw)
    view.canvas.handle_mouse_up(x, y, **kw)


def assert_drawn_matches_session(view):
    ov = view.model.overlay()
    np.testing.assert_array_equal(view.canvas.fill_rgba, ov.fill)
    np.testing.assert_array_equal(view.canvas.outline_rgba, ov.outline)
    np.testing.assert_array_equal(view.canvas.uncertain, ov.uncertain)
    np.testing.assert_array_equal(view.canvas.suggested, ov.suggested)


def test_click_labels_the_chip_under_the_pixel_and_second_click_removes(view):
    s, c = view.session, view.canvas
    assert view.active_class == "fine"
    view.canvas.handle_mouse_down(37.5, 20.2)          # x = column 37 → col 2; y = row 20 → row 1
    assert s.supports == {1 * 8 + 2: "fine"}
    assert c.outline_rgba[10].tolist() == list(rgba(ORANGE))
    assert c.fill_rgba[:, 3].max() == 0                 # one class only: no segmentation yet
    view.canvas.handle_mouse_up(37.5, 20.2)
    click(view, 40.0, 30.0)                             # same chip again: removed
    assert s.supports == {}
    assert c.outline_rgba[10, 3] == 0
    assert errors(view) == []


def test_segmentation_appears_with_two_classes_and_matches_result(view):
    s, c = view.session, view.canvas
    click(view, 5, 5)                                   # chip 0, fine (left half)
    view.model.select_class("coarse")
    click(view, 120, 5)                                 # chip 7, coarse (right half)
    r = s.result
    assert r is not None and s.supports == {0: "fine", 7: "coarse"}
    lut = np.array([rgba(ORANGE), rgba(BLUE)], np.uint8)
    np.testing.assert_array_equal(c.fill_rgba, lut[r.labels])
    np.testing.assert_array_equal(c.uncertain, r.uncertain.astype(np.uint8))
    cols = np.arange(64) % 8
    assert (r.labels[cols < 4] == 0).all() and (r.labels[cols >= 4] == 1).all()
    assert_drawn_matches_session(view)


def test_click_redraws_only_changed_chips_and_never_resends_the_image(view):
    click(view, 5, 5)
    view.model.select_class("coarse")
    click(view, 120, 5)
    image_sent = mock.Mock()
    view.canvas.observe(image_sent, names="image")
    fills = mock.Mock()
    view.canvas.observe(fills, names=["fill_rgba", "outline_rgba", "uncertain", "suggested"])
    click(view, 120, 100)                               # chip 6*8+7 = 55, coarse already predicted
    s = view.session
    expected = set(s.result.changed_chips(s.previous).tolist()) | {55}
    assert 55 in view.last_update and set(view.last_update.tolist()) <= expected
    assert len(view.last_update) < 5                    # a click on a well-classified chip: few rows
    image_sent.assert_not_called()
    assert fills.call_count == 1                        # outline only; fill unchanged
    assert_drawn_matches_session(view)


def test_right_click_and_shift_click_remove(view):
    s = view.session
    click(view, 5, 5)
    click(view, 21, 5)
    assert set(s.supports) == {0, 1}
    click(view, 5, 5, button=2)
    assert set(s.supports) == {1}
    click(view, 21, 5, shift=True)
    assert s.supports == {}
    click(view, 40, 5, button=2)                        # removing a non-support: no-op, no error
    assert s.supports == {} and errors(view) == []


def test_drag_paints_chips_as_one_undo_step(view):
    s, c = view.session, view.canvas
    view.model.select_class("coarse")
    c.handle_mouse_down(70, 5)                          # chip 4
    assert s.supports == {4: "coarse"}
    c.handle_mouse_move(75, 8)                          # same chip: nothing new
    c.handle_mouse_move(90, 8)                          # chip 5
    c.handle_mouse_move(90, 24)                         # chip 13
    assert s.supports == {4: "coarse"}                  # previews only until release
    assert c.outline_rgba[13].tolist() == list(rgba(BLUE))
    c.handle_mouse_up(90, 24)
    assert s.supports == {4: "coarse", 5: "coarse", 13: "coarse"}
    assert_drawn_matches_session(view)
    s.undo()                                            # the whole stroke goes at once
    assert s.supports == {}
    assert_drawn_matches_session(view)
    s.redo()
    assert set(s.supports) == {4, 5, 13}


def test_drag_starting_on_a_support_keeps_it(view):
    s, c = view.session, view.canvas
    click(view, 5, 5)                                   # chip 0 fine
    c.handle_mouse_down(5, 5)                           # press toggles it off ...
    assert s.supports == {}
    c.handle_mouse_move(21, 5)                          # ... but the press becomes a stroke
    c.handle_mouse_up(21, 5)
    assert s.supports == {0: "fine", 1: "fine"}
    s.undo()
    assert s.supports == {0: "fine"}


def test_keys_choose_class_and_undo_redo(view):
    s, c = view.session, view.canvas
    c.handle_key("2")
    assert view.active_class == "coarse"
    click(view, 120, 5)
    c.handle_key("1")
    click(view, 5, 5)
    assert s.supports == {7: "coarse", 0: "fine"}
    c.handle_key("z", ctrl=True)
    assert s.supports == {7: "coarse"}
    c.handle_key("z", ctrl=True, shift=True)
    assert s.supports == {7: "coarse", 0: "fine"}
    c.handle_key("z", ctrl=True)
    c.handle_key("y", ctrl=True)
    assert s.supports == {7: "coarse", 0: "fine"}
    c.handle_key("9")                                   # no 9th class: unchanged
    assert view.active_class == "fine"
    assert_drawn_matches_session(view)
    view.undo_button.click()
    assert s.supports == {7: "coarse"} and not view.redo_button.disabled


def test_hover_status_line(view):
    click(view, 5, 5)
    view.model.select_class("coarse")
    click(view, 120, 5)
    view.canvas.handle_mouse_move(100, 100)             # chip 6*8+6 = 54
    r = view.session.result
    assert view.model.hovered_chip == 54
    assert "chip 54 (row 6, col 6)" in view.status.value
    assert "predicted coarse" in view.status.value
    assert f"entropy {r.entropy[54]:.2f}" in view.status.value
    view.canvas.handle_mouse_move(500, 500)             # outside the image
    assert view.model.hovered_chip == -1 and "chip" not in view.status.value


def test_click_without_a_class_reports_and_changes_nothing(two_phase):
    img = two_phase[0]
    s = sfw.Session(img, chip_size=16)
    v = ChipGridView(s)  # a bare session: the view makes its model, with two default classes
    v.model.remove_class("class 1")
    v.model.remove_class("class 2")
    click(v, 5, 5)
    assert s.supports == {} and "Add a class first" in errors(v)[0]
    v.close()


def test_suggestions_contrast_layers_zoom(view):
    c = view.canvas
    click(view, 5, 5)
    view.model.select_class("coarse")
    click(view, 120, 5)
    chips = view.model.suggest(2)
    assert c.suggested[list(chips)].tolist() == [1, 1] and c.suggested.sum() == 2
    assert c.outline_rgba[list(chips), 3].tolist() == [0, 0]  # unlike a support
    assert c.cursor_chip == chips[0]
    c.handle_key("Escape")
    assert c.suggested.sum() == 0 and c.cursor_chip == -1
    view.contrast.value = (0, 100)
    np.testing.assert_array_equal(c.image, display_image(view.session.dataset.image, (0, 100)))
    assert c.image.min() == 0 and c.image.max() == 255
    view.opacity.value = 0.8
    view.show_uncertain.value = False
    view.outline_opacity.value = 0.5
    assert c.fill_opacity == 0.8 and c.show_uncertain is False and c.outline_opacity == 0.5
    assert view.model.layers.segmentation_opacity == 0.8
    z = c.zoom
    view.zoom_by(2.0)
    assert c.zoom == pytest.approx(2 * z)


def test_regrid_redraws_geometry_and_keeps_supports(view):
    s, c = view.session, view.canvas
    click(view, 5, 5)
    view.model.select_class("coarse")
    click(view, 120, 5)
    s.configure(chip_size=32)
    assert c.n_chips == 16 and c.boxes[1].tolist() == [0, 32, 32, 64]
    assert s.supports == {0: "fine", 3: "coarse"}
    assert_drawn_matches_session(view)
    s.undo()
    assert c.n_chips == 64
    assert_drawn_matches_session(view)


def test_display_image_stretches_percentiles():
    img = np.linspace(0, 1, 1000).reshape(10, 100)
    out = display_image(img, (10, 90))
    assert out.dtype == np.uint8
    assert (out[img <= 0.1] == 0).all() and (out[img >= 0.9] == 255).all()
    assert out[5, 0] == pytest.approx(128, abs=2)
