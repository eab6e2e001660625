"""FewShotApp: composition, exports, autosave/restore, errors — driven through handlers."""

import csv
import json

import numpy as np
import pytest
import tifffile

import stem_fsl_widgets as sfw
from stem_fsl_widgets.widgets.app import default_autosave_path


@pytest.fixture
def dataset(two_phase):
    img, eds, energy, _ = two_phase
    return sfw.Dataset(img, eds=eds, energy_axis=energy, eds_binning=4, pixel_size=0.25,
                       pixel_unit="nm", name="two phase")


@pytest.fixture
def app(dataset):
    a = sfw.FewShotApp(sfw.Session(dataset, chip_size=16))
    yield a
    a.close()


def click(app, x, y, **kw):
    app.grid_view.canvas.handle_mouse_down(x, y, **kw)
    app.grid_view.canvas.handle_mouse_up(x, y, **kw)


def label_two(app):
    click(app, 5, 5)                                    # chip 0 → "class 1"
    app.grid_view.canvas.handle_key("2")
    click(app, 120, 5)                                  # chip 7 → "class 2"
    return app.session.result


def test_composition_and_no_run_button(app):
    assert isinstance(app, sfw.FewShotApp)
    for part in (app.grid_view, app.spectrum, app.classes, app.results, app.export, app.message):
        assert part is not None
    assert list(app.session.classes) == ["class 1", "class 2"]   # ready to click at once
    assert "two classes" in app.status.value
    click(app, 21, 5)
    assert "class 1: 1, class 2: 0" in app.status.value
    r = label_two(app)
    assert r is not None and "3 labelled chips in 2 classes" in app.status.value
    assert app.grid_view.model is app.results.model is app.classes.model is app.model  # one model
    descriptions = [getattr(w, "description", "") for w in _walk(app)]
    assert not any("run" in str(d).lower() for d in descriptions)


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def test_views_are_linked(app):
    label_two(app)
    # The class panel and the grid share the active class.
    app.classes.rows["class 1"].select.value = True
    assert app.grid_view.active_class == "class 1"
    app.grid_view.canvas.handle_key("2")
    assert app.classes.active == "class 2"
    # Hover → spectrum of that chip.
    app.grid_view.canvas.handle_mouse_move(40, 40)
    np.testing.assert_array_equal(app.spectrum.chip_line.y, app.session.chip_spectra()[18])
    # Suggest → marked on the grid (dashed, not a support's outline).
    app.results.suggest_button.click()
    chips = list(app.results.suggested)
    assert len(chips) == 5 and chips == app.session.suggest(5).tolist()
    assert (app.grid_view.canvas.suggested[chips] == 1).all()
    assert (app.grid_view.canvas.outline_rgba[chips, 3] == 0).all()
    # Undo from the grid → every view follows.
    app.grid_view.canvas.handle_key("z", ctrl=True)
    assert app.session.result is None and not app.spectrum.class_lines.visible
    assert app.classes.rows["class 2"].count.value == "0 labels"
    assert "two classes" in app.status.value


def test_exports_write_checked_files(app, tmp_path):
    with pytest.raises(sfw.NotEnoughSupportsError):
        app.export_maps(tmp_path / "x")
    r = label_two(app)
    paths = app.export_maps(tmp_path / "seg")
    assert sorted(p.name for p in paths) == ["seg_entropy.png", "seg_entropy.tif",
                                             "seg_labels.png", "seg_labels.tif"]
    with tifffile.TiffFile(tmp_path / "seg_labels.tif") as tif:
        labels = tif.asarray()
        xres = tif.pages[0].tags["XResolution"].value
        assert tif.imagej_metadata["unit"] == "nm"
    np.testing.assert_array_equal(labels, r.label_map)
    assert xres[0] / xres[1] == pytest.approx(4.0)      # 0.25 nm/px → 4 px per nm
    assert (labels[:, :64] == 0).mean() > 0.9 and (labels[:, 64:] == 1).mean() > 0.9
    np.testing.assert_allclose(tifffile.imread(tmp_path / "seg_entropy.tif"), r.entropy_map)

    out = app.export_csv(tmp_path / "chips.csv")
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 64
    assert rows[0]["class"] == "class 1" and rows[0]["is_support"] == "True"
    assert rows[7]["class"] == "class 2" and float(rows[7]["p_class 2"]) == 1.0
    assert [int(row["chip"]) for row in rows] == list(range(64))

    saved = app.save(tmp_path / "s.json")
    state = json.loads(saved.read_text())
    assert [(s["chip"], s["class"]) for s in state["supports"]] == [(0, "class 1"), (7, "class 2")]
    assert (tmp_path / "s.npz").exists()


