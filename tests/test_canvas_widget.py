"""ChipCanvas without a browser: state, binary serialisation, update_chips and event routing."""

from __future__ import annotations

import re
import subprocess
import sys
from unittest.mock import Mock, call

import numpy as np
import pytest
import traitlets

pytest.importorskip("anywidget")

from stem_fsl_widgets.chips import ChipGrid  # noqa: E402
from stem_fsl_widgets.widgets.canvas import (  # noqa: E402
    ChipCanvas,
    Modifiers,
    array_from_json,
    array_to_json,
    chip_cells,
)

ORANGE = (230, 159, 0, 255)


def grid_boxes(n: int = 4, size: int = 16) -> np.ndarray:
    starts = np.arange(n) * size
    y0, x0 = np.repeat(starts, n), np.tile(starts, n)
    return np.stack([y0, x0, y0 + size, x0 + size], axis=1)


@pytest.fixture
def canvas() -> ChipCanvas:
    image = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    return ChipCanvas(image, grid_boxes())


# ---- state --------------------------------------------------------------------------------


def test_image_is_scaled_to_uint8_and_view_fits_aspect():
    img = np.linspace(-1.0, 3.0, 50 * 100).reshape(50, 100)
    w = ChipCanvas(img, max_view_size=400)
    assert w.image.dtype == np.uint8 and w.image_shape == (50, 100)
    assert (w.image.min(), w.image.max()) == (0, 255)
    assert (w.view_width, w.view_height) == (400, 200)
    assert w.zoom == pytest.approx(4.0) and w.pan == pytest.approx((0.0, 0.0))


def test_uint8_image_is_kept_exactly():
    img = np.random.default_rng(0).integers(0, 256, (30, 20), dtype=np.uint8)
    w = ChipCanvas(img)
    assert np.array_equal(w.image, img)


def test_non_2d_image_is_refused():
    with pytest.raises(ValueError, match="2-D"):
        ChipCanvas(np.zeros((4, 4, 3)))


def test_fit_view_centres_the_image():
    w = ChipCanvas(np.zeros((100, 200), np.uint8), view_width=300, view_height=300)
    w.view_width = w.view_height = 300  # the image set the view to its aspect; square it again
    w.fit_view()
    assert w.zoom == pytest.approx(1.5)
    assert w.pan == pytest.approx((0.0, -50.0))  # 300 px / 1.5 = 200 image px tall view


def test_set_chips_resets_overlay_arrays_and_derives_cells(canvas):
    canvas.update_chips([1], fill=ORANGE, outline=ORANGE, uncertain=True)
    canvas.set_chips(grid_boxes(2, 32))
    assert canvas.n_chips == 4
    assert canvas.boxes.dtype == np.dtype("<i4")
    assert np.array_equal(canvas.cells, canvas.boxes)  # non-overlapping: cells are the chips
    for arr, shape in ((canvas.fill_rgba, (4, 4)), (canvas.outline_rgba, (4, 4)),
                       (canvas.uncertain, (4,))):
        assert arr.shape == shape and not arr.any()


def test_assigning_boxes_directly_keeps_rows_consistent(canvas):
    canvas.boxes = grid_boxes(3, 16)
    assert canvas.fill_rgba.shape == (9, 4) and canvas.cells.shape == (9, 4)


def test_rows_must_match_the_number_of_chips(canvas):
    with pytest.raises(traitlets.TraitError, match="16 chips"):
        canvas.fill_rgba = np.zeros((3, 4), np.uint8)
    with pytest.raises(traitlets.TraitError, match="shape"):
        canvas.fill_rgba = np.zeros((16, 3), np.uint8)
    with pytest.raises(traitlets.TraitError, match=r"\[0, 255\]"):
        canvas.fill_rgba = np.full((16, 4), 256)


def test_arrays_are_read_only_so_state_is_replaced_not_mutated(canvas):
    with pytest.raises(ValueError, match="read-only"):
        canvas.fill_rgba[0] = 1


def test_chip_cells_tile_an_overlapping_grid_without_overlap():
    grid = ChipGrid(100, 90, 32, 12)  # stride < size, plus shifted edge chips
    cells = chip_cells(grid.boxes)
    cover = np.zeros((100, 90), int)
    for y0, x0, y1, x1 in cells:
        cover[y0:y1, x0:x1] += 1
    assert np.all(cover == 1)
    b = grid.boxes
    assert np.all((cells[:, :2] >= b[:, :2]) & (cells[:, 2:] <= b[:, 2:]))


