"""Batch mode: a saved session applied to new files gives what the session itself gives,
writes calibrated maps and CSVs, survives bad files, and runs on a distributed cluster."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile
from scenes import lattice

import stem_fsl_widgets as sfw
from stem_fsl_widgets import batch, io
from stem_fsl_widgets.errors import InputError, NotEnoughSupportsError, SessionFileError

ENERGY = np.linspace(0.0, 6.4, 64, endpoint=False) + 0.05


def scene(seed: int, *, size: int = 96, cut: int = 48, pixel_size: float = 0.1) -> sfw.Dataset:
    """Fine lattice + line at channel 20 left of ``cut``, coarse lattice + line at 40 right of it."""
    rng = np.random.default_rng(seed)
    img = lattice((size, size), 5.0)
    img[:, cut:] = lattice((size, size - cut), 8.0, 0.5)
    img = rng.poisson(img * 50 + 10).astype(np.float32)
    mean = np.full((size // 4, size // 4, 64), 0.15)
    mean[:, : cut // 4, 20] += 10
    mean[:, cut // 4 :, 40] += 10
    eds = rng.poisson(mean).astype(np.uint16)
    truth = np.zeros((size, size), int)
    truth[:, cut:] = 1
    return sfw.Dataset(img, eds=eds, energy_axis=ENERGY, eds_binning=4, pixel_size=pixel_size,
                       pixel_unit="nm", ground_truth=truth)


@pytest.fixture
def saved(tmp_path):
    """A two-class session saved with its reference arrays."""
    s = sfw.Session(scene(1), chip_size=16)
    s.label(int(s.grid.chip_at(10, 10)), "fine")
    s.label(int(s.grid.chip_at(10, 80)), "coarse")
    s.label(int(s.grid.chip_at(80, 80)), "coarse")
    s.save(tmp_path / "s.json", arrays=True)
    return s, tmp_path / "s.json"


def chip_truth(ds, grid):
    b = grid.boxes
    return ds.ground_truth[(b[:, 0] + b[:, 2]) // 2, (b[:, 1] + b[:, 3]) // 2]


def test_reference_reproduces_the_session_on_its_own_image(saved):
    s, path = saved
    ref = batch.load_reference(path)
    assert ref.classes == ["fine", "coarse"] and ref.support_lab.tolist() == [0, 1, 1]
    assert ref.eds_weight == pytest.approx(s.result.eds_weight)
    r = batch.segment_dataset(ref, s.dataset)
    np.testing.assert_array_equal(r.labels, s.result.labels)
    free = ~s.result.is_support
    np.testing.assert_allclose(r.probabilities[free], s.result.probabilities[free], atol=1e-6)
    assert not r.is_support.any() and r.eds_weight == pytest.approx(s.result.eds_weight)


def test_support_weights_travel_with_the_reference(tmp_path):
    """A support across a boundary counts less, in the session and in batch alike."""
    s = sfw.Session(scene(1, cut=52), chip_size=16)
    s.label(int(s.grid.chip_at(10, 10)), "fine")
    s.label(int(s.grid.chip_at(10, 80)), "coarse")
    odd = int(s.grid.chip_at(40, 56))  # x 48-64: a quarter fine, three quarters coarse
    s.label(odd, "coarse")
    s.save(tmp_path / "s.json", arrays=True)
    ref = batch.load_reference(tmp_path / "s.json")
    w = dict(zip(sorted(s.supports), ref.image_support_purity.tolist(), strict=True))
    assert w[odd] == pytest.approx(0.59, abs=0.05)  # measured 0.42-0.62 along the boundary
    assert sorted(w.values())[1:] == [1.0, 1.0]
    r = batch.segment_dataset(ref, s.dataset)
    free = ~s.result.is_support
    np.testing.assert_allclose(r.probabilities[free], s.result.probabilities[free], atol=1e-6)


def test_new_images_are_segmented_with_the_saved_prototypes(saved):
    s, path = saved
    ref = batch.load_reference(path)
    for seed, cut in ((5, 32), (6, 64)):
        ds = scene(seed, cut=cut)
        r = batch.segment_dataset(ref, ds)
        assert (r.labels == chip_truth(ds, r.grid)).mean() > 0.95
        assert r.fractions["coarse"] == pytest.approx(1 - cut / 96, abs=0.05)


def test_saved_scalers_are_used_not_refitted(saved):
    s, path = saved
    ref = batch.load_reference(path)
    np.testing.assert_array_equal(ref.image_mean, s.image_embeddings()[2].mean_)
    # An image of only one phase: refitting would stretch its noise into two classes.
    ds = scene(8, cut=96)
    r = batch.segment_dataset(ref, ds)
    assert r.fractions["fine"] > 0.9


def test_notes_for_missing_eds_and_other_pixel_size(saved):
    _, path = saved
    ref = batch.load_reference(path)
    ds = scene(3, pixel_size=0.2)
    r = batch.segment_dataset(ref, sfw.Dataset(ds.image, pixel_size=0.2, pixel_unit="nm"))
    assert any("no EDS" in n for n in r.notes) and any("×2.00" in n for n in r.notes)
    assert r.eds_weight is None


def test_other_energy_axis_is_refused(saved):
    _, path = saved
    ds = scene(3)
    other = sfw.Dataset(ds.image, eds=ds.eds, energy_axis=ENERGY * 1.1, eds_binning=4)
    with pytest.raises(sfw.CalibrationError, match="energy axis.*differs from the session"):
        batch.segment_dataset(batch.load_reference(path), other)


def write_inputs(tmp_path, n=3):
    files = []
    for k in range(n):
        files.append(io.save_npz(scene(10 + k, cut=32 + 16 * k), tmp_path / f"img{k}.npz"))
    return files


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_segment_files_writes_maps_csvs_and_summary(saved, tmp_path):
    _, path = saved
    files = write_inputs(tmp_path)
    (tmp_path / "broken.tif").write_bytes(b"II*\x00garbage")
    out = tmp_path / "out"
    rows = batch.segment_files(path, [*files, tmp_path / "broken.tif"], out, scheduler="synchronous",
                               progress=False)
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "error"]
    assert "broken.tif" in rows[3]["error"] and "re-export" in rows[3]["error"].lower()
    for k, row in enumerate(rows[:3]):
        assert row["fraction_coarse"] == pytest.approx(1 - (32 + 16 * k) / 96, abs=0.05)
        labels = tifffile.imread(out / f"img{k}_labels.tif")
        assert labels.shape == (96, 96) and set(np.unique(labels)) <= {0, 1}
        hl = io._hyperspy().load(out / f"img{k}_labels.hspy")
        assert hl.axes_manager.signal_axes[0].scale == pytest.approx(0.1)
        assert hl.metadata.Segmentation.classes == ["fine", "coarse"]
        chips = read_csv(out / f"img{k}_chips.csv")
        assert len(chips) == row["n_chips"] == 36
        assert {"p_fine", "p_coarse", "entropy", "uncertain"} <= set(chips[0])
    summary = read_csv(out / "summary.csv")
    assert [r["status"] for r in summary] == ["ok", "ok", "ok", "error"]
    assert float(summary[0]["fraction_fine"]) == pytest.approx(rows[0]["fraction_fine"])


def test_local_processes_match_synchronous(saved, tmp_path):
    _, path = saved
    files = write_inputs(tmp_path, 2)
    a = batch.segment_files(path, files, tmp_path / "a", scheduler="synchronous", progress=False)
    b = batch.segment_files(path, files, tmp_path / "b", workers=2, progress=False)  # default: processes
    assert same_rows(a, b)


def same_rows(a: list[dict], b: list[dict]) -> bool:
    """Equal summaries; pixel-map fractions to 0.5 % (float sums differ with BLAS threads)."""
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        if ra.keys() != rb.keys():
            return False
        for k in ra:
            if k.startswith("fraction_") and isinstance(ra[k], float):
                if abs(ra[k] - rb[k]) > 0.005:
                    return False
            elif ra[k] != rb[k]:
                return False
    return True


def write_hspy_pair(ds, image_path, eds_path):
    """Image and EDS cube as two calibrated .hspy files (EDS read lazily later)."""
    hs = io._hyperspy()
    hs.signals.Signal2D(ds.image).save(image_path)
    eds = hs.signals.Signal1D(ds.eds)
    eds.set_signal_type("EDS_TEM")
    e = eds.axes_manager.signal_axes[0]
    e.offset, e.scale, e.units = float(ENERGY[0]), float(ENERGY[1] - ENERGY[0]), "keV"
    eds.save(eds_path)
    return image_path, eds_path


def test_distributed_cluster(saved, tmp_path):
    distributed = pytest.importorskip("distributed")
    _, path = saved
    files = [*write_inputs(tmp_path, 2),
             write_hspy_pair(scene(30), tmp_path / "lz.hspy", tmp_path / "lz_si.hspy")]
    kw = {"progress": False, "load_kwargs": {"lazy": True}}
    local = batch.segment_files(path, files, tmp_path / "local", scheduler="synchronous", **kw)
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        rows = batch.segment_files(path, files, tmp_path / "dist", scheduler=cluster.scheduler_address, **kw)
    assert same_rows(rows, local) and [r["status"] for r in rows] == ["ok"] * 3
    assert rows[2]["eds_weight"] != ""  # the lazy cube was used
    assert (tmp_path / "dist" / "lz_labels.tif").exists()


def test_same_stems_get_distinct_outputs_and_globs_expand(saved, tmp_path):
    _, path = saved
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ds = scene(4)
    io.save_npz(ds, tmp_path / "a" / "x.npz")
    io.save_npz(ds, tmp_path / "b" / "x.npz")
    rows = batch.segment_files(path, [str(tmp_path / "*" / "x.npz")], tmp_path / "out",
                               scheduler="synchronous", progress=False)
    assert [r["name"] for r in rows] == ["x", "x_2"]
    assert (tmp_path / "out" / "x_2_labels.tif").exists()


def test_pairs_of_image_and_eds_files(saved, tmp_path):
    _, path = saved
    ds = scene(9)
    np.save(tmp_path / "img.npy", ds.image)
    np.save(tmp_path / "si.npy", ds.eds)
    rows = batch.segment_files(path, [(tmp_path / "img.npy", tmp_path / "si.npy")], tmp_path / "o",
                               scheduler="synchronous", progress=False,
                               load_kwargs={"energy_axis": ENERGY, "eds_binning": 4})
    assert rows[0]["status"] == "ok" and rows[0]["eds_weight"] != "", rows[0]


def test_stale_or_missing_arrays_are_refused(saved, tmp_path):
    s, path = saved
    s.label(int(s.grid.chip_at(80, 10)), "fine")
    s.save(path)  # JSON only: the .npz is now older than the supports
    with pytest.raises(SessionFileError, match="do not match.*arrays=True"):
        batch.load_reference(path)
    path.with_suffix(".npz").unlink()
    with pytest.raises(SessionFileError, match=r"s\.npz is missing.*arrays=True"):
        batch.segment_files(path, [], tmp_path / "o")


def test_pickled_arrays_are_never_loaded(saved):
    _, path = saved
    np.savez(path.with_suffix(".npz"), support_chips=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(SessionFileError, match="does not belong to s.json.*SHA-256"):
        batch.load_reference(path)  # the JSON names the arrays it was saved with
    state = json.loads(path.read_text())
    del state["arrays"]  # a file from before the hash was recorded
    path.write_text(json.dumps(state))
    with pytest.raises(SessionFileError, match="cannot be read"):
        batch.load_reference(path)


def test_one_class_session_and_bad_options(saved, tmp_path):
    s, path = saved
    state = json.loads(path.read_text())
    state["supports"] = [x for x in state["supports"] if x["class"] == "coarse"]
    path.write_text(json.dumps(state))
    with pytest.raises(NotEnoughSupportsError, match="at least two classes"):
        batch.load_reference(path)
    with pytest.raises(InputError, match="Unknown output format"):
        batch.segment_files(s, ["x.npz"], tmp_path, formats=("jpg",))
    with pytest.raises(InputError, match="No input files"):
        batch.segment_files(s, [], tmp_path)


def test_cli_segment(saved, tmp_path, capsys):
    _, path = saved
    files = [str(f) for f in write_inputs(tmp_path, 2)]
    out = tmp_path / "cli"
    code = batch.cli_segment([str(path), *files, "--out", str(out), "--scheduler", "synchronous",
                              "--formats", "tif", "png", "--no-progress"])
    assert code == 0
    assert "2 of 2 images segmented" in capsys.readouterr().out
    assert (out / "img1_labels.png").exists() and not (out / "img1_labels.hspy").exists()
    pixel = tifffile.imread(out / "img1_labels.tif")
    assert batch.cli_segment([str(path), files[1], "--out", str(tmp_path / "chips"), "--chip-maps",
                              "--scheduler", "synchronous", "--no-progress"]) == 0
    chips = tifffile.imread(tmp_path / "chips" / "img1_labels.tif")
    ref = batch.load_reference(path)
    r = batch.segment_dataset(ref, io.load(files[1]))
    np.testing.assert_array_equal(chips, r.chip_label_map)  # --chip-maps: the chip-level map
    np.testing.assert_array_equal(pixel, r.label_map)  # default: refined like the app's map
    assert batch.cli_segment([str(path), files[0], str(tmp_path / "nope.tif"), "--out", str(out),
                              "--scheduler", "synchronous", "--no-progress"]) == 1
    assert "nope.tif" in capsys.readouterr().err
    assert batch.cli_segment([str(tmp_path / "missing.json"), files[0], "--out", str(out)]) == 2
    assert "No session file" in capsys.readouterr().err
    assert batch.cli_segment([str(path), files[0]]) == 2  # --out is required
    assert batch.cli_segment(["--help"]) == 0


def test_batch_maps_are_refined_to_pixels_like_the_app(saved):
    s, path = saved
    ref = batch.load_reference(path)
    ds = scene(5, cut=40)  # the boundary runs through the middle of a chip column
    r = batch.segment_dataset(ref, ds)
    assert r.refiner is not None and s.settings.pixel_maps
    chip_acc = (r.chip_label_map == ds.ground_truth).mean()
    assert (r.label_map == ds.ground_truth).mean() > chip_acc  # the pixels fix the split column
    plain = batch.segment_dataset(ref, ds, pixel_maps=False)
    assert plain.refiner is None
    np.testing.assert_array_equal(plain.label_map, r.chip_label_map)
    # One class everywhere, or no chip sure of itself: still a full map, never a crash.
    one = batch.segment_dataset(ref, scene(8, cut=96))
    assert one.label_map.shape == (96, 96) and (one.label_map == 0).mean() > 0.9
