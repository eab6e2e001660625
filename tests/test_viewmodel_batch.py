"""Batch in the apps (BatchModel): the open session's labels applied to uploaded images give
the maps ``stem-fsl segment`` gives, one zip with a summary, progress, and honest failures."""

from __future__ import annotations

import csv
import io
import threading
import zipfile

import numpy as np
import pytest
import tifffile
from test_batch import scene

import stem_fsl_widgets as sfw
from stem_fsl_widgets import batch
from stem_fsl_widgets.io import save_npz
from stem_fsl_widgets.measure import measure_labels
from stem_fsl_widgets.viewmodel import AppModel, BatchModel, DashboardModel


@pytest.fixture
def app():
    s = sfw.Session(scene(1), chip_size=16)
    s.label(int(s.grid.chip_at(10, 10)), "fine")
    s.label(int(s.grid.chip_at(10, 80)), "coarse")
    s.label(int(s.grid.chip_at(80, 80)), "coarse")
    m = AppModel(s)
    yield m
    m.close()


def npz_bytes(ds, tmp_path, name):
    return (name, save_npz(ds, tmp_path / name).read_bytes())


def read_zip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def summary(files: dict[str, bytes]) -> list[dict]:
    return list(csv.DictReader(io.StringIO(files["summary.csv"].decode())))


def test_batch_zip_holds_the_maps_stem_fsl_segment_gives(app, tmp_path):
    images = [scene(5, cut=32), scene(6, cut=64)]
    b = BatchModel()
    seen = []
    b.watch(lambda t: seen.append((set(t), b.done)))
    b.set_files([npz_bytes(images[0], tmp_path, "a.npz"), npz_bytes(images[1], tmp_path, "b.npz"),
                 ("broken.tif", b"not a tiff at all")])
    assert b.files_text.startswith("3 images: a.npz")
    assert b.can_start(app) and b.start(app)
    assert not b.running and b.done == b.total == 3 and b.progress == 1.0
    assert [d for t, d in seen if "progress" in t][-4:] == [1, 2, 3, 3]  # one tick per image
    files = read_zip(b.result.data)
    assert b.result.filename.endswith("_batch.zip") and b.result.mime == "application/zip"
    for name in ("a", "b"):
        assert {f"{name}/{name}_{k}" for k in ("labels.png", "entropy.png", "labels.tif",
                                                "chips.csv", "measurements.csv")} <= set(files)
    assert not any(n.startswith("broken") for n in files)
    rows = summary(files)
    assert [r["status"] for r in rows] == ["ok", "ok", "error"]
    assert "not an image" in rows[2]["error"] or "read" in rows[2]["error"]
    assert b.message.kind == "warning" and "2 of 3" in b.message.text and "broken.tif" in b.message.text
    ref = batch.Reference.from_session(app.session)
    for name, ds, row in zip("ab", images, rows[:2], strict=True):
        expected = batch.segment_dataset(ref, ds)
        got = tifffile.imread(io.BytesIO(files[f"{name}/{name}_labels.tif"]))
        np.testing.assert_array_equal(got, expected.label_map)  # the pixel map, as the CLI writes it
        assert (got == ds.ground_truth).mean() > 0.95
        cut = {"a": 32, "b": 64}[name]
        assert float(row["fraction_coarse"]) == pytest.approx(1 - cut / 96, abs=0.03)
        meas = measure_labels(expected.label_map, expected.classes, pixel_size=0.1, unit="nm")
        table = list(csv.DictReader(io.StringIO(files[f"{name}/{name}_measurements.csv"].decode())))
        assert [float(r["area"]) for r in table] == pytest.approx([r["area"] for r in meas.rows()])
        assert float(row["area_coarse (nm²)"]) == pytest.approx(meas["coarse"].area)


