"""The Panel app driven from Python: taps, drags, keys, class panel, settings, downloads, errors."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import zipfile
from io import BytesIO

import numpy as np
import param
import pytest

pn = pytest.importorskip("panel")

import stem_fsl_widgets as sfw  # noqa: E402
from stem_fsl_widgets.apps import panel_app  # noqa: E402
from stem_fsl_widgets.apps.panel_app import (  # noqa: E402
    NO_HATCH,
    UNCERTAIN_HATCH,
    PanelApp,
    PanelDashboard,
    create_app,
)
from stem_fsl_widgets.viewmodel import rgba  # noqa: E402

CHIP = 16


@pytest.fixture(autouse=True)
def _autosave_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SFW_AUTOSAVE_DIR", str(tmp_path / "autosave"))


@pytest.fixture
def app(two_phase):
    """An app on the two-phase scene (image + EDS), 16-px chips: an 8×8 grid."""
    img, eds, energy, _ = two_phase
    ds = sfw.Dataset(img, eds=eds, energy_axis=energy, eds_binning=4, name="two phase",
                     pixel_size=0.5, pixel_unit="nm")
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


def _hex(c):
    return "#{:02x}{:02x}{:02x}".format(*rgba(c)[:3])


def _assert_overlay_matches(app: PanelApp) -> None:
    """The quads carry exactly the model's overlay arrays."""
    ov = app.model.overlay()
    data = app.chip_source.data
    assert data["fill_color"] == ["#{:02x}{:02x}{:02x}".format(*r[:3]) for r in ov.fill]
    opacity = app.model.layers.segmentation_opacity
    np.testing.assert_allclose(data["fill_alpha"], ov.fill[:, 3] / 255 * opacity)
    assert data["hatch_pattern"] == [UNCERTAIN_HATCH if u else NO_HATCH for u in ov.uncertain]
    np.testing.assert_array_equal(data["suggested"], ov.suggested)
    assert data["line_color"] == ["#{:02x}{:02x}{:02x}".format(*r[:3]) for r in ov.outline]


def test_clicks_label_chips_and_overlay_follows_result(app, two_phase):
    _, _, _, truth = two_phase
    assert app.session.classes.keys() == {"class 1", "class 2"}  # a fresh session gets two
    app.click(*_centre(app, 9))
    data = app.chip_source.data
    assert data["line_color"][9] == _hex("#E69F00") and data["line_alpha"][9] == 1.0
    assert not np.any(data["fill_alpha"])  # one class so far: nothing predicted
    app.class_select.value = "class 2"
    assert app.active_class == "class 2"
    app.click(*_centre(app, 14))
    assert app.session.supports == {9: "class 1", 14: "class 2"}
    res = app.session.result
    _assert_overlay_matches(app)
    chip_truth = truth[app.session.grid.boxes[:, 0], app.session.grid.boxes[:, 1]]
    assert (res.labels == chip_truth).mean() >= 0.9
    assert app.fraction_source.data["cls"] == ["class 1", "class 2", "uncertain"]
    np.testing.assert_allclose(app.fraction_source.data["fraction"][:2],
                               [res.fractions["class 1"], res.fractions["class 2"]])
    assert f"{100 * res.fractions['class 1']:.1f} %" in app.fractions_text.object
    assert "2 labelled chips in 2 classes" in app.status.object
    assert sum(app.entropy_source.data["count"]) == app.session.n_chips