def test_download_buttons_send_files_to_the_browser_not_to_a_folder(app, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sent = []
    app.export.downloader.send = lambda content, buffers=None: sent.append((content, buffers))
    app.export.download_button.click()                  # nothing to export yet
    assert sent == [] and "Nothing to download yet" in app.message.value
    label_two(app)
    app.export.what.value = "chips.csv"
    app.export.download_button.click()
    app.export.zip_button.click()
    assert [c["filename"] for c, _ in sent] == ["two_phase_chips.csv", "two_phase_all.zip"]
    assert sent[0][1][0].decode().splitlines()[0].startswith("chip,")
    assert "Downloading two_phase_all.zip" in app.message.value
    assert list(tmp_path.iterdir()) == []               # nothing written on the server


def test_autosave_and_restore_round_trip(dataset, tmp_path):
    path = tmp_path / "auto.json"
    app = sfw.FewShotApp(sfw.Session(dataset, chip_size=16), autosave=path)
    assert app.session.autosave == path
    label_two(app)
    app.classes.rows["class 1"].rename.value = "fine"
    app.classes.new_name.value = "oxide"
    app.results.threshold.value = 0.3
    app.results.eds_auto.value = False
    drag = app.grid_view.canvas
    drag.handle_key("1")
    drag.handle_mouse_down(5, 40)
    drag.handle_mouse_move(21, 40)
    drag.handle_mouse_up(21, 40)
    state = json.loads(path.read_text())                # saved after the last change
    assert len(state["supports"]) == 4 and state["settings"]["threshold"] == 0.3
    before = (dict(app.session.supports), dict(app.session.classes), app.session.settings)
    drawn = app.grid_view.canvas.outline_rgba.copy(), app.grid_view.canvas.fill_rgba.copy()
    app.close()
    assert app.session._event_listeners == []           # a closed app leaves no listener behind

    back = sfw.FewShotApp.restore(path, dataset)
    s = back.session
    assert (s.supports, s.classes, s.settings) == before
    assert s.autosave == path
    np.testing.assert_array_equal(back.grid_view.canvas.outline_rgba, drawn[0])
    np.testing.assert_array_equal(back.grid_view.canvas.fill_rgba, drawn[1])
    assert list(back.classes.rows) == ["fine", "class 2", "oxide"]
    assert back.results.threshold.value == 0.3 and not back.results.eds_auto.value
    back.close()


def test_default_autosave_path_is_next_to_the_data(dataset, tmp_path):
    dataset.metadata["source"] = str(tmp_path / "scan 7.emd")
    assert default_autosave_path(dataset) == tmp_path / "scan_7.sfw.json"
    app = sfw.FewShotApp(sfw.Session(dataset, chip_size=16), autosave=True)
    click(app, 5, 5)
    assert (tmp_path / "scan_7.sfw.json").exists()
    assert "saved automatically" in app.autosave_info.value and str(tmp_path) not in app.autosave_info.value
    app.close()


def test_autosave_never_clobbers_an_earlier_session_and_says_so(dataset, tmp_path):
    path = tmp_path / "scan.sfw.json"
    first = sfw.FewShotApp(sfw.Session(dataset, chip_size=16), autosave=path)
    label_two(first)
    first.close()
    earlier = path.read_bytes()
    fresh = sfw.FewShotApp(sfw.Session(dataset, chip_size=16), autosave=path)
    click(fresh, 40, 40)
    assert path.read_bytes() == earlier                 # the other work is kept ...
    assert fresh.session.supports == {18: "class 1"}    # ... the click stands ...
    assert "sfw-msg-warning" in fresh.autosave_info.value  # ... and the page says autosave paused
    assert not list(tmp_path.glob("scan-2*"))           # no numbered files nobody reads
    fresh.close()
    again = sfw.FewShotApp.restore(path, dataset)       # reopening continues that very file
    click(again, 40, 40)
    assert len(json.loads(path.read_text())["supports"]) == 3
    assert "warning" not in again.autosave_info.value
    again.close()


def test_a_failed_autosave_keeps_the_label_redraws_and_warns(dataset, tmp_path):
    blocker = tmp_path / "not a folder"
    blocker.write_text("x")
    app = sfw.FewShotApp(sfw.Session(dataset, chip_size=16), autosave=blocker / "auto.json")
    click(app, 5, 5)
    assert app.session.supports == {0: "class 1"}
    assert app.grid_view.canvas.outline_rgba[0, 3] == 255   # redrawn
    assert "Autosave is off" in app.autosave_info.value and "sfw-msg-warning" in app.autosave_info.value
    click(app, 5, 5)                                    # the retry click is a normal toggle
    assert app.session.supports == {}
    app.close()


def test_errors_show_a_message_and_keep_labels(app, monkeypatch):
    s = app.session
    label_two(app)
    before = dict(s.supports)
    # A user error: refused by the session, shown readably, nothing changed.
    app.results.stride.value = 64
    app.results.apply_grid.click()
    assert "Stride 64 is out of range" in app.message.value and "Traceback" not in app.message.value
    assert "sfw-msg-error" in app.message.value
    assert s.supports == before and s.n_chips == 64
    # An unexpected failure inside a handler.
    app.grid_view.canvas.handle_key("1")
    monkeypatch.setattr(s, "classify", lambda: (_ for _ in ()).throw(RuntimeError("disk on fire")))
    click(app, 40, 100)                                 # chip 50
    assert "Something unexpected went wrong (disk on fire)" in app.message.value
    assert "RuntimeError" not in app.message.value
    assert s.supports == before                         # the session rolled the step back
    assert (app.grid_view.canvas.outline_rgba[50] == 0).all()
    monkeypatch.undo()
    # The next successful change replaces the error with the status.
    click(app, 24, 100)                                 # chip 49
    assert app.message.value == "" and "labelled chips" in app.status.value
    # A view failing while redrawing reports but does not stop the others.
    monkeypatch.setattr(app.spectrum, "refresh", lambda topics=None: 1 / 0)
    click(app, 56, 100)                                 # chip 51
    assert "Could not redraw the view" in app.message.value
    assert app.classes.rows["class 1"].count.value == "3 labels"
    np.testing.assert_array_equal(app.grid_view.canvas.outline_rgba, app.model.overlay().outline)


def test_app_on_demo_data_without_eds_panel_for_image_only():
    ds = sfw.datasets.demo(size=128)
    app = sfw.FewShotApp(ds)
    assert app.session.n_chips == 16 and app.spectrum is not None
    app.spectrum.elements.value = ["Ni", "Co"]
    assert {"Ni Ka", "Co Ka"} <= set(app.spectrum.marker_labels.text)
    app.close()
    image_only = sfw.FewShotApp(ds.image)
    assert image_only.spectrum is None and image_only.results.eds_auto.disabled
    image_only.close()


def test_calibrated_data_give_the_canvas_a_scale_bar():
    import stem_fsl_widgets as sfw

    app = sfw.FewShotApp(sfw.datasets.demo(size=128))
    assert app.grid_view.canvas.pixel_unit == "nm"
    assert app.grid_view.canvas.pixel_size == pytest.approx(app.session.dataset.pixel_size)