def test_labels_made_during_a_batch_do_not_change_it(app, tmp_path):
    b = BatchModel()
    b.set_files([npz_bytes(scene(5, cut=32), tmp_path, "a.npz")])
    ran = []
    b.run_on_ui = lambda fn: ran.append(fn)  # the UI thread: calls queue until "the loop" runs
    gate = threading.Event()
    real = b._segment
    b._segment = lambda ref, up: (gate.wait(5), real(ref, up))[1]
    assert b.start(app) and b.running
    assert not b.start(app) and "already running" in b.message.text
    b.set_files([])
    assert len(b.files) == 1 and "running" in b.message.text  # the choice is kept while it runs
    frozen = batch.Reference.from_session(app.session).support_lab.tolist()
    app.session.label(int(app.session.grid.chip_at(80, 10)), "coarse")  # a wrong label, added now
    gate.set()
    for t in threading.enumerate():
        if t.name == "sfw-batch":
            t.join(60)
    assert b.running  # until the UI thread runs what the worker handed it
    for fn in ran:
        fn()
    assert not b.running and b.rows[0]["status"] == "ok"
    assert len(frozen) == 3
    # The zip's map is the one of the three labels the batch started with.
    s3 = sfw.Session(scene(1), chip_size=16)
    for chip, cls in ((s3.grid.chip_at(10, 10), "fine"), (s3.grid.chip_at(10, 80), "coarse"),
                      (s3.grid.chip_at(80, 80), "coarse")):
        s3.label(int(chip), cls)
    expected = batch.segment_dataset(batch.Reference.from_session(s3), scene(5, cut=32)).label_map
    got = tifffile.imread(io.BytesIO(read_zip(b.result.data)["a/a_labels.tif"]))
    np.testing.assert_array_equal(got, expected)


def test_cancel_keeps_the_images_finished(app, tmp_path):
    b = BatchModel()
    b.set_files([npz_bytes(scene(5 + k, cut=32), tmp_path, f"x{k}.npz") for k in range(3)])
    real = b._segment

    def first_then_cancel(ref, up):
        out = real(ref, up)
        b.cancel()
        return out

    b._segment = first_then_cancel
    b.start(app)
    files = read_zip(b.result.data)
    assert [r["name"] for r in summary(files)] == ["x0"]
    assert "cancelled after 1" in b.message.text and b.done == 1 and b.total == 3


@pytest.mark.parametrize("files, expected", [
    ([("notes.txt", b"hello")], "not an image file"),
    ([("empty.tif", b"")], "empty"),
    ([(f"i{k}.tif", b"x") for k in range(4)], "at most 3"),
    ([("big.tif", b"x" * 2_000_001)], "over the 2 MB limit"),
    ([("a.tif", b"x" * 1_500_000), ("b.tif", b"x" * 1_500_000)], "add up to 3 MB"),
])
def test_bad_choices_are_refused_whole_and_keep_the_earlier_choice(files, expected):
    b = BatchModel(max_upload_mb=2, max_files=3, max_total_mb=2.5)
    b.set_files([("keep.tif", b"x")])
    b.set_files(files)
    assert expected in b.message.text and b.message.kind == "error"
    assert [f.name for f in b.files] == ["keep.tif"]


def test_start_says_what_is_missing(app):
    b = BatchModel()
    assert not b.start(app) and "Choose the images" in b.message.text
    b.set_files([("a.tif", b"x")])
    bare = AppModel(sfw.Session(scene(1), chip_size=16))
    assert not b.can_start(bare) and not b.start(bare) and "two classes" in b.message.text
    bare.close()
    assert not b.start(None) and not b.running


def test_hostile_file_names_stay_inside_the_zip(app, tmp_path):
    b = BatchModel()
    ds = scene(5, cut=32)
    data = npz_bytes(ds, tmp_path, "x.npz")[1]
    b.set_files([("../../etc/passwd.npz", data), ("passwd.npz", data), ("PASSWD.npz", data)])
    b.start(app)
    names = list(read_zip(b.result.data))
    assert all(not n.startswith(("/", "..")) and ".." not in n for n in names)
    assert {n.split("/")[0] for n in names if "/" in n} == {"passwd", "passwd_2", "PASSWD_3"}


def test_dashboard_has_a_batch_with_its_upload_limit():
    d = DashboardModel(max_upload_mb=3, autosave=False)
    assert isinstance(d.batch, BatchModel) and d.batch.max_upload_mb == 3


# ---------------------------------------------------------------- the two views, by their handlers
@pytest.fixture
def demo_files(tmp_path):
    """The 128² demo (with EDS) to label, two other acquisitions of it (.npz with EDS) and one
    without its EDS (.npy)."""
    ds = sfw.datasets.demo(size=128)
    others = []
    for seed in (1, 2):
        path = save_npz(sfw.datasets.demo(size=128, seed=seed), tmp_path / f"other{seed}.npz")
        others.append((path.name, path.read_bytes()))
    np.save(tmp_path / "bare.npy", sfw.datasets.demo(size=128, seed=3).image)
    others.append(("bare.npy", (tmp_path / "bare.npy").read_bytes()))
    return ds, save_npz(ds, tmp_path / "small.npz").read_bytes(), others