def test_tap_shift_tap_drag_and_mouse_move_reach_the_model(app):
    from bokeh.events import MouseMove, Pan, PanEnd, PanStart, Tap

    f = app.figure
    f._trigger_event(Tap(f, x=20.0, y=40.0))  # image x=20, y=40 → row 2, col 1
    assert app.session.supports == {17: "class 1"}
    f._trigger_event(Tap(f, x=-5.0, y=40.0))  # outside the image: ignored
    f._trigger_event(Tap(f, x=20.0, y=40.0, modifiers={"shift": True, "ctrl": False, "alt": False}))
    assert app.session.supports == {}
    # A drag paints every chip it crosses, as one undo step.
    f._trigger_event(PanStart(f, x=5.0, y=5.0))
    for x in (10.0, 21.0, 37.0, 40.0):
        f._trigger_event(Pan(f, x=x, y=5.0))
    assert app.chip_source.data["line_alpha"][2] == 1.0  # previewed before release
    f._trigger_event(PanEnd(f, x=40.0, y=5.0))
    assert app.session.supports == {0: "class 1", 1: "class 1", 2: "class 1"}
    app.undo_button.clicks += 1
    assert app.session.supports == {}
    # Erase mode: drags and taps remove.
    app.redo()
    app.mode.value = "erase"
    f._trigger_event(Tap(f, x=5.0, y=5.0))
    assert 0 not in app.session.supports
    app.mode.value = "pan"
    assert app.figure.toolbar.active_drag is app.pan_tool
    f._trigger_event(Tap(f, x=60.0, y=60.0))
    assert 27 not in app.session.supports  # panning never labels
    f._trigger_event(MouseMove(f, x=100.0, y=100.0))
    assert app.model.hovered_chip == 54 and "chip 54" in app.hover_text.object


def test_keys_pick_classes_undo_redo(app):
    app.keys._handle_msg({"key": "2", "ctrl": False, "shift": False})
    assert app.active_class == "class 2" and app.class_select.value == "class 2"
    app.click(*_centre(app, 3))
    app.keys._handle_msg({"key": "z", "ctrl": True, "shift": False})
    assert app.session.supports == {}
    app.keys._handle_msg({"key": "Z", "ctrl": True, "shift": True})
    assert app.session.supports == {3: "class 2"}


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
    cells = {i for e in sent for k in e.patches for i, _ in e.patches[k]}
    assert 13 in cells and len(cells) < app.session.n_chips // 4
    _assert_overlay_matches(app)
    n_before = len(events)
    app.chip_size.value = 32
    app.apply_grid.clicks += 1  # a new grid: the whole table is replaced
    assert any(isinstance(e, ColumnDataChangedEvent) and e.model is app.chip_source
               for e in events[n_before:])
    _assert_overlay_matches(app)


def test_class_panel_add_without_enter_rename_colour_delete(app):
    _label_two(app)
    app.class_name.value_input = "oxide"  # typed, Enter not pressed: the button still adds it
    app.add_button.clicks += 1
    assert list(app.session.classes) == ["class 1", "class 2", "oxide"]
    assert app.active_class == "oxide" and app.class_select.value == "oxide"
    assert "oxide (0 labelled)" in app.class_select.options
    assert app.class_name.value_input == ""
    app.click(*_centre(app, 63))
    assert app.session.supports[63] == "oxide"
    app.class_name.value_input = "scale"
    app.rename_button.clicks += 1
    assert app.session.supports[63] == "scale" and app.active_class == "scale"
    app.colour_picker.value = "#000000"
    assert app.session.classes["scale"] == "#000000"
    assert app.chip_source.data["line_color"][63] == "#000000"
    app.delete_button.clicks += 1
    assert "scale" not in app.session.classes and 63 not in app.session.supports
    assert app.active_class == "class 1"
    _assert_overlay_matches(app)
    app.undo()
    assert app.session.supports[63] == "scale"


def test_names_from_files_and_users_are_escaped(two_phase):
    img = two_phase[0]
    evil = "<img src=x onerror=alert(1)>"
    a = PanelApp(sfw.Session(sfw.Dataset(img, name=evil), chip_size=CHIP))
    a.model.add_class(evil + "b")
    a.click(*_centre(a, 0))
    a.class_select.value = "class 2"
    a.click(*_centre(a, 7))
    for pane in (a.title, a.status, a.legend, a.fractions_text, a.measurements, a.message):
        assert "<img" not in str(pane.object), pane
    assert "&lt;img" in a.title.object and "&lt;img" in a.legend.object
    a.close()


