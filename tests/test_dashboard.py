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


def _upload(widget, name: str, content: bytes) -> None:
    widget.value = ({"name": name, "type": "", "size": len(content), "content": memoryview(content),
                     "last_modified": datetime.now(timezone.utc)},)


def test_demo_opens_the_app_and_labels_survive_a_reload():
    d = Dashboard()
    d.open_demo()
    assert d.app is not None and d.container.children == (d.app,)
    s = d.app.session
    s.label(3, "a")
    s.label(200, "b")
    assert s.result is not None
    d2 = Dashboard()  # a page reload / kernel restart: a new dashboard on the same data
    d2.open_demo()
    assert d2.app.session.supports == {3: "a", 200: "b"}
    assert "Restored 2 labelled chips" in d2.message.value


def test_bad_upload_gives_a_message_and_keeps_the_current_app(tmp_path):
    d = Dashboard()
    d.open_demo()
    d.app.session.label(5, "a")
    before = dict(d.app.session.supports)
    app = d.app
    _upload(d.image_upload, "broken.tif", b"II*\x00garbage that is not a tiff")
    d.open_uploads()
    assert "Could not open broken.tif" in d.message.value and "sfw-dash-error" in d.message.value
    assert "Traceback" not in d.message.value
    assert d.app is app and d.app.session.supports == before


def test_missing_empty_and_oversized_uploads_are_refused():
    d = Dashboard(max_upload_mb=0.001)
    d.open_uploads()
    assert "Upload an image file first" in d.message.value
    _upload(d.image_upload, "empty.npy", b"")
    d.open_uploads()
    assert "empty" in d.message.value
    _upload(d.image_upload, "big.npy", b"x" * 5000)
    d.open_uploads()
    assert "upload limit" in d.message.value and d.app is None


def test_good_upload_with_eds_opens(tmp_path):
    ds = sfw.datasets.demo(size=128)
    path = save_npz(ds, tmp_path / "small.npz")
    d = Dashboard()
    _upload(d.image_upload, "small.npz", path.read_bytes())
    d.open_uploads()
    assert d.app is not None, d.message.value
    assert d.app.session.dataset.has_eds
    np.testing.assert_allclose(d.app.session.dataset.image, ds.image)
    assert "Opened small.npz" in d.message.value


def test_demo_at_start_from_the_environment(monkeypatch):
    monkeypatch.setenv("SFW_DEMO", "1")
    assert Dashboard().app is not None
    monkeypatch.delenv("SFW_DEMO")
    assert Dashboard().app is None
