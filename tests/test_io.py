"""Reading files into Datasets (every writable format round-trips its calibration), choosing
image and EDS among several signals, lazy EDS, and session persistence on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

import stem_fsl_widgets as sfw
from stem_fsl_widgets import io
from stem_fsl_widgets.errors import CalibrationError, FileFormatError, SessionFileError

hs = io._hyperspy()

RNG = np.random.default_rng(7)
IMG = RNG.normal(100, 10, (64, 48)).astype(np.float32)
ENERGY_EV = np.arange(100) * 20.0 + 100.0  # 0.1–2.08 keV, written in eV
CUBE = RNG.poisson(2.0, (16, 12, 100)).astype(np.uint16)


def image_signal(data=IMG, title="HAADF", scale=0.25, units="nm"):
    sig = hs.signals.Signal2D(np.asarray(data))
    sig.metadata.General.title = title
    for ax in sig.axes_manager.signal_axes:
        ax.scale, ax.units = scale, units
    return sig


def eds_signal(data=CUBE, title="EDS", scale=1.0, units="nm", signal_type="EDS_TEM"):
    sig = hs.signals.Signal1D(np.asarray(data))
    sig.set_signal_type(signal_type)
    sig.metadata.General.title = title
    for ax in sig.axes_manager.navigation_axes:
        ax.scale, ax.units = scale, units
    e = sig.axes_manager.signal_axes[0]
    e.offset, e.scale, e.units = 100.0, 20.0, "eV"
    return sig


# ----------------------------------------------------------------------------- formats
@pytest.mark.parametrize("ext", [".hspy", ".zspy", ".emd"])
def test_hyperspy_formats_keep_image_and_calibration(tmp_path, ext):
    path = tmp_path / f"img{ext}"
    image_signal().save(path)
    ds = sfw.load(path)
    np.testing.assert_array_equal(ds.image, IMG)
    assert (ds.pixel_size, ds.pixel_unit, ds.name) == (0.25, "nm", "img")
    assert ds.metadata["source"] == str(path) and not ds.has_eds


@pytest.mark.parametrize("ext", [".hspy", ".zspy"])
def test_eds_from_second_file_maps_through_physical_pixel_sizes(tmp_path, ext):
    image_signal().save(tmp_path / "img.hspy")
    eds_signal(scale=0.001, units="µm").save(tmp_path / f"si{ext}")  # 1 nm = 4 image pixels
    ds = sfw.load(tmp_path / "img.hspy", eds_path=tmp_path / f"si{ext}")
    assert ds.eds_binning == pytest.approx(4.0)
    assert ds.eds_pixel_size == pytest.approx(1.0)  # converted to the image's nm
    np.testing.assert_allclose(ds.energy_axis, ENERGY_EV / 1000)  # keV
    np.testing.assert_array_equal(np.asarray(ds.eds), CUBE)
    assert ds.metadata["eds_title"] == "EDS"


def test_lazy_eds_stays_dask_and_sums_like_eager(tmp_path):
    image_signal().save(tmp_path / "img.hspy")
    eds_signal().save(tmp_path / "si.zspy")
    lazy = sfw.load(tmp_path / "img.hspy", eds_path=tmp_path / "si.zspy", lazy=True)
    eager = sfw.load(tmp_path / "img.hspy", eds_path=tmp_path / "si.zspy", lazy=False)
    assert hasattr(lazy.eds, "compute") and lazy.metadata["lazy"]
    assert isinstance(eager.eds, np.ndarray) and not eager.metadata["lazy"]
    a = sfw.Session(lazy, chip_size=16).chip_spectra()
    b = sfw.Session(eager, chip_size=16).chip_spectra()
    np.testing.assert_array_equal(a, b)
    assert a.sum() == CUBE.sum()


def test_big_files_open_lazily_by_default(tmp_path, monkeypatch):
    image_signal().save(tmp_path / "img.hspy")
    eds_signal().save(tmp_path / "si.hspy")
    monkeypatch.setattr(io, "LAZY_THRESHOLD", 1000)  # every file counts as big
    ds = sfw.load(tmp_path / "img.hspy", eds_path=tmp_path / "si.hspy")
    assert hasattr(ds.eds, "compute") and isinstance(ds.image, np.ndarray)


@pytest.mark.parametrize("unit, expect",
                         [("nm", "nm"), ("micron", "µm"), ("\\u00B5m", "µm"), ("\\u00C5", "Å")])
def test_imagej_tiff_keeps_pixel_size_and_unit(tmp_path, unit, expect):
    path = tmp_path / "img.tif"
    tifffile.imwrite(path, IMG, imagej=True, resolution=(1 / 0.5, 1 / 0.5), metadata={"unit": unit})
    ds = sfw.load(path)
    np.testing.assert_array_equal(ds.image, IMG)
    assert ds.pixel_size == pytest.approx(0.5) and ds.pixel_unit == expect


@pytest.mark.parametrize("unit", ["nm", "µm", "Å"])
def test_tiff_written_by_export_reads_back(tmp_path, two_phase, unit):
    img, eds, energy, _ = two_phase
    s = sfw.Session(sfw.Dataset(img, pixel_size=0.2, pixel_unit=unit), chip_size=16)
    s.label(0, "a")
    r = s.label(s.n_chips - 1, "b")
    from stem_fsl_widgets.export import write_maps

    write_maps(r, s.dataset, tmp_path / "x", formats=("tif",))
    assert tifffile.imread(tmp_path / "x_labels.tif").tolist() == r.label_map.tolist()
    back = sfw.load(tmp_path / "x_entropy.tif")
    assert back.pixel_size == pytest.approx(0.2) and back.pixel_unit == unit


def test_tiff_stack_needs_a_frame(tmp_path):
    path = tmp_path / "stack.tif"
    stack = np.stack([IMG + k for k in range(5)])
    tifffile.imwrite(path, stack, imagej=True)
    with pytest.raises(FileFormatError, match=r"stack of 5 frames.*frame=<0\.\.4>"):
        sfw.load(path)
    np.testing.assert_array_equal(sfw.load(path, frame=3).image, IMG + 3)
    with pytest.raises(FileFormatError, match="out of range"):
        sfw.load(path, frame=5)


def test_npy_image_and_npy_cube_as_eds_file(tmp_path):
    np.save(tmp_path / "img.npy", IMG)
    np.save(tmp_path / "cube.npy", CUBE)
    ds = sfw.load(tmp_path / "img.npy", eds_path=tmp_path / "cube.npy", energy_axis=ENERGY_EV / 1000,
                  pixel_size=0.25, pixel_unit="nm")
    assert ds.eds_binning == pytest.approx(4.0) and ds.pixel_size == 0.25
    np.testing.assert_array_equal(ds.eds, CUBE)


def test_npz_round_trip_keeps_everything(tmp_path, two_phase):
    img, eds, energy, truth = two_phase
    ds = sfw.Dataset(img, eds=eds, energy_axis=energy, eds_binning=4, pixel_size=0.05,
                     pixel_unit="nm", name="two phase", ground_truth=truth, truth_classes=["fine", "coarse"])
    back = sfw.load(io.save_npz(ds, tmp_path / "d.npz"))
    np.testing.assert_array_equal(back.image, ds.image)
    np.testing.assert_array_equal(back.eds, eds)
    np.testing.assert_allclose(back.energy_axis, energy)
    np.testing.assert_array_equal(back.ground_truth, truth)
    assert back.truth_classes == ["fine", "coarse"]
    assert (back.eds_binning, back.pixel_size, back.pixel_unit, back.name) == (4.0, 0.05, "nm", "two phase")
    assert back.content_hash == ds.content_hash  # a session made on one opens on the other


def test_png_grey_and_rgb(tmp_path):
    from PIL import Image

    grey = (IMG - IMG.min()).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    np.testing.assert_array_equal(sfw.load(tmp_path / "g.png").image, grey)
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "rgb_grey.png")
    np.testing.assert_array_equal(sfw.load(tmp_path / "rgb_grey.png").image, grey)
    tifffile.imwrite(tmp_path / "rgb_grey.tif", np.stack([grey] * 3, -1), photometric="rgb")
    ds = sfw.load(tmp_path / "rgb_grey.tif")
    np.testing.assert_array_equal(ds.image, grey)
    assert "grey image stored as RGB" in ds.metadata["notes"][0]
    colour = np.stack([grey, grey // 2, np.zeros_like(grey)], -1)
    Image.fromarray(colour).save(tmp_path / "c.png")
    with pytest.raises(FileFormatError, match="colour.*rgb='luminance'"):
        sfw.load(tmp_path / "c.png")
    lum = sfw.load(tmp_path / "c.png", rgb="luminance").image
    np.testing.assert_allclose(lum, 0.299 * grey + 0.587 * (grey // 2), atol=1e-3)


def test_user_calibration_overrides_the_file(tmp_path):
    image_signal().save(tmp_path / "img.hspy")
    ds = sfw.load(tmp_path / "img.hspy", pixel_size=0.1, name="mine")
    assert (ds.pixel_size, ds.name) == (0.1, "mine")


def test_errors_from_dataset_name_the_file_and_keep_their_type(tmp_path):
    bad = IMG.copy()
    bad[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(sfw.InputError, match=r"^nan\.npy: .*1 NaN"):
        sfw.load(tmp_path / "nan.npy")
    image_signal().save(tmp_path / "img.hspy")
    eds_signal(scale=3.0).save(tmp_path / "si.hspy")  # 48×36 nm map on a 16×12 nm image
    with pytest.raises(CalibrationError, match=r"^img\.hspy: .*field of view"):
        sfw.load(tmp_path / "img.hspy", eds_path=tmp_path / "si.hspy")


# ----------------------------------------------------------------------------- choosing signals
def velox_like():
    """What the Velox reader returns: detector images, element maps, one EDS cube."""
    return [image_signal(IMG + 1, "DF4", 250.0, "pm"), image_signal(IMG, "HAADF", 250.0, "pm"),
            image_signal(IMG + 2, "BF", 250.0, "pm"), eds_signal(scale=1.0, units="nm"),
            image_signal(IMG[::4, ::4], "Ni", 1.0, "nm"), image_signal(IMG[::4, ::4], "O", 1.0, "nm")]


def test_velox_picks_haadf_and_eds_and_converts_units():
    ds = io.from_signals(velox_like())
    np.testing.assert_array_equal(ds.image, IMG)
    assert (ds.pixel_size, ds.pixel_unit) == (250.0, "pm")
    assert ds.eds_pixel_size == pytest.approx(1000.0) and ds.eds_binning == pytest.approx(4.0)
    assert ds.metadata["image_title"] == "HAADF" and ds.metadata["eds_title"] == "EDS"


def test_dark_field_beats_bright_field_and_element_maps():
    sigs = [s for s in velox_like() if s.metadata.General.title != "HAADF"]
    assert io.from_signals(sigs).metadata["image_title"] == "DF4"


def test_ambiguous_images_list_the_candidates_and_selectors_resolve():
    sigs = [image_signal(IMG, "DF2"), image_signal(IMG + 1, "DF4"), eds_signal(scale=1.0)]
    with pytest.raises(FileFormatError) as err:
        io.from_signals(sigs)
    msg = str(err.value)
    assert "[0] 'DF2'" in msg and "[1] 'DF4'" in msg and "image=" in msg
    np.testing.assert_array_equal(io.from_signals(sigs, image="df4").image, IMG + 1)
    np.testing.assert_array_equal(io.from_signals(sigs, image=0).image, IMG)
    with pytest.raises(FileFormatError, match="No signal titled like 'HAADF'"):
        io.from_signals(sigs, image="HAADF")
    with pytest.raises(FileFormatError, match="not an image"):
        io.from_signals(sigs, image=2)
    with pytest.raises(FileFormatError, match="out of range"):
        io.from_signals(sigs, image=9)


def test_bruker_like_bse_image_with_eds_sem_cube():
    sigs = [image_signal(IMG, "BSE"), eds_signal(title="EDX", signal_type="EDS_SEM", scale=1.0)]
    ds = io.from_signals(sigs)
    assert ds.metadata["image_title"] == "BSE" and ds.eds.shape == CUBE.shape


def test_several_eds_cubes_need_a_choice():
    sigs = [image_signal(), eds_signal(title="EDS det 1", scale=1.0),
            eds_signal(title="EDS det 2", scale=1.0)]
    with pytest.raises(FileFormatError, match=r"(?s)Several EDS spectrum images.*det 1.*det 2.*eds="):
        io.from_signals(sigs)
    assert io.from_signals(sigs, eds="det 2").metadata["eds_title"] == "EDS det 2"
    assert not io.from_signals(sigs, eds=False).has_eds
    with pytest.raises(FileFormatError, match="not an EDS spectrum image"):
        io.from_signals(sigs, eds=0)


def test_dm_like_file_with_only_an_eds_cube_says_to_use_eds_path():
    with pytest.raises(FileFormatError, match="only an EDS spectrum image.*eds_path="):
        io.from_signals([eds_signal()])


def test_unusable_signals_are_described():
    four_d = hs.signals.Signal2D(np.zeros((3, 4, 16, 16)))
    single = eds_signal(CUBE[0, 0])
    eels = eds_signal(signal_type="EELS")
    untyped = eds_signal(signal_type="")  # a plain Signal1D with an energy axis is taken as EDS
    items = io.items_from_signals([four_d, single, eels, untyped])
    assert [i.role for i in items] == ["other", "other", "other", "eds"]
    assert "virtual image" in items[0].describe() and "single spectrum" in items[1].describe()
    assert "EELS, not EDS" in items[2].describe()
    with pytest.raises(FileFormatError, match="No 2-D image found"):
        io.from_signals([four_d, single])


class _FakeHyperSpy:
    """Stands in for hyperspy.api when a read-only format cannot be written here."""

    def __init__(self, signals, fail_without_select=False):
        self.signals, self.fail, self.calls = signals, fail_without_select, []

    def load(self, path, lazy=False, **kw):
        self.calls.append(kw)
        if self.fail and "select_type" not in kw:
            raise ModuleNotFoundError("The 'sparse' library was not found. To load EDS ...")
        images_only = kw.get("select_type") == "images"
        return [s for s in self.signals if not images_only or s.axes_manager.signal_dimension == 2]


@pytest.mark.parametrize("ext", [".emd", ".bcf", ".dm4", ".dm3"])
def test_read_only_formats_go_through_the_same_choice(tmp_path, monkeypatch, ext):
    path = tmp_path / f"scan{ext}"
    path.write_bytes(b"x" * 64)
    monkeypatch.setattr(io, "_hyperspy", lambda: _FakeHyperSpy(velox_like()))
    ds = sfw.load(path)
    assert ds.name == "scan" and ds.metadata["image_title"] == "HAADF" and ds.has_eds
    assert sfw.load(path, image="BF", eds=False).metadata["image_title"] == "BF"


def test_velox_without_sparse_still_gives_the_images(tmp_path, monkeypatch):
    path = tmp_path / "scan.emd"
    path.write_bytes(b"x" * 64)
    fake = _FakeHyperSpy(velox_like(), fail_without_select=True)
    monkeypatch.setattr(io, "_hyperspy", lambda: fake)
    ds = sfw.load(path)
    assert not ds.has_eds and "pip install sparse" in ds.metadata["notes"][0]
    assert fake.calls[-1] == {"select_type": "images"}


def test_describe_lists_indices_and_titles(tmp_path):
    np.savez(tmp_path / "x.npz", haadf=IMG, df=IMG + 1, eds=CUBE, energy_axis=ENERGY_EV / 1000)
    text = io.describe(tmp_path / "x.npz")
    assert "[0] 'haadf': image 64×48" in text and "[2] 'eds': EDS spectrum image 16×12×100" in text
    ds = sfw.load(tmp_path / "x.npz")  # 'haadf' outranks 'df'
    np.testing.assert_array_equal(ds.image, IMG)


def test_importing_io_is_light_and_loading_prints_no_numba_noise(tmp_path):
    eds_signal().save(tmp_path / "si.hspy")
    image_signal().save(tmp_path / "img.hspy")
    code = (
        "import sys, stem_fsl_widgets as sfw, stem_fsl_widgets.io\n"
        "print('hyperspy' in sys.modules)\n"
        f"ds = sfw.load({str(tmp_path / 'img.hspy')!r}, eds_path={str(tmp_path / 'si.hspy')!r})\n"
        "print(ds.has_eds)\n"
    )
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]
    assert "numba" not in (out.stdout + out.stderr).lower()


# ----------------------------------------------------------------------------- session files
@pytest.fixture
def labelled(two_phase, tmp_path):
    img, eds, energy, _ = two_phase
    ds = sfw.Dataset(img, eds=eds, energy_axis=energy, eds_binning=4)
    s = sfw.Session(ds, chip_size=16, autosave=tmp_path / "s.json")
    s.label(int(s.grid.chip_at(10, 20)), "fine")
    s.label(int(s.grid.chip_at(10, 100)), "coarse")
    return s


def test_autosave_survives_a_restart(labelled, tmp_path):
    s = labelled
    s.label(int(s.grid.chip_at(100, 20)), "fine")
    s.configure(threshold=0.3)
    expect = (dict(s.supports), dict(s.classes), s.settings, s.result.labels.copy())
    del s  # the kernel dies; only the autosave file is left
    s2 = sfw.Session.load(tmp_path / "s.json", labelled.dataset)
    assert (s2.supports, s2.classes, s2.settings) == expect[:3]
    np.testing.assert_array_equal(s2.result.labels, expect[3])


def test_save_keeps_the_previous_file_as_bak(labelled, tmp_path):
    p = tmp_path / "s.json"
    before = json.loads(p.read_text())
    labelled.label(0, "fine")
    assert json.loads((tmp_path / "s.json.bak").read_text())["supports"] == before["supports"]
    assert len(json.loads(p.read_text())["supports"]) == len(before["supports"]) + 1


def test_a_corrupt_file_never_replaces_the_good_backup(labelled, tmp_path):
    p, bak = tmp_path / "s.json", tmp_path / "s.json.bak"
    good_bak = bak.read_bytes()
    p.write_bytes(p.read_bytes()[:40])  # truncated by a crash or a full disk
    with pytest.raises(SessionFileError, match=r"not valid JSON.*s\.json\.bak"):
        sfw.Session.load(p, labelled.dataset)
    labelled.label(0, "coarse")  # next autosave
    assert bak.read_bytes() == good_bak  # the corrupt file was not promoted to .bak
    assert sfw.Session.load(p, labelled.dataset).supports[0] == "coarse"


def test_a_failed_write_leaves_the_old_file_and_no_temp_files(labelled, tmp_path, monkeypatch):
    p = tmp_path / "s.json"
    before = p.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        labelled.save(tmp_path / "s.json")
    monkeypatch.undo()
    assert p.read_bytes() == before
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    assert sfw.Session.load(p, labelled.dataset).supports == labelled.supports


def test_schema_versions_migrate_or_refuse(labelled):
    state = labelled.to_dict()
    old = {k: v for k, v in state.items() if k not in ("created_with", "saved_at")}
    assert sfw.Session.from_dict(old, labelled.dataset).supports == labelled.supports
    with pytest.raises(SessionFileError, match="newer.*Upgrade"):
        sfw.Session.from_dict({**state, "schema_version": 99}, labelled.dataset)
    with pytest.raises(SessionFileError, match="Unknown session schema 0"):
        sfw.Session.from_dict({**state, "schema_version": 0}, labelled.dataset)


def test_reference_arrays_load_without_pickle(labelled, tmp_path):
    labelled.save(tmp_path / "r.json", arrays=True)
    with np.load(tmp_path / "r.npz", allow_pickle=False) as f:
        need = {"support_chips", "image_raw", "image_mean", "eds_raw", "energy_axis", "eds_weight"}
        assert need <= set(f.files)
        assert all(f[k].dtype != object for k in f.files)


def test_no_pickle_anywhere_in_the_package():
    root = Path(sfw.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "import pickle" not in text and "allow_pickle=True" not in text, path
        for line in text.splitlines():
            if "np.load(" in line and "def " not in line:
                assert "allow_pickle=False" in line, f"{path}: {line.strip()}"


# ----------------------------------------------------------------------------- real vendor files
REAL = {"au_nanoparticles": ((2048, 2048), "HAADF", 0.0075), "se_mos2": ((1024, 1024), "Survey", 0.0127),
        "atomap_adf": ((400, 380), "", None), "atomap_abf": ((400, 380), "", None)}


def real(name):
    """A real experimental file (see stem_fsl_widgets.datasets.real), or a skip saying why not."""
    from stem_fsl_widgets.datasets.real import RealDataError, real_file

    try:
        return real_file(name)
    except RealDataError as err:
        pytest.skip(f"real file {name} is not cached and cannot be fetched here: {err}")


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_vendor_files_load_with_their_calibration(name):
    shape, title, px = REAL[name]
    ds = sfw.load(real(name))
    assert ds.shape == shape and title in ds.metadata["image_title"]
    assert ds.pixel_size == (pytest.approx(px, rel=1e-3) if px else None)
    assert np.isfinite(ds.image).all() and ds.image.std() > 0


@pytest.mark.parametrize("name", ["au_nanoparticles", "se_mos2", "atomap_adf"])
def test_real_files_are_size_checked_before_reading(name, monkeypatch):
    monkeypatch.setenv("SFW_MAX_PIXELS", "10000")  # the Velox, DM and HyperSpy readers, probed lazily
    with pytest.raises(sfw.FileFormatError, match=r"declares a \d+×\d+ image.*SFW_MAX_PIXELS"):
        sfw.load(real(name))


def test_a_real_hdf5_is_read_with_hyperspys_reader(tmp_path):
    """RosettaSciIO has several readers for .hdf5 (HSPY, USID, Delmic); HyperSpy's is chosen."""
    path = tmp_path / "test_ADF_cropped.hdf5"  # atomap's own name for it
    path.write_bytes(real("atomap_adf").read_bytes())
    ds = sfw.load(path)
    assert ds.shape == (400, 380)
    np.testing.assert_array_equal(ds.image, sfw.load(real("atomap_adf")).image)
