"""The toolkit-free view-model: overlay arrays, texts, actions and announcements (no widgets)."""

import json
import subprocess
import sys
import zipfile
from io import BytesIO
from unittest import mock

import numpy as np
import pytest

import stem_fsl_widgets as sfw
from stem_fsl_widgets.errors import GridError
from stem_fsl_widgets.measure import measure_labels
from stem_fsl_widgets.viewmodel import (
    AppModel,
    changed_rows,
    chip_overlay,
    describe_chip,
    error_message,
    guard,
    rgba,
)
from stem_fsl_widgets.viewmodel.spectra import LOG_FLOOR, marker_levels, y_limits

ORANGE, BLUE = "#E69F00", "#56B4E9"


@pytest.fixture
def session(two_phase):
    img, eds, energy, _ = two_phase
    s = sfw.Session(sfw.Dataset(img, eds=eds, energy_axis=energy, eds_binning=4, pixel_size=0.5,
                                pixel_unit="nm", name="two phase"), chip_size=16)
    s.add_class("fine", ORANGE)
    s.add_class("coarse", BLUE)
    return s


@pytest.fixture
def model(session):
    m = AppModel(session)
    yield m
    m.close()


def centre(model, chip):
    y0, x0, y1, x1 = model.session.grid.box(chip)
    return (x0 + x1) / 2, (y0 + y1) / 2


def label_two(model):
    model.click(*centre(model, 0))       # top-left: fine lattice
    model.select_class("coarse")
    model.click(*centre(model, 7))       # top-right: coarse lattice
    return model.session.result


# ---------------------------------------------------------------- pure drawing functions
def test_rgba_parses_hex_and_css_names():
    assert rgba("#56B4E9") == (86, 180, 233, 255)
    assert rgba("fff", 10) == (255, 255, 255, 10)
    assert rgba("red") == (255, 0, 0, 255)
    with pytest.raises(ValueError, match="colour"):
        rgba("not a colour")


def test_overlay_matches_result_and_marks_suggestions_apart_from_supports(model):
    r = label_two(model)
    model.set_threshold(0.001)
    r = model.session.result
    ov = chip_overlay(model.session.n_chips, model.session.classes, model.session.supports, r,
                      suggested=[0, 5])
    lut = np.array([rgba(ORANGE), rgba(BLUE)], np.uint8)
    np.testing.assert_array_equal(ov.fill, lut[r.labels])
    np.testing.assert_array_equal(ov.uncertain, r.uncertain.astype(np.uint8))
    assert ov.outline[0].tolist() == list(rgba(ORANGE)) and ov.outline[7].tolist() == list(rgba(BLUE))
    assert ov.outline[3, 3] == 0
    # A suggestion is its own flag, never an outline; a support is never also "suggested".
    assert ov.suggested.tolist().count(1) == 1 and ov.suggested[5] == 1 and ov.suggested[0] == 0
    assert ov.outline[5, 3] == 0


def test_overlay_uses_current_colours_and_changed_rows_is_minimal(model):
    label_two(model)
    before = model.overlay()
    model.set_colour("fine", "#009E73")
    after = model.overlay()
    rows = changed_rows(before, after)
    r = model.session.result
    np.testing.assert_array_equal(rows, np.flatnonzero(r.labels == 0))
    assert changed_rows(after, model.overlay()).size == 0


def test_describe_chip_and_error_texts(model):
    text = describe_chip(5, model.session.grid, {5: "oxide"}, None)
    assert text == "chip 5 (row 0, col 5) · labelled oxide"
    label_two(model)
    model.hover(*centre(model, 3))
    text = model.hover_text()
    assert text.startswith("chip 3 (row 0, col 3) · predicted ") and "entropy" in text
    assert error_message(GridError("Chip size 0 is too small.")) == "Chip size 0 is too small."
    odd = error_message(KeyError("x"))
    assert "unexpected" in odd and "KeyError" not in odd and "labels are kept" in odd
    seen = []
    with guard(seen.append, "do it"):
        raise RuntimeError("boom")
    assert seen == ["Could not do it: Something unexpected went wrong (boom). Your labels are kept; "
                    "if it happens again, please report it."]


def test_marker_levels_and_log_limits_are_finite():
    assert marker_levels([1.0, 1.1, 1.2, 5.0], span=10.0).tolist() == [0.9, 0.75, 0.6, 0.9]
    lo, hi = y_limits([np.array([0.0, 0.0])], log=True)
    assert lo == LOG_FLOOR and np.isfinite(hi) and hi > lo
    assert y_limits([np.array([np.nan, 10.0])], log=False) == (0.0, 10.5)


# ---------------------------------------------------------------- actions and announcements
def test_a_fresh_session_gets_classes_and_demo_names():
    img = np.random.default_rng(0).normal(size=(64, 64))
    m = AppModel(sfw.Session(img, chip_size=16))
    assert list(m.session.classes) == ["class 1", "class 2"] and m.active_class == "class 1"
    ds = sfw.datasets.demo(size=64)
    assert list(AppModel(sfw.Session(ds, chip_size=16)).session.classes) == ds.truth_classes


