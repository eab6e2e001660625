"""A corpus of bad inputs: each raises a specific SFWError whose message says what to do,
and none of them changes the labels, classes or settings of the session the user is in.

Every case is a function ``setup(tmp_path, monkeypatch) -> (session, action)``: the test
snapshots ``session``, runs ``action``, checks the exception, then checks the session is
exactly as before and still classifies.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import tifffile
from scenes import assert_refused_untouched, case_registry, labelled_session, two_phase_scene

import stem_fsl_widgets as sfw
from stem_fsl_widgets import encoders, io
from stem_fsl_widgets.errors import (
    CalibrationError,
    FileFormatError,
    GridError,
    InputError,
    SessionFileError,
    WeightsError,
)

H = W = 128
IMG, CUBE, ENERGY, _ = two_phase_scene(11)

CASES: list = []


case = case_registry(CASES)


def labelled() -> sfw.Session:
    return labelled_session(IMG, CUBE, ENERGY)


def loading(path, **kw):
    """A labelled session beside a load attempt: loading a bad file must not touch it."""
    return labelled(), lambda: sfw.load(path, **kw)


def truncated(tmp_path, name, write):
    good = tmp_path / f"good_{name}"
    write(good)
    data = good.read_bytes()
    bad = tmp_path / name
    bad.write_bytes(data[: len(data) // 2])
    return bad


def hspy(path, data=IMG):
    io._hyperspy().signals.Signal2D(data).save(path, overwrite=True)


# ----------------------------------------------------------------------------- files
@case(FileFormatError, r"empty \(0 bytes\).*export it again")
def empty_file(tmp_path, mp):
    (tmp_path / "e.tif").write_bytes(b"")
    return loading(tmp_path / "e.tif")


@case(FileFormatError, r"Could not read t\.hspy.*re-export or re-copy")
def truncated_hspy(tmp_path, mp):
    return loading(truncated(tmp_path, "t.hspy", hspy))


@case(FileFormatError, r"Could not read t\.zspy.*re-export or re-copy")
def corrupt_zspy_metadata(tmp_path, mp):
    hspy(tmp_path / "t.zspy")
    (tmp_path / "t.zspy" / "Experiments" / "__unnamed__" / "data" / ".zarray").write_text("{trunc")
    return loading(tmp_path / "t.zspy")


@case(InputError, r"t\.zspy: .*constant.*Check the file")
def zspy_with_lost_chunks(tmp_path, mp):
    hspy(tmp_path / "t.zspy")
    data = tmp_path / "t.zspy" / "Experiments" / "__unnamed__" / "data"
    for p in data.iterdir():
        if not p.name.startswith("."):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    return loading(tmp_path / "t.zspy")


@case(FileFormatError, r"Could not read t\.tif.*re-export")
def truncated_tif(tmp_path, mp):
    return loading(truncated(tmp_path, "t.tif", lambda p: tifffile.imwrite(p, IMG)))


@case(FileFormatError, r"Could not read t\.png.*re-export")
def truncated_png(tmp_path, mp):
    from PIL import Image

    return loading(truncated(tmp_path, "t.png", lambda p: Image.fromarray(IMG.astype(np.uint8)).save(p)))


@case(FileFormatError, r"Could not read t\.npy.*not fully written.*re-export")
def truncated_npy(tmp_path, mp):
    return loading(truncated(tmp_path, "t.npy", lambda p: np.save(p, IMG)))


@case(FileFormatError, r"Could not read t\.npz.*re-export")
def truncated_npz(tmp_path, mp):
    return loading(truncated(tmp_path, "t.npz", lambda p: np.savez(p, image=IMG)))


for _ext, _header in ((".dm3", b"\x00\x00\x00\x03"), (".dm4", b"\x00\x00\x00\x04"), (".emd", b""),
                      (".bcf", b"AAMVHFSS")):
    def _corrupt(tmp_path, mp, ext=_ext, header=_header):
        path = tmp_path / f"scan{ext}"
        path.write_bytes(header + np.random.default_rng(0).bytes(600))
        return loading(path)

    _corrupt.__name__ = f"corrupt{_ext.replace('.', '_')}"
    case(FileFormatError, rf"Could not read scan\{_ext}.*truncated, corrupt.*re-export")(_corrupt)


@case(FileFormatError, r"h\.emd.*not a supported EMD file.*re-export")
def hdf5_that_is_not_emd(tmp_path, mp):
    import h5py

    with h5py.File(tmp_path / "h.emd", "w") as f:
        f.create_dataset("junk", data=np.zeros(3))
    return loading(tmp_path / "h.emd")


@case(FileFormatError, r"notes\.png.*not really a \.png file")
def text_file_named_png(tmp_path, mp):
    (tmp_path / "notes.png").write_text("these are my notes, not an image\n" * 20)
    return loading(tmp_path / "notes.png")


@case(FileFormatError, r"notes\.tif.*(not really a \.tif|re-export)")
def text_file_named_tif(tmp_path, mp):
    (tmp_path / "notes.tif").write_text("these are my notes, not an image\n" * 20)
    return loading(tmp_path / "notes.tif")


@case(FileFormatError, r"never unpickled.*np\.savez")
def npz_with_pickled_objects(tmp_path, mp):
    np.savez(tmp_path / "p.npz", image=np.array([{"code": 1}], dtype=object))
    return loading(tmp_path / "p.npz")


@case(FileFormatError, r"unsupported file type '\.jpg'.*TIFF")
def unsupported_extension(tmp_path, mp):
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8\xff" + b"0" * 100)
    return loading(tmp_path / "x.jpg")


@case(FileFormatError, r"No file at .*missing\.dm4.*Check the path")
def missing_file(tmp_path, mp):
    return loading(tmp_path / "missing.dm4")


@case(FileFormatError, r"(?s)No 2-D image found.*1-D array")
def one_d_data(tmp_path, mp):
    np.save(tmp_path / "line.npy", IMG[0])
    return loading(tmp_path / "line.npy")


@case(FileFormatError, r"stack of 3 frames.*frame=")
def three_d_stack(tmp_path, mp):
    tifffile.imwrite(tmp_path / "s.tif", np.stack([IMG] * 3), imagej=True)
    return loading(tmp_path / "s.tif")


@case(FileFormatError, r"4-D data.*virtual image")
def four_d_data(tmp_path, mp):
    hspy(tmp_path / "4d.hspy", np.zeros((2, 3, 16, 16), np.float32))
    return loading(tmp_path / "4d.hspy")


@case(FileFormatError, r"colour \(RGB\) picture.*raw single-channel image.*rgb='luminance'")
def rgb_colour_png(tmp_path, mp):
    from PIL import Image

    grey = IMG.astype(np.uint8)
    Image.fromarray(np.stack([grey, 255 - grey, grey // 2], -1)).save(tmp_path / "c.png")
    return loading(tmp_path / "c.png")


# ----------------------------------------------------------------------------- arrays
@case(InputError, r"RGB\(A\).*grayscale")
def rgb_array(tmp_path, mp):
    return labelled(), lambda: sfw.Dataset(np.stack([IMG] * 3, -1))


@case(InputError, r"must be 2-D.*Pick one frame")
def three_d_array(tmp_path, mp):
    return labelled(), lambda: sfw.Dataset(np.stack([IMG] * 2))


@case(InputError, r"^nan\.npy: .*2 NaN or infinite.*nan_to_num")
def nan_pixels(tmp_path, mp):
    bad = IMG.copy()
    bad[5, 5] = bad[7, 9] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    return loading(tmp_path / "nan.npy")


@case(InputError, r"1 NaN or infinite.*Replace them")
def inf_pixels(tmp_path, mp):
    bad = IMG.copy()
    bad[0, 0] = np.inf
    return labelled(), lambda: sfw.Dataset(bad)


@case(InputError, r"constant.*nothing to segment.*Check the file")
def constant_image(tmp_path, mp):
    return labelled(), lambda: sfw.Dataset(np.full((64, 64), 7.0))


@case(InputError, r"only 5×5 pixels; at least 8×8")
def tiny_image(tmp_path, mp):
    return labelled(), lambda: sfw.Dataset(np.random.default_rng(0).random((5, 5)))


# ----------------------------------------------------------------------------- grid settings
@case(GridError, r"larger than the image.*choose a chip size ≤ 128")
def chip_larger_than_image(tmp_path, mp):
    s = labelled()
    return s, lambda: s.configure(chip_size=200)


@case(GridError, r"too small; use at least 4")
def chip_below_4_px(tmp_path, mp):
    s = labelled()
    return s, lambda: s.configure(chip_size=3)


@case(GridError, r"Stride 0 is out of range.*between 1 and the chip size")
def stride_zero(tmp_path, mp):
    s = labelled()
    return s, lambda: s.configure(stride=0)


@case(GridError, r"Stride 40 .*would leave gaps")
def stride_larger_than_chip(tmp_path, mp):
    s = labelled()
    return s, lambda: s.configure(stride=40)


@case(InputError, r"Chip 100000 does not exist; this grid has chips 0\.\.63")
def chip_index_out_of_range(tmp_path, mp):
    s = labelled()
    return s, lambda: s.label(100000, "fine")


@case(InputError, r"Unknown encoder 'resnet9'; choose one of")
def unknown_encoder(tmp_path, mp):
    s = labelled()
    return s, lambda: s.configure(encoder="resnet9")


@case(InputError, r"eds_weight must be in \[0, 1\]")
def eds_weight_out_of_range(tmp_path, mp):
    s = labelled()
    return s, lambda: s.configure(eds_weight=1.5)


# ----------------------------------------------------------------------------- EDS
@case(CalibrationError, r"covers 80 image pixels along rows.*crop both")
def eds_field_of_view_mismatch(tmp_path, mp):
    return labelled(), lambda: sfw.Dataset(IMG, eds=CUBE[:20], energy_axis=ENERGY, eds_binning=4)


def session_on(cube):
    """A session on an EDS cube whose problem shows only when spectra are first summed."""
    s = sfw.Session(sfw.Dataset(IMG, eds=cube, energy_axis=ENERGY, eds_binning=4), chip_size=16)
    s.label(int(s.grid.chip_at(10, 20)), "fine")  # one class: nothing classified yet
    return s, lambda: s.label(int(s.grid.chip_at(10, 100)), "coarse")


@case(CalibrationError, r"negative counts.*raw X-ray counts.*Undo any background subtraction")
def negative_counts(tmp_path, mp):
    cube = CUBE.astype(np.float32) - 1.0
    return session_on(cube)


@case(InputError, r"no counts in the chosen energy window.*widen the window")
def all_zero_counts(tmp_path, mp):
    return session_on(np.zeros_like(CUBE))


@case(CalibrationError, r"keeps 0 channel\(s\).*widen the window")
def energy_window_outside_the_axis(tmp_path, mp):
    s = labelled()
    return s, lambda: s.configure(eds_window=[50.0, 60.0])


@case(CalibrationError, r"63 values but the EDS cube has 64 channels")
def energy_axis_wrong_length(tmp_path, mp):
    return labelled(), lambda: sfw.Dataset(IMG, eds=CUBE, energy_axis=ENERGY[:-1], eds_binning=4)


@case(CalibrationError, r"strictly increasing \(keV per channel\)")
def energy_axis_decreasing(tmp_path, mp):
    return labelled(), lambda: sfw.Dataset(IMG, eds=CUBE, energy_axis=ENERGY[::-1], eds_binning=4)


@case(CalibrationError, r"looks like eV\. Pass keV")
def energy_axis_in_ev(tmp_path, mp):
    return labelled(), lambda: sfw.Dataset(IMG, eds=CUBE, energy_axis=ENERGY * 1000, eds_binning=4)


@case(CalibrationError, r"needs its energy axis")
def eds_without_energy_axis(tmp_path, mp):
    return labelled(), lambda: sfw.Dataset(IMG, eds=CUBE, eds_binning=4)


# ----------------------------------------------------------------------------- session files
def session_file(tmp_path, edit=None, raw: bytes | None = None):
    """A labelled session, and an attempt to open a (bad) copy of its file on its data."""
    s = labelled()
    path = tmp_path / "s.json"
    state = s.to_dict()
    if edit is not None:
        edit(state)
    path.write_bytes(raw if raw is not None else json.dumps(state).encode())
    return s, lambda: sfw.Session.load(path, s.dataset)


@case(SessionFileError, r"not valid JSON.*try s\.json\.bak")
def session_json_truncated(tmp_path, mp):
    return session_file(tmp_path, raw=json.dumps(labelled().to_dict()).encode()[:60])


@case(SessionFileError, r"schema 7, newer.*Upgrade the package")
def session_from_newer_schema(tmp_path, mp):
    return session_file(tmp_path, lambda st: st.update(schema_version=7))


@case(SessionFileError, r"made on 'other'.*not on this data.*Open it with the image it was made on")
def session_for_another_image(tmp_path, mp):
    return session_file(tmp_path, lambda st: st["dataset"].update(name="other", content_hash="0" * 16))


@case(SessionFileError, r"chip 9999 is out of range.*does not belong to this image")
def session_chip_out_of_range(tmp_path, mp):
    return session_file(tmp_path, lambda st: st["supports"].append({"chip": 9999, "class": "fine"}))


@case(SessionFileError, r"not a stem_fsl_widgets session file")
def json_that_is_not_a_session(tmp_path, mp):
    return session_file(tmp_path, raw=b'{"name": "my notes"}')


@case(SessionFileError, r"top level is not an object")
def session_json_list(tmp_path, mp):
    return session_file(tmp_path, raw=b"[1, 2, 3]")


@case(SessionFileError, r"malformed.*KeyError.*backup")
def session_missing_supports(tmp_path, mp):
    return session_file(tmp_path, lambda st: st.pop("supports"))


@case(SessionFileError, r"settings cannot be applied.*Unknown encoder.*Fix or remove")
def session_with_unknown_encoder(tmp_path, mp):
    return session_file(tmp_path, lambda st: st["settings"].update(encoder="mine"))


@case(SessionFileError, r"s\.npz is missing.*arrays=True")
def batch_without_reference_arrays(tmp_path, mp):
    from stem_fsl_widgets.batch import segment_files

    s = labelled()
    s.save(tmp_path / "s.json")
    return s, lambda: segment_files(tmp_path / "s.json", [tmp_path / "x.tif"], tmp_path / "out")


# ----------------------------------------------------------------------------- encoder weights
def with_weights(tmp_path, mp, write):
    """A labelled session switched to a ResNet whose weights file is bad."""
    torch = pytest.importorskip("torch")
    path = tmp_path / "w.pth"
    write(torch, path)
    mp.setitem(encoders._REGISTRY, "my_resnet",
               lambda **kw: encoders.ResNetEncoder("resnet18", weights_path=path, device="cpu"))
    s = labelled()
    return s, lambda: s.configure(encoder="my_resnet")


class NotWeights:
    """Pickled by torch.save; weights_only=True refuses to unpickle it."""


@case(WeightsError, r"not a torch state dict that can be loaded safely \(UnpicklingError: Weights only "
                    r"load failed\)\. Save one with torch\.save\(model\.state_dict\(\)")
def weights_that_are_a_pickled_object(tmp_path, mp):
    return with_weights(tmp_path, mp, lambda torch, p: torch.save(NotWeights(), p))


@case(WeightsError, r"holds a list, not a state dict")
def weights_that_are_a_list(tmp_path, mp):
    return with_weights(tmp_path, mp, lambda torch, p: torch.save([1, 2, 3], p))


@case(WeightsError, r"not a torch state dict.*torch\.save")
def weights_file_of_random_bytes(tmp_path, mp):
    return with_weights(tmp_path, mp, lambda torch, p: p.write_bytes(os.urandom(256)))


@case(WeightsError, r"do not fit resnet18")
def weights_for_another_network(tmp_path, mp):
    return with_weights(tmp_path, mp, lambda torch, p: torch.save({"fc.weight": torch.zeros(2, 2)}, p))


# ----------------------------------------------------------------------------- the test
def test_the_corpus_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("setup, exc, match", CASES)
def test_bad_input(setup, exc, match, tmp_path, monkeypatch):
    assert_refused_untouched(setup, exc, match, tmp_path, monkeypatch)