def test_chip_cells_follow_the_nearest_chip_centre():
    boxes = [[0, 0, 64, 64], [0, 32, 64, 96], [0, 64, 64, 128]]
    assert chip_cells(boxes)[:, [1, 3]].tolist() == [[0, 48], [48, 80], [80, 128]]
    assert chip_cells(np.zeros((0, 4))).shape == (0, 4)


# ---- binary serialisation -------------------------------------------------------------------


def test_arrays_are_sent_as_binary_buffers(canvas):
    state = canvas.get_state()
    for name in ("image", "boxes", "cells", "fill_rgba", "outline_rgba", "uncertain"):
        assert isinstance(state[name]["buffer"], memoryview), name
    assert state["boxes"]["shape"] == [16, 4] and state["boxes"]["dtype"] == "<i4"
    assert state["boxes"]["buffer"].nbytes == 16 * 4 * 4
    assert np.array_equal(array_from_json(state["boxes"]), canvas.boxes)


@pytest.mark.parametrize("arr", [np.zeros((0, 4), np.int32), np.arange(6, dtype=">i4"),
                                 np.ones((2, 3), np.uint8)])
def test_array_json_round_trip(arr):
    back = array_from_json(array_to_json(arr))
    assert np.array_equal(back, arr) and back.shape == arr.shape
    assert array_to_json(None) is None and array_from_json(None) is None


# ---- update_chips ---------------------------------------------------------------------------


def test_update_chips_replaces_only_the_given_rows(canvas):
    before = canvas.fill_rgba
    idx = canvas.update_chips([2, 5], fill=ORANGE, uncertain=True)
    assert idx.tolist() == [2, 5]
    assert canvas.fill_rgba is not before and not before.any()  # replaced, not mutated
    assert canvas.fill_rgba[[2, 5]].tolist() == [list(ORANGE)] * 2
    assert np.flatnonzero(canvas.fill_rgba[:, 3]).tolist() == [2, 5]
    assert np.flatnonzero(canvas.uncertain).tolist() == [2, 5]
    assert not canvas.outline_rgba.any()


def test_update_chips_accepts_one_row_per_chip_and_clears_with_alpha_zero(canvas):
    colours = np.array([[1, 2, 3, 255], [4, 5, 6, 255]])
    canvas.update_chips(np.array([7, 0]), outline=colours)
    assert canvas.outline_rgba[7].tolist() == [1, 2, 3, 255]
    assert canvas.outline_rgba[0].tolist() == [4, 5, 6, 255]
    canvas.update_chips(7, outline=(0, 0, 0, 0))
    assert np.flatnonzero(canvas.outline_rgba[:, 3]).tolist() == [0]


def test_update_chips_sends_one_message_and_notifies_once_per_trait(canvas, monkeypatch):
    sent = []  # copies: ipywidgets clears the set it passes once sent
    monkeypatch.setattr(canvas, "send_state", lambda key=None: sent.append(set(key or ())))
    observer = Mock()
    canvas.observe(observer, names=["fill_rgba", "outline_rgba", "uncertain"])
    canvas.update_chips([1, 3], fill=ORANGE, outline=ORANGE)
    assert sent == [{"fill_rgba", "outline_rgba"}]
    assert [c.args[0]["name"] for c in observer.call_args_list] == ["fill_rgba", "outline_rgba"]


def test_assigning_an_equal_array_does_not_notify(canvas):
    observer = Mock()
    canvas.observe(observer, names="fill_rgba")
    canvas.fill_rgba = canvas.fill_rgba.copy()
    observer.assert_not_called()


def test_update_chips_validates_indices_and_values(canvas):
    with pytest.raises(IndexError):
        canvas.update_chips([16], fill=ORANGE)
    with pytest.raises(IndexError):
        canvas.update_chips([-1], fill=ORANGE)
    with pytest.raises(ValueError, match="255"):
        canvas.update_chips([0], fill=(300, 0, 0, 255))


# ---- events ---------------------------------------------------------------------------------