def test_click_toggle_remove_and_keys(model):
    watcher = mock.Mock()
    model.watch(watcher)
    assert model.click(*centre(model, 9)) == 9
    assert model.session.supports == {9: "fine"}
    topics = watcher.call_args_list[-1].args[0]
    assert {"overlay", "classes", "status"} <= topics and "grid" not in topics
    model.click(*centre(model, 9))  # a second click on a support of the active class removes it
    assert model.session.supports == {}
    model.click(*centre(model, 9))
    model.key("2")
    assert model.active_class == "coarse"
    model.click(*centre(model, 9), remove=True)  # right button / Shift
    assert model.session.supports == {}
    model.key("z", ctrl=True)
    assert model.session.supports == {9: "fine"}
    model.key("Z", ctrl=True, shift=True)
    assert model.session.supports == {}
    assert model.click(-5.0, 3.0) is None and model.click(np.nan, 3.0) is None


def test_drag_paints_one_undo_step_and_previews_the_stroke(model):
    model.press(*centre(model, 8))
    assert model.drag(*centre(model, 9)) == 9
    assert model.drag(*centre(model, 9)) is None  # same chip: nothing new
    model.drag(*centre(model, 10))
    preview = model.overlay()
    assert preview.outline[10].tolist() == list(rgba(ORANGE))  # drawn before the session changes
    assert model.session.supports == {8: "fine"}
    model.release()
    assert model.session.supports == {8: "fine", 9: "fine", 10: "fine"}
    model.undo()
    assert model.session.supports == {}  # the whole stroke is one step


def test_errors_become_messages_and_keep_labels(model):
    label_two(model)
    before = dict(model.session.supports)
    model.rename_class("fine", "coarse")
    assert model.message.kind == "error" and "Cannot rename" in model.message.text
    assert model.apply_grid(chip_size=1000) is False and "between 4 and 128" in model.message.text
    model.set_contrast(50, 10)
    assert "contrast" in model.message.text
    with mock.patch.object(model.session, "classify", side_effect=RuntimeError("engine down")):
        model.click(*centre(model, 20))
    assert "engine down" in model.message.text and "Traceback" not in model.message.text
    assert model.session.supports == before
    model.click(*centre(model, 21))
    assert model.message.text == ""  # a successful action clears the last error


def test_add_class_needs_a_name_and_becomes_active(model):
    assert model.add_class("  ") is None and "Type a name" in model.message.text
    assert model.add_class("oxide") == "oxide" and model.active_class == "oxide"
    model.remove_class("oxide")
    assert model.active_class in model.session.classes
    assert "Undo brings them back" in model.message.text


def test_settings_eds_weight_control_and_suggestions(model):
    assert model.eds_weight_control()[1] is True  # auto, unresolved before two classes
    label_two(model)
    value, auto, note = model.eds_weight_control()
    assert auto and note.startswith("auto: ") and value == round(model.session.result.eds_weight, 2)
    model.set_eds_weight(0.3)
    assert model.session.settings.eds_weight == 0.3
    assert model.eds_weight_control() == (0.3, False, "set: 0.30")
    model.set_eds_weight(auto=True)
    assert model.session.settings.eds_weight == "auto"
    chips = model.suggest(3)
    assert len(chips) == 3 and set(chips).isdisjoint(model.session.supports)
    assert "Suggested next: chips" in model.status()
    model.click(*centre(model, chips[0]))  # labelled: it drops out of the suggestions
    assert chips[0] not in model.suggested
    model.apply_grid(chip_size=32)  # a new grid: suggestions for old chip numbers are gone
    assert model.suggested == () and "Suggested" not in model.status()
    assert model.session.n_chips == 16 and model.session.settings.chip_size == 32


def test_spectrum_panel_log_axis_markers_and_no_blank_plot(model):
    p = model.spectrum_panel()
    assert p.chip == -1 and p.chip_label == "all chips (mean)" and p.chip_counts is not None
    label_two(model)
    model.hover(*centre(model, 3))
    p = model.spectrum_panel()
    assert p.chip == 3 and p.class_names == ["fine", "coarse"]
    spectra = model.session.chip_spectra()
    np.testing.assert_allclose(p.chip_counts, spectra[3])
    model.set_log_y(True)
    p = model.spectrum_panel()
    assert p.chip_counts.min() >= LOG_FLOOR and np.isfinite(p.y_range).all() and p.y_range[0] > 0
    assert model.set_elements(["Cu"])
    p = model.spectrum_panel()
    assert [m[0] for m in p.markers] == ["Cu La"]  # 0.93 keV; Cu Ka (8.05) is past 6.4 keV
    assert "also used to classify" in model.message.text
    assert not model.set_elements(["Xx"]) and model.session.settings.elements == ["Cu"]


def test_empty_class_has_no_mean_line(model):
    label_two(model)
    model.add_class("unused")
    p = model.spectrum_panel()
    assert p.class_names == ["fine", "coarse"] and p.class_means.shape[0] == 2


