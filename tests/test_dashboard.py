"""The Voilà dashboard's logic, driven through its Python handlers (browser test: tests/browser)."""

from datetime import datetime, timezone

import numpy as np
import pytest

import stem_fsl_widgets as sfw
from stem_fsl_widgets.apps.dashboard import Dashboard
from stem_fsl_widgets.io import save_npz


@pytest.fixture(autouse=True)
def _autosave_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SFW_AUTOSAVE_DIR", str(tmp_path / "autosave"))
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)


def _upload(widget, name: str, content: bytes) -> None:
    widget.value = ({"name": name, "type": "", "size": len(content), "content": memoryview(content),
                     "last_modified": datetime.now(timezone.utc)},)


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory):
    """A 128² demo image with its EDS map in one .npz, and the image alone as .npy."""
    ds = sfw.datasets.demo(size=128)
    folder = tmp_path_factory.mktemp("files")
    np.save(folder / "plain.npy", ds.image)
    return ds, save_npz(ds, folder / "small.npz").read_bytes(), (folder / "plain.npy").read_bytes()


def test_demo_opens_the_app_and_labels_survive_a_reload_per_browser():
    d = Dashboard()
    d.browser.browser_id = "browser-A"
    d.open_demo()
    assert d.app is not None and d.container.children == (d.app,)
    s = d.app.session
    s.label(3, "a")
    s.label(200, "b")
    assert s.result is not None
    d2 = Dashboard()  # a page reload / kernel restart: a new dashboard on the same data
    d2.browser.browser_id = "browser-A"
    d2.open_demo()
    assert d2.app.session.supports == {3: "a", 200: "b"}
    assert "Restored 2 labels saved " in d2.message.value
    other = Dashboard()  # another person on the same server account: their own autosave
    other.browser.browser_id = "browser-B"
    other.open_demo()
    assert other.app.session.supports == {}
    assert "Restored" not in other.message.value


def test_start_over_keeps_a_backup_and_starts_fresh(tmp_path):
    d = Dashboard()
    d.open_demo()
    d.app.session.label(3, "a")
    path = d.app.session.autosave
    assert d.start_over.layout.display != "none"
    d.start_over.click()
    assert d.app.session.supports == {} and d.app.session.autosave == path
    assert len(list(path.parent.glob(path.stem + ".*.old.json"))) == 1  # set aside, not deleted
    assert "Started over" in d.message.value
    d2 = Dashboard()
    d2.open_demo()
    assert d2.app.session.supports == {}


def test_bad_upload_gives_a_message_and_keeps_the_current_app():
    d = Dashboard()
    d.open_demo()
    d.app.session.label(5, "a")
    before = dict(d.app.session.supports)
    app = d.app
    _upload(d.image_upload, "broken.tif", b"II*\x00garbage that is not a tiff")  # opens at once
    assert "Could not open broken.tif" in d.message.value and "sfw-dash-error" in d.message.value
    assert "Traceback" not in d.message.value
    assert d.app is app and d.app.session.supports == before


def test_empty_and_oversized_uploads_are_refused():
    d = Dashboard(max_upload_mb=0.001)
    d.open_uploads()
    assert "Upload an image file first" in d.message.value
    _upload(d.image_upload, "empty.npy", b"")
    assert "empty" in d.message.value
    _upload(d.image_upload, "big.npy", b"x" * 5000)
    assert "upload limit" in d.message.value and d.app is None


def test_upload_opens_at_once_shows_names_and_clear_resets(small_npz):
    ds, npz, _ = small_npz
    d = Dashboard()
    _upload(d.image_upload, "small.npz", npz)  # no "Open" step
    assert d.app is not None, d.message.value
    assert d.app.session.dataset.has_eds
    np.testing.assert_allclose(d.app.session.dataset.image, ds.image)
    assert "Opened small.npz" in d.message.value
    assert "small.npz" in d.files.value
    assert d.image_upload.tooltip and d.eds_upload.tooltip  # never "null"
    d.clear_button.click()
    assert d.app is None and d.files.value.count("small.npz") == 0
    assert d.image_upload.value == () and d.model.image is None


def test_an_eds_file_is_never_paired_with_the_next_image(small_npz, tmp_path):
    ds, npz, plain = small_npz
    cube = tmp_path / "eds.npy"
    np.save(cube, np.asarray(ds.eds))

    def loader(image, eds):
        return sfw.Dataset(np.load(image), eds=None if eds is None else np.load(eds),
                           energy_axis=ds.energy_axis, name=image.name)

    d = Dashboard(loader=loader)
    _upload(d.eds_upload, "eds.npy", cube.read_bytes())
    assert "now upload the image" in d.message.value and d.app is None
    _upload(d.image_upload, "plain.npy", plain)
    assert d.app is not None and d.app.session.dataset.has_eds
    assert "image: <b>plain.npy" in d.files.value and "EDS: <b>eds.npy" in d.files.value
    _upload(d.image_upload, "second.npy", plain)  # the next image: the old EDS is not used
    assert not d.app.session.dataset.has_eds
    assert "was for the previous image" in d.message.value
    assert "eds.npy" not in d.files.value


def test_uncalibrated_image_asks_for_its_pixel_size(small_npz):
    _, _, plain = small_npz
    d = Dashboard()
    _upload(d.image_upload, "plain.npy", plain)
    assert d.app.session.dataset.pixel_size is None
    assert "no pixel size" in d.message.value and d.calibration.layout.display == "flex"
    d.pixel_size.value, d.pixel_unit.value = 0.5, "nm"
    d.pixel_button.click()
    assert d.app.session.dataset.pixel_size == 0.5 and d.app.session.dataset.pixel_unit == "nm"
    assert d.calibration.layout.display == "none"
    assert d.app.grid_view.canvas.pixel_size == 0.5


def test_dataset_names_are_escaped(small_npz):
    _, _, plain = small_npz
    d = Dashboard()
    _upload(d.image_upload, "<img src=x onerror=alert(1)>.npy", plain)
    assert "<img" not in d.files.value and "<img" not in d.message.value
    assert "&lt;img" in d.files.value


def test_demo_at_start_from_the_environment(monkeypatch):
    monkeypatch.setenv("SFW_DEMO", "1")
    assert Dashboard().app is not None
    monkeypatch.delenv("SFW_DEMO")
    assert Dashboard().app is None


def test_an_autosave_that_cannot_be_restored_says_so_and_is_kept():
    d = Dashboard()
    d.browser.browser_id = "browser-C"
    d.open_demo()
    d.app.session.label(3, "a")
    path = d.app.session.autosave
    state = path.read_text()
    path.write_text(state.replace('"encoder": "', '"encoder": "gone_'))  # weights no longer there
    broken = path.read_bytes()
    d2 = Dashboard()
    d2.browser.browser_id = "browser-C"
    d2.open_demo()
    assert d2.app is not None and d2.app.session.supports == {}
    assert "could not be restored" in d2.message.value and "Traceback" not in d2.message.value
    d2.app.session.label(5, "b")  # a click: the unrestorable file is not overwritten ...
    assert path.read_bytes() == broken
    assert "sfw-msg-warning" in d2.app.autosave_info.value  # ... and the page says autosave paused
    d2.start_over.click()  # set aside (never deleted): autosave works again
    assert len(list(path.parent.glob(path.stem + ".*.old.json"))) == 1
    d2.app.session.label(5, "b")
    assert '"chip": 5' in path.read_text()
