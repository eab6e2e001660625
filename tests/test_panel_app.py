"""The Panel app driven from Python: taps, class panel, settings, exports, error messages."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import numpy as np
import param
import pytest

pn = pytest.importorskip("panel")

import stem_fsl_widgets as sfw  # noqa: E402
from stem_fsl_widgets.apps import panel_app  # noqa: E402
from stem_fsl_widgets.apps.panel_app import (  # noqa: E402
    ALPHA_PREDICTED,
    ALPHA_SUPPORT,
    NO_HATCH,
    UNCERTAIN_HATCH,
    PanelApp,
    chip_columns,
    class_mean_spectra,
    create_app,
    display_image,
)

CHIP = 16


@pytest.fixture
def app(two_phase):
    """An app on the two-phase scene (image + EDS), 16-px chips: an 8×8 grid."""
    img, eds, energy, _ = two_phase
    ds = sfw.Dataset(img, eds=eds, energy_axis=energy, eds_binning=4, name="two phase")
    a = PanelApp(sfw.Session(ds, chip_size=CHIP))
    yield a
    a.close()


def _centre(app: PanelApp, chip: int) -> tuple[float, float]:
    y0, x0, y1, x1 = app.session.grid.box(chip)
    return (x0 + x1) / 2.0, (y0 + y1) / 2.0


def _label_two(app: PanelApp) -> tuple[int, int]:
    """Click chip 9 (left half) as class 1, chip 14 (right half) as class 2."""
    assert app.click(*_centre(app, 9)) == 9
    app.class_select.value = "class 2"
    assert app.click(*_centre(app, 14)) == 14
    return 9, 14


def _set_slider(slider, value: float) -> None:
    # What the browser does on releasing a slider handle.
    with param.edit_constant(slider):
        slider.param.update(value=value, value_throttled=value)


def _assert_overlay_matches(app: PanelApp) -> None:
    res = app.session.result
    data = app.chip_source.data
    colours = [app.session.classes[c] for c in res.classes]
    assert data["fill_color"] == [colours[k] for k in res.labels]
    np.testing.assert_array_equal(
        data["fill_alpha"], np.where(res.is_support, ALPHA_SUPPORT, ALPHA_PREDICTED))
    assert data["hatch_pattern"] == [UNCERTAIN_HATCH if u else NO_HATCH for u in res.uncertain]
    np.testing.assert_allclose(data["entropy"], res.entropy)
    assert len(app.uncertain_source.data["left"]) == int(res.uncertain.sum())


def test_clicks_label_chips_and_overlay_follows_result(app, two_phase):
    _, _, _, truth = two_phase
    assert app.session.classes.keys() == {"class 1", "class 2"}  # a fresh session gets two
    assert app.session.result is None
    app.click(*_centre(app, 9))
    # One class so far: the support is drawn in its colour, nothing else is filled.
    data = app.chip_source.data
    assert data["fill_color"][9] == app.session.classes["class 1"]
    assert data["fill_alpha"][9] == ALPHA_SUPPORT
    assert np.count_nonzero(data["fill_alpha"]) == 1
    app.class_select.value = "class 2"
    assert app.active_class == "class 2"
    app.click(*_centre(app, 14))
    assert app.session.supports == {9: "class 1", 14: "class 2"}
    res = app.session.result
    _assert_overlay_matches(app)
    # The scene is split down the middle and the app shows the engine's answer for it.
    chip_truth = truth[app.session.grid.boxes[:, 0], app.session.grid.boxes[:, 1]]
    assert (res.labels == chip_truth).mean() >= 0.9
    # Supports: outlined in their class colour.
    assert app.support_source.data["colour"] == ["#E69F00", "#56B4E9"]
    np.testing.assert_array_equal(app.support_source.data["left"], [16, 96])
    # Fractions: bars and text carry the result's numbers.
    assert app.fraction_source.data["cls"] == ["class 1", "class 2"]
    np.testing.assert_allclose(app.fraction_source.data["fraction"],
                               [res.fractions["class 1"], res.fractions["class 2"]])
    assert f"{100 * res.fractions['class 1']:.1f} %" in app.fractions_text.object
    assert f"{100 * res.uncertain_fraction:.1f} %" in app.fractions_text.object
    assert "2 labelled chips in 2 classes" in app.status.object


def test_tap_event_on_the_figure_reaches_the_session(app):
    from bokeh.events import Tap

    app.figure._trigger_event(Tap(app.figure, x=20.0, y=40.0))  # image x=20, y=40 → row 2, col 1
    assert app.session.supports == {17: "class 1"}
    app.figure._trigger_event(Tap(app.figure, x=-5.0, y=40.0))  # outside the image: ignored
    assert app.session.supports == {17: "class 1"}
    assert not app.message.visible


def test_second_click_removes_and_undo_redo_buttons(app):
    _label_two(app)
    app.click(*_centre(app, 14))  # clicking a support of the active class removes it
    assert app.session.supports == {9: "class 1"}
    assert app.session.result is None
    assert np.count_nonzero(app.chip_source.data["fill_alpha"]) == 1
    assert app.fractions_text.object.startswith("No segmentation yet")
    app.undo_button.clicks += 1
    assert app.session.supports == {9: "class 1", 14: "class 2"}
    _assert_overlay_matches(app)
    app.redo_button.clicks += 1
    assert app.session.supports == {9: "class 1"}
    assert app.redo_button.disabled and not app.undo_button.disabled


def test_only_changed_chips_are_sent(app):
    from bokeh.document import Document
    from bokeh.document.events import ColumnDataChangedEvent, ColumnsPatchedEvent

    _label_two(app)
    doc = Document()
    doc.add_root(app.figure)
    events = []
    doc.on_change(lambda e: events.append(e))
    app.click(*_centre(app, 13))  # another class-2 support on the same side
    sent = [e for e in events if getattr(e, "model", None) is app.chip_source]
    assert sent and all(isinstance(e, ColumnsPatchedEvent) for e in sent)
    assert not any(isinstance(e, ColumnDataChangedEvent) and e.model is app.chip_source
                   for e in events)
    # Colours and hatches go cell by cell, for the chips whose state changed.
    cells = {i for e in sent for k in ("fill_color", "fill_alpha", "hatch_pattern")
             for i, _ in e.patches.get(k, [])}
    assert 13 in cells and len(cells) < app.session.n_chips // 4
    assert all(isinstance(i, int) for i in cells)
    _assert_overlay_matches(app)
    n_before = len(events)
    app.chip_size.value = 32  # a new grid: the whole table is replaced
    assert any(isinstance(e, ColumnDataChangedEvent) and e.model is app.chip_source
               for e in events[n_before:])
    _assert_overlay_matches(app)


def test_class_panel_add_rename_colour_delete(app):
    _label_two(app)
    app.class_name.value = "oxide"
    app.add_button.clicks += 1
    assert list(app.session.classes) == ["class 1", "class 2", "oxide"]
    assert app.active_class == "oxide" and app.class_select.value == "oxide"
    assert "oxide (0 labelled)" in app.class_select.options
    app.click(*_centre(app, 63))
    assert app.session.supports[63] == "oxide"
    app.class_name.value = "scale"
    app.rename_button.clicks += 1
    assert app.session.supports[63] == "scale" and app.active_class == "scale"
    assert app.session.result.classes == ["class 1", "class 2", "scale"]
    app.colour_picker.value = "#000000"
    assert app.session.classes["scale"] == "#000000"
    assert app.chip_source.data["fill_color"][63] == "#000000"
    assert app.support_source.data["colour"][-1] == "#000000"
    app.delete_button.clicks += 1
    assert "scale" not in app.session.classes and 63 not in app.session.supports
    assert app.active_class == "class 1"
    _assert_overlay_matches(app)
    app.undo()
    assert app.session.supports[63] == "scale"


def test_errors_show_a_message_and_keep_labels(app, tmp_path, monkeypatch):
    app.export_maps()  # nothing to export yet
    assert app.message.visible and app.message.alert_type == "danger"
    assert "two classes" in app.message.object
    _label_two(app)
    assert not app.message.visible  # the next successful action clears it
    app.class_select.value = "class 1"
    app.class_name.value = "class 2"
    app.rename_button.clicks += 1
    assert "Cannot rename 'class 1' to 'class 2'" in app.message.object
    assert app.session.supports == {9: "class 1", 14: "class 2"}
    assert app.active_class == "class 1"
    # An output path whose folder is a file: an OSError, said in words.
    (tmp_path / "file").write_text("x")
    app.export_prefix.value = str(tmp_path / "file" / "out")
    app.export_csv()
    assert app.message.visible and "Could not write the chip table" in app.message.object
    # A bug deep inside still gives a message, not a traceback, and keeps the labels.
    monkeypatch.setattr(app.session, "toggle", lambda *a: 1 / 0)
    app.click(*_centre(app, 0))
    assert "Unexpected error" in app.message.object and "ZeroDivisionError" in app.message.object
    assert "Traceback" not in app.message.object
    assert app.session.supports == {9: "class 1", 14: "class 2"}


def test_settings_widgets_configure_the_session(app):
    _label_two(app)
    res = app.session.result
    _set_slider(app.threshold, 0.05)
    assert app.session.settings.threshold == 0.05
    assert app.session.result.uncertain.sum() >= res.uncertain.sum()
    assert "(entropy > 0.05)" in app.fractions_text.object
    _assert_overlay_matches(app)
    # EDS weight: "auto" shows the weight in use; unticking it uses the slider's value.
    assert app.eds_auto.value and app.eds_weight.disabled
    assert app.eds_weight.value == pytest.approx(app.session.result.eds_weight, abs=0.005)
    app.eds_auto.value = False
    assert app.session.settings.eds_weight == pytest.approx(app.eds_weight.value)
    assert not app.eds_weight.disabled
    _set_slider(app.eds_weight, 0.0)
    assert app.session.settings.eds_weight == 0.0 and app.session.result.eds_weight == 0.0
    app.fusion.value = "late"
    assert app.session.settings.fusion == "late"
    app.chip_size.value = 32
    assert app.session.grid.n_chips == 16 and len(app.chip_source.data["chip"]) == 16
    assert len(app.session.supports) == 2  # supports move with the grid
    _assert_overlay_matches(app)
    app.undo()  # back to 16-px chips: the widget follows the session
    assert app.chip_size.value == 16 and len(app.chip_source.data["chip"]) == 64
    app.undo(); app.undo()  # noqa: E702 - fusion, then the slider weight
    assert app.fusion.value == "early" and app.session.settings.eds_weight == pytest.approx(
        app.eds_weight.value)


def test_spectrum_view_shows_chip_class_means_and_lines(app):
    _label_two(app)
    spectra = app.session.chip_spectra()
    assert app.selected_chip == 14
    np.testing.assert_allclose(app.spectrum_source.data["counts"], spectra[14])
    res = app.session.result
    src = app.class_spectra_source.data
    assert src["name"] == res.classes and src["colour"] == ["#E69F00", "#56B4E9"]
    np.testing.assert_allclose(src["ys"][1], spectra[res.labels == 1].mean(0))
    assert "Chip 14 (labelled class 2)" in app.spectrum_figure.title.text
    app.elements.value = ["Al", "Ti"]
    assert app.session.settings.elements == ["Al", "Ti"]
    lines = dict(zip(app.line_source.data["name"], app.line_source.data["x"], strict=True))
    assert lines["Al_Ka"] == pytest.approx(1.4865, abs=1e-3)
    assert lines["Ti_Ka"] == pytest.approx(4.5109, abs=1e-3)
    assert max(lines.values()) <= app.session.dataset.energy_axis[-1]


def test_suggest_marks_the_most_uncertain_chips(app):
    assert app.suggest().size == 0 and "two classes" in app.message.object
    _label_two(app)
    app.suggest_button.clicks += 1
    chips = app.session.result.suggest(5)
    b = app.session.grid.boxes[chips]
    np.testing.assert_allclose(app.suggest_source.data["x"], (b[:, 1] + b[:, 3]) / 2)
    np.testing.assert_allclose(app.suggest_source.data["y"], (b[:, 0] + b[:, 2]) / 2)
    assert app.message.alert_type == "info" and str(chips[0]) in app.message.object
    app.click(*_centre(app, int(chips[0])))
    assert len(app.suggest_source.data["x"]) == 0  # stale marks disappear after a change


def test_exports_write_files(app, tmp_path):
    _label_two(app)
    app.export_prefix.value = str(tmp_path / "run" / "scan")
    app.maps_button.clicks += 1
    assert app.message.alert_type == "success"
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {
        "scan_labels.png", "scan_labels.tif", "scan_entropy.png", "scan_entropy.tif"}
    app.csv_button.clicks += 1
    rows = (tmp_path / "run" / "scan_chips.csv").read_text().splitlines()
    assert len(rows) == 1 + app.session.n_chips and rows[0].startswith("chip,row,col")
    app.save_button.clicks += 1
    saved = tmp_path / "run" / "scan_session.json"
    assert json.loads(saved.read_text())["supports"][0]["chip"] == 9
    assert (tmp_path / "run" / "scan_session.npz").exists()
    again = sfw.Session.load(saved, app.session.dataset)
    assert again.supports == app.session.supports


def test_image_only_dataset_and_layout():
    img = np.random.default_rng(3).normal(size=(48, 80))
    a = create_app(sfw.Dataset(img), chip_size=16)
    assert a.eds_weight.disabled and a.eds_auto.disabled and not a.elements.visible
    assert a.figure.x_range.end == 80 and a.figure.y_range.start == 48  # rows run down
    assert a.figure.frame_width == 600 and a.figure.frame_height == 360
    a.click(1.0, 1.0)
    a.active_class = "class 2"
    a.click(79.0, 47.0)
    assert a.session.supports == {0: "class 1", 14: "class 2"}
    _assert_overlay_matches(a)
    root = pn.panel(a).get_root()  # the whole page builds into Bokeh models
    assert a.figure in root.references()


def test_view_model_helpers():
    img = np.arange(5000 * 10, dtype=float).reshape(5000, 10)
    shown, low, high = display_image(img)
    assert shown.shape == (1667, 4) and shown.dtype == np.float32 and low < high
    assert display_image(np.ones((8, 8)))[2] == 2.0  # a flat image still gets a grey scale
    spectra = np.array([[1.0, 2.0], [3.0, 4.0], [10.0, 10.0]])
    means = class_mean_spectra(spectra, np.array([0, 0, 2]), 3)
    np.testing.assert_allclose(means[[0, 2]], [[2.0, 3.0], [10.0, 10.0]])
    assert np.isnan(means[1]).all()
    s = sfw.Session(np.random.default_rng(0).normal(size=(32, 32)), chip_size=16)
    cols = chip_columns(s)
    assert list(cols["left"]) == [0, 16, 0, 16] and list(cols["top"]) == [0, 0, 16, 16]
    assert not cols["fill_alpha"].any()
    assert panel_app.slug("demo: Ni / CoCu / Ni[011]") == "demo_Ni_CoCu_Ni_011"


def test_serve_answers_a_page_with_local_resources_only():
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ds = sfw.Dataset(np.random.default_rng(4).normal(size=(64, 64)), name="served")
    server = panel_app.serve(ds, port=port, threaded=True, chip_size=16)
    try:
        for _ in range(100):  # the thread needs a moment to listen
            try:
                html = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("the server never answered")
    finally:
        server.stop()
    assert "STEM few-shot segmentation" in html
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(not s.startswith(("http:", "https:", "//")) for s in sources), sources


def test_importing_apps_does_not_load_panel():
    code = ("import sys, stem_fsl_widgets.apps as a; "
            "assert 'panel' not in sys.modules and 'bokeh' not in sys.modules; "
            "assert 'PanelApp' in dir(a)")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_calibrated_image_gets_a_scale_bar():
    from stem_fsl_widgets.apps.panel_app import PanelApp
    from stem_fsl_widgets.scalebar import scale_bar

    ds = sfw.datasets.demo(size=128)
    app = PanelApp(sfw.Session(ds, chip_size=16))
    data = app.scale_bar.data_source.data
    assert data["right"][0] - data["left"][0] == pytest.approx(scale_bar(ds.pixel_size, "nm", 128)[0])