def test_errors_show_a_message_and_keep_labels(app, monkeypatch):
    app._download("chips.csv")  # nothing to download yet
    assert app.message.alert_type == "danger" and "two classes" in app.message.object
    height = app.message.height
    _label_two(app)
    assert app.message.object == "&nbsp;" and app.message.height == height  # never moves the figure
    app.class_select.value = "class 1"
    app.class_name.value_input = "class 2"
    app.rename_button.clicks += 1
    assert "Cannot rename" in app.message.object
    assert app.session.supports == {9: "class 1", 14: "class 2"}
    monkeypatch.setattr(app.session, "toggle", lambda *a: 1 / 0)
    app.click(*_centre(app, 0))
    assert "Something unexpected" in app.message.object and "Traceback" not in app.message.object
    assert app.session.supports == {9: "class 1", 14: "class 2"}


def test_settings_widgets_configure_the_session(app):
    _label_two(app)
    _set_slider(app.threshold, 0.05)
    assert app.session.settings.threshold == 0.05
    assert "(entropy &gt; 0.05)" in app.fractions_text.object
    assert app.threshold_span.location == 0.05
    _assert_overlay_matches(app)
    assert app.eds_auto.value and app.eds_weight.disabled
    assert app.eds_weight.value == pytest.approx(app.session.result.eds_weight, abs=0.005)
    app.eds_auto.value = False
    assert app.session.settings.eds_weight == pytest.approx(app.eds_weight.value)
    assert not app.eds_weight.disabled
    _set_slider(app.eds_weight, 0.0)
    assert app.session.settings.eds_weight == 0.0 and app.session.result.eds_weight == 0.0
    app.fusion.value = "late"
    app.metric.value = "cosine"
    assert (app.session.settings.fusion, app.session.settings.metric) == ("late", "cosine")
    app.chip_size.value = 32
    app.stride.value = 16
    app.apply_grid.clicks += 1
    assert app.session.n_chips == 49 and len(app.chip_source.data["chip"]) == 49
    app.undo()  # the widgets follow the session back
    assert app.chip_size.value == 16 and app.stride.value == 0 and len(app.chip_source.data["chip"]) == 64
    app.undo()
    assert app.metric.value == "sqeuclidean"


def test_threshold_slider_keeps_the_users_value_while_it_moves(app):
    _label_two(app)
    # Arrow keys: value and value_throttled arrive for 0.41 ... 0.44; redraws in between must
    # not write an older value back into the slider.
    for v in (0.41, 0.42, 0.43, 0.44):
        _set_slider(app.threshold, v)
    assert app.threshold.value == 0.44 and app.session.settings.threshold == 0.44
    app.undo()  # a change from elsewhere does move the slider
    assert app.threshold.value == 0.43


def test_spectrum_hover_log_axis_window_and_lines(app):
    from bokeh.events import SelectionGeometry

    assert app.spectrum_source.data["counts"] is not None and len(app.spectrum_source.data["counts"])
    _label_two(app)
    spectra = app.session.chip_spectra()
    np.testing.assert_allclose(app.spectrum_source.data["counts"], spectra[14])
    src = app.class_spectra_source.data
    assert src["name"] == ["class 1 (mean)", "class 2 (mean)"]
    assert "chip 14 (labelled class 2)" in app.spectrum_figure.title.text
    app.elements.value = ["Al", "Ti"]
    assert app.session.settings.elements == ["Al", "Ti"]
    lines = dict(zip(app.line_source.data["name"], app.line_source.data["x"], strict=True))
    assert lines["Al Ka"] == pytest.approx(1.4865, abs=1e-3)
    assert lines["Ti Ka"] == pytest.approx(4.5109, abs=1e-3)
    app.log_y.value = True
    log = app.spectrum_figures["log"]
    assert log.visible and not app.spectrum_figures["linear"].visible
    assert 0 < log.y_range.start < log.y_range.end < np.inf
    assert min(app.spectrum_source.data["counts"]) >= 0.1
    f = app.spectrum_figure
    f._trigger_event(SelectionGeometry(f, geometry={"type": "rect", "x0": 1.0, "x1": 3.0,
                                                    "y0": 0, "y1": 1}, final=True))
    assert app.session.settings.eds_window == [1.0, 3.0]
    assert (app.window_box.left, app.window_box.right) == (1.0, 3.0)