def _label_truth(model):
    """The two purest chips of each class (by the truth) as supports."""
    from stem_fsl_widgets.evaluate import chip_truth

    s = model.session
    truth, purity = chip_truth(s.dataset.ground_truth, s.grid)
    for k, name in enumerate(s.dataset.truth_classes):
        mine = np.flatnonzero(truth == k)
        s.label_many(mine[np.argsort(-purity[mine])][:2].tolist(), name)
    assert s.result is not None


def test_notebook_dashboard_batch_panel(demo_files, monkeypatch, tmp_path):
    from datetime import datetime, timezone

    from stem_fsl_widgets.apps.dashboard import Dashboard

    monkeypatch.setenv("SFW_AUTOSAVE_DIR", str(tmp_path / "autosave"))
    ds, npz, others = demo_files
    d = Dashboard()
    assert d.batch.layout.display == "none"  # nothing to apply before an image is open
    d.model.upload_image("small.npz", npz)
    assert d.app is not None and d.batch.layout.display == ""
    p = d.batch
    # Handlers driven from Python run the batch to the end (a loop left running by an earlier
    # browser test in this process would otherwise take the worker's callbacks).
    p.model.run_on_ui = None
    p.upload.value = tuple({"name": n, "type": "", "size": len(c), "content": memoryview(c),
                            "last_modified": datetime.now(timezone.utc)} for n, c in others)
    assert "3 images: other1.npz" in p.files.value and not p.apply_button.disabled
    p.apply_button.click()
    assert "two classes" in p.message.value and p.model.result is None  # no labels yet
    d.app.model.apply_grid(16, 16)  # 64 chips on this small image
    _label_truth(d.app.model)
    own = (d.app.session.result.label_map == ds.ground_truth).mean()
    p.apply_button.click()
    assert p.bar.value == p.bar.max == 3 and "3 of 3 images" in p.progress_text.value
    assert "Segmented 3 of 3" in p.message.value and not p.download_button.disabled
    p.download_button.click()
    assert p.downloader.sent == [p.model.result.filename]
    files = read_zip(p.model.result.data)
    rows = summary(files)
    assert [r["name"] for r in rows] == ["other1", "other2", "bare"]
    assert all(r["status"] == "ok" for r in rows)
    assert "no EDS" in rows[2]["notes"] and "no EDS" not in rows[0]["notes"]  # said, not hidden
    for seed, name in ((1, "other1"), (2, "other2")):
        truth = sfw.datasets.demo(size=128, seed=seed).ground_truth
        got = tifffile.imread(io.BytesIO(files[f"{name}/{name}_labels.tif"]))
        # The same classes found on another acquisition about as well as on the labelled one.
        assert (got == truth).mean() > min(0.65, own - 0.1)
    p.clear_button.click()
    assert p.files.value.count("other") == 0 and p.upload.value == () and p.download_button.disabled


def test_panel_dashboard_batch(demo_files, monkeypatch, tmp_path):
    from stem_fsl_widgets.apps.panel_app import PanelDashboard

    monkeypatch.setenv("SFW_AUTOSAVE_DIR", str(tmp_path / "autosave"))
    ds, npz, others = demo_files
    d = PanelDashboard()
    assert not d.batch_area.visible
    d.model.upload_image("small.npz", npz)
    assert d.batch_area.visible
    p = d.batch
    p.file_input.param.update(filename=[n for n, _ in others], value=[c for _, c in others])
    assert "3 images" in p.files.object and not p.apply_button.disabled
    _label_truth(d.app.model)
    p.apply_button.clicks += 1
    assert p.progress.value == p.progress.max == 3 and "3 of 3" in p.progress_text.object
    assert p.message.alert_type == "success" and not p.download_button.disabled
    assert p.download_button.filename == p.model.result.filename
    data = p._download().getvalue()
    assert {"summary.csv", "other1/other1_labels.png"} <= set(read_zip(data))
    p.clear_button.clicks += 1
    assert p.model.files == [] and p.download_button.disabled
    d.close()