def test_measurements_and_downloads(model):
    assert model.download("chips.csv") is None and "Nothing to download yet" in model.message.text
    label_two(model)
    meas = model.measurements()  # on the click path: from the chip map, no pixel refinement
    assert meas.area_unit == "nm²" and [c.name for c in meas.classes] == ["fine", "coarse"]
    r = model.session.result
    assert not r.pixel_maps_ready and any("chip map" in n for n in meas.notes)
    assert meas["fine"].pixels == int((r.chip_label_map == 0).sum())
    # Measured on the chip map's cells, it is the measurement of the chip map's pixels.
    full = measure_labels(r.chip_label_map, ["fine", "coarse"], pixel_size=0.5, unit="nm")
    assert meas.rows() == full.rows() and meas.particle_rows() == full.particle_rows()
    assert model.refine() and r.pixel_maps_ready  # the user's request (or a background job)
    meas = model.measurements()
    lab = r.label_map
    assert meas["fine"].pixels == int((lab == 0).sum()) and not any("chip map" in n for n in meas.notes)
    np.testing.assert_allclose(meas["fine"].area, (lab == 0).sum() * 0.25)
    d = model.download("measurements.csv")
    assert d.filename == "two_phase_measurements.csv" and d.mime == "text/csv"
    assert d.data.decode().splitlines()[0].startswith("class,pixels,area")
    z = model.download("all.zip")
    names = zipfile.ZipFile(BytesIO(z.data)).namelist()
    assert {"two_phase_labels.png", "two_phase_labels.tif", "two_phase_chips.csv",
            "two_phase_session.json"} <= set(names)
    state = json.loads(zipfile.ZipFile(BytesIO(z.data)).read("two_phase_session.json"))
    assert {s["chip"] for s in state["supports"]} == {0, 7}


def test_layers_contrast_and_pixel_map(model):
    watcher = mock.Mock()
    model.watch(watcher)
    model.set_layers(uncertainty=False, segmentation_opacity=0.2)
    assert watcher.call_args.args[0] == {"layers"}
    with pytest.raises(sfw.errors.InputError):
        model.set_layers(supports_opacity=2)
    assert model.segmentation_rgba() is None
    label_two(model)
    rgba_map = model.segmentation_rgba()  # the chip map until the pixel map is asked for
    assert rgba_map.shape == (128, 128, 4)
    r = model.session.result
    assert (rgba_map[r.chip_label_map == 0][:, :3] == rgba(ORANGE)[:3]).all()
    model.set_layers(pixels=True)  # asking for the pixel layer computes the pixel map
    assert r.pixel_maps_ready
    rgba_map = model.segmentation_rgba()
    assert (rgba_map[r.label_map == 0][:, :3] == rgba(ORANGE)[:3]).all()
    model.set_contrast(10, 90)
    img = model.display_image()
    assert img.dtype == np.uint8 and img.min() == 0 and img.max() == 255


def test_autosave_warning_follows_the_session(model, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    model.session.autosave = blocker / "sub" / "auto.json"  # a folder that cannot exist
    model.click(*centre(model, 3))
    assert model.session.supports == {3: "fine"}  # the label stands
    assert model.autosave_warning and "Autosave" in model.autosave_warning


def test_session_typed_events(session):
    events = []
    session.on_event(events.append)
    session.label(3, "fine")
    assert events[-1].kinds >= {"supports"}
    session.label(5, "coarse")
    assert {"supports", "result"} <= events[-1].kinds and "grid" not in events[-1].kinds
    session.configure(chip_size=32)
    assert {"grid", "settings", "supports", "result"} <= events[-1].kinds
    session.set_colour("fine", "#009E73")
    assert events[-1].kinds == {"classes"}
    assert any(e.kinds == {"progress"} and e.what for e in events)  # encoding reported progress


def test_viewmodel_imports_no_widget_toolkit():
    code = ("import sys, stem_fsl_widgets.viewmodel as vm; "
            "bad = [m for m in ('ipywidgets', 'panel', 'bokeh', 'bqplot', 'anywidget') if m in sys.modules];"
            "print(bad); sys.exit(bool(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_pixel_map_follows_each_click_in_the_background_while_the_pixel_layer_is_on():
    import threading

    from stem_fsl_widgets.viewmodel.model import AppModel

    img = np.concatenate([np.zeros((64, 32)), np.ones((64, 32))], 1)
    img += np.random.default_rng(0).normal(0, 0.1, img.shape)
    m = AppModel(sfw.Session(img, chip_size=16))
    ran = threading.Event()
    queued = []
    m.run_on_ui = lambda fn: (queued.append(fn), ran.set())  # the UI loop, driven by hand
    topics = []
    m.watch(topics.append)
    m.set_layers(pixels=True)
    m.press(4.0, 4.0)
    m.release()
    assert not m.refine_in_background()  # one class: no result yet, nothing to refine
    m.select_class("class 2")
    m.press(60.0, 4.0)
    m.release()
    assert m.session.result is not None
    assert ran.wait(60)  # the pixel map was computed off the click
    queued.pop()()  # back on the UI thread
    assert m.pixels_ready
    assert any("overlay" in t for t in topics[-1:])
    np.testing.assert_array_equal(m.label_map(), m.session.result.label_map)