def test_suggestions_look_unlike_supports_and_clear_on_regrid(app):
    app.suggest()
    assert "two classes" in app.message.object
    _label_two(app)
    app.suggest_button.clicks += 1
    chips = app.session.result.suggest(5)
    assert np.flatnonzero(app.chip_source.data["suggested"]).tolist() == sorted(chips.tolist())
    assert all(app.chip_source.data["line_alpha"][c] == 0 for c in chips)
    assert "Suggested next: chips" in app.status.object
    app.model.apply_grid(chip_size=32)
    assert not np.any(app.chip_source.data["suggested"]) and "Suggested" not in app.status.object


def test_layers_opacity_and_pixel_map(app):
    _label_two(app)
    app.show_uncertain.value = False
    assert not any(r.visible for r in app.hatch_renderers)
    app.fill_opacity.value = 0.8
    _assert_overlay_matches(app)
    app.pixel_map.value = True
    assert app.pixel_renderer.visible and not app.fill_renderer.visible
    img = app.pixel_source.data["image"][0]
    assert img.shape == app.session.dataset.shape


def test_downloads_and_measurements(app):
    _label_two(app)
    meas = app.model.measurements()
    assert "nm²" in app.measurements.object and meas["class 1"].pixels > 0
    for row in meas.rows():
        assert f"<td>{row['particles']}</td>" in app.measurements.object
    data = app._download("all.zip").getvalue()
    names = set(zipfile.ZipFile(BytesIO(data)).namelist())
    assert {"two_phase_labels.png", "two_phase_measurements.csv", "two_phase_session.json"} <= names
    app.download_select.value = "chips.csv"
    assert app.download_button.filename == "two_phase_chips.csv"


def test_dashboard_uploads_names_clear_and_calibration(tmp_path):
    ds = sfw.datasets.demo(size=128)
    d = PanelDashboard()
    assert d.app is None and "Choose the demo data" in d.message.object
    d.image_input.param.update(filename="plain.npy", value=_npy(ds.image))
    assert d.app is not None and "plain.npy" in d.files.object
    assert d.calibration.visible  # no pixel size in a bare .npy
    d.pixel_size.value = 0.25
    d.pixel_button.clicks += 1
    assert d.app.session.dataset.pixel_size == 0.25 and not d.calibration.visible
    d.clear_button.clicks += 1
    assert d.app is None and "plain.npy" not in d.files.object
    d.demo_button.clicks += 1
    assert d.app is not None and list(d.app.session.classes) == ds.truth_classes


def _npy(arr) -> bytes:
    buf = BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


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


def test_serve_cli_takes_image_and_eds_with_help(tmp_path, monkeypatch):
    from stem_fsl_widgets import cli

    out = subprocess.run([sys.executable, "-m", "stem_fsl_widgets.cli", "serve", "-h"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "image" in out.stdout and "EDS spectrum-image" in out.stdout
    assert "--port" in out.stdout and "TCP port" in out.stdout
    served = {}
    monkeypatch.setattr(panel_app, "serve", lambda ds, **kw: served.update(ds=ds, **kw))
    np.save(tmp_path / "img.npy", np.random.default_rng(0).normal(size=(64, 64)))
    assert cli.main(["serve", str(tmp_path / "img.npy"), "--no-browser", "--port", "5999"]) == 0
    assert served["ds"].shape == (64, 64) and served["port"] == 5999 and served["show"] is False
    assert cli.main(["serve", str(tmp_path / "missing.tif"), "--no-browser"]) == 2


def test_importing_apps_does_not_load_panel():
    code = ("import sys, stem_fsl_widgets.apps as a; "
            "assert 'panel' not in sys.modules and 'bokeh' not in sys.modules; "
            "assert 'PanelApp' in dir(a)")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_calibrated_image_gets_a_scale_bar():
    from stem_fsl_widgets.scalebar import scale_bar

    ds = sfw.datasets.demo(size=128)
    app = PanelApp(sfw.Session(ds, chip_size=16))
    data = app.scale_bar.data_source.data
    assert data["right"][0] - data["left"][0] == pytest.approx(scale_bar(ds.pixel_size, "nm", 128)[0])