def test_click_drag_release_and_hover_callbacks(canvas):
    click, drag, release, hover = Mock(), Mock(), Mock(), Mock()
    canvas.on_click(click)
    canvas.on_drag(drag)
    canvas.on_release(release)
    canvas.on_hover(hover)

    canvas.handle_mouse_move(1.5, 2.5)
    canvas.handle_mouse_down(10.25, 20.5, button=2, shift=True)
    canvas.handle_mouse_move(11.0, 21.0, ctrl=True)
    canvas.handle_mouse_move(12.0, 22.0)
    canvas.handle_mouse_up(12.0, 22.0, button=2)
    canvas.handle_mouse_move(13.0, 23.0)

    click.assert_called_once_with(10.25, 20.5, 2, Modifiers(shift=True, ctrl=False))
    assert drag.call_args_list == [call(11.0, 21.0, 2, Modifiers(False, True)),
                                   call(12.0, 22.0, 2, Modifiers())]
    release.assert_called_once_with(12.0, 22.0, 2, Modifiers())
    assert hover.call_args_list == [call(1.5, 2.5), call(13.0, 23.0)]


def test_key_callback_and_remove(canvas):
    key = Mock()
    canvas.on_key(key)
    canvas.handle_key("z", ctrl=True, shift=True)
    key.assert_called_once_with("z", Modifiers(shift=True, ctrl=True))
    canvas.on_key(key, remove=True)
    canvas.handle_key("1")
    key.assert_called_once()


def test_frontend_messages_are_routed_to_the_handlers(canvas, monkeypatch):
    assert set(ChipCanvas._MSG_ROUTES) == {"mouse_down", "mouse_move", "mouse_up", "key"}
    handlers = {}
    for event, (method, _) in ChipCanvas._MSG_ROUTES.items():
        handlers[event] = Mock()
        monkeypatch.setattr(canvas, method, handlers[event])

    send = canvas._handle_frontend_msg  # what the comm calls: (widget, content, buffers)
    send(canvas, {"event": "mouse_down", "x": 3.0, "y": 4.0, "button": 0, "shift": False,
                  "ctrl": True, "unknown_field": 1}, [])
    send(canvas, {"event": "mouse_move", "x": 5.0, "y": 6.0, "shift": True, "ctrl": False}, [])
    send(canvas, {"event": "mouse_up", "x": 5.0, "y": 6.0, "button": 0}, [])
    send(canvas, {"event": "key", "key": "7", "ctrl": False, "shift": True}, [])
    send(canvas, {"event": "no_such_event"}, [])
    send(canvas, ["not", "a", "dict"], [])

    handlers["mouse_down"].assert_called_once_with(x=3.0, y=4.0, button=0, shift=False, ctrl=True)
    handlers["mouse_move"].assert_called_once_with(x=5.0, y=6.0, shift=True, ctrl=False)
    handlers["mouse_up"].assert_called_once_with(x=5.0, y=6.0, button=0)
    handlers["key"].assert_called_once_with(key="7", ctrl=False, shift=True)


def test_a_click_round_trip_in_python_colours_the_clicked_chip(canvas):
    # The app pattern: image coordinates -> chip -> update_chips.
    canvas.on_click(lambda x, y, b, m: canvas.update_chips([int(y) // 16 * 4 + int(x) // 16],
                                                           fill=ORANGE))
    canvas._handle_frontend_msg(canvas, {"event": "mouse_down", "x": 40.7, "y": 17.2,
                                         "button": 0, "shift": False, "ctrl": False}, [])
    assert np.flatnonzero(canvas.fill_rgba[:, 3]).tolist() == [1 * 4 + 2]


def test_synced_traits_and_front_end_files():
    w = ChipCanvas()
    for name in ("image", "boxes", "cells", "fill_rgba", "outline_rgba", "uncertain",
                 "show_grid", "show_fill", "show_outline", "show_uncertain", "fill_opacity",
                 "zoom", "pan", "view_width", "view_height", "mode", "cursor_chip"):
        assert w.trait_metadata(name, "sync"), name
    assert "export default" in w._esm
    assert not re.search(r"^\s*import\b|https?://", w._esm, re.MULTILINE)  # offline: no CDN
    assert ".scc-root" in w._css


def test_widgets_package_imports_lazily():
    code = ("import sys, stem_fsl_widgets.widgets as w; "
            "assert 'anywidget' not in sys.modules and 'ipywidgets' not in sys.modules; "
            "w.ChipCanvas; assert 'anywidget' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
