"""Hosting-hardening corpus (issue 10): hostile files, paths, colours, values and session files.

Like tests/test_bad_inputs.py, every case is ``setup(tmp_path, monkeypatch) -> (session, action)``:
the action must raise the named :class:`SFWError` subclass with a message saying what to do,
and leave the user's session exactly as it was, still able to classify.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tifffile
from scenes import assert_refused_untouched, case_registry, labelled_session, two_phase_scene

import stem_fsl_widgets as sfw
from stem_fsl_widgets import io
from stem_fsl_widgets.errors import (
    AutosaveError,
    DataTooLargeError,
    ExportPathError,
    FileFormatError,
    GridError,
    InputError,
    SessionFileError,
    WriteError,
)
from stem_fsl_widgets.paths import confine_path

IMG, CUBE, ENERGY, _ = two_phase_scene(11)
CASES: list = []


case = case_registry(CASES)


def labelled() -> sfw.Session:
    return labelled_session(IMG, CUBE, ENERGY)


def doing(action):
    """A labelled session beside an action on it (or on something else)."""
    s = labelled()
    return s, lambda: action(s)


def loading(path, **kw):
    return labelled(), lambda: sfw.load(path, **kw)


def capped(mp, pixels=1_000_000, voxels=None, memory=None):
    mp.setenv("SFW_MAX_PIXELS", str(pixels))
    if voxels is not None:
        mp.setenv("SFW_MAX_VOXELS", str(voxels))
    if memory is not None:
        mp.setenv("SFW_MAX_MEMORY_VOXELS", str(memory))


def hspy_declaring(path, shape, dtype="float32"):
    """A valid .hspy/.hdf5 whose dataset declares ``shape`` but stores no chunk: a few KB."""
    import h5py

    hs = io._hyperspy()
    small = np.zeros((2,) * len(shape), dtype)
    sig = hs.signals.Signal2D(small) if len(shape) == 2 else hs.signals.Signal1D(small)
    sig.save(path, overwrite=True, file_format="HSPY")
    with h5py.File(path, "r+") as f:
        grp = f["Experiments/__unnamed__"]
        del grp["data"]
        grp.create_dataset("data", shape=shape, dtype=dtype, chunks=True, compression="gzip")
    return path


# ----------------------------------------------------------------------------- memory bombs
@case(DataTooLargeError, r"big\.npz declares a 2000×2000 image.*SFW_MAX_PIXELS")
def npz_compressed_zeros(tmp_path, mp):
    capped(mp)
    np.savez_compressed(tmp_path / "big.npz", image=np.zeros((2000, 2000), np.float32))
    assert (tmp_path / "big.npz").stat().st_size < 50_000
    return loading(tmp_path / "big.npz")


@case(DataTooLargeError,
      r"big\.npz: 'eds' declares a 64×64×4096 array \(16\.8 million values\).*into memory.*\.zspy")
def npz_cube_over_memory_cap(tmp_path, mp):
    capped(mp, memory=1_000_000)
    np.savez_compressed(tmp_path / "big.npz", image=IMG, eds=np.zeros((64, 64, 4096), np.uint16),
                        energy_axis=np.arange(4096) * 0.01 + 0.01)
    return loading(tmp_path / "big.npz")


@case(DataTooLargeError, r"big\.npy declares a 3000×3000 image")
def npy_header_over_cap(tmp_path, mp):
    capped(mp)
    np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.uint8, shape=(3000, 3000))
    return loading(tmp_path / "big.npy")


@case(DataTooLargeError, r"cube\.npy declares a 100×100×2000 array.*SFW_MAX_VOXELS")
def npy_cube_over_lazy_cap(tmp_path, mp):
    capped(mp, voxels=1_000_000)
    np.lib.format.open_memmap(tmp_path / "cube.npy", mode="w+", dtype=np.uint8, shape=(100, 100, 2000))
    np.save(tmp_path / "img.npy", IMG)
    return labelled(), lambda: sfw.load(tmp_path / "img.npy", eds_path=tmp_path / "cube.npy", lazy=True)


@case(DataTooLargeError, r"big\.tif declares a 2000×2000 image")
def deflate_tiff(tmp_path, mp):
    capped(mp)
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((2000, 2000), np.uint8), compression="zlib")
    return loading(tmp_path / "big.tif")


@case(DataTooLargeError,
      r"stack\.tif declares a 40×400×400 array \(6\.4 million values\), over the limit of 1 million")
def tiff_stack_over_voxel_cap(tmp_path, mp):
    capped(mp, voxels=1_000_000)
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((40, 400, 400), np.uint8), compression="zlib")
    return loading(tmp_path / "stack.tif", frame=0)


@case(DataTooLargeError, r"big\.png declares a 1500×1200 image")
def png_over_cap(tmp_path, mp):
    from PIL import Image

    capped(mp)
    Image.new("L", (1200, 1500)).save(tmp_path / "big.png")
    return loading(tmp_path / "big.png")


@case(DataTooLargeError, r"big\.hspy declares a 30000×30000 image \(900 million pixels\)")
def hspy_declaring_30000_squared(tmp_path, mp):
    path = hspy_declaring(tmp_path / "big.hspy", (30000, 30000))
    assert path.stat().st_size < 100_000
    return loading(path, lazy=True)


@case(DataTooLargeError, r"big\.hdf5 declares a 20000×20000 image")
def hdf5_declaring_20000_squared(tmp_path, mp):
    return loading(hspy_declaring(tmp_path / "big.hdf5", (20000, 20000)))


@case(DataTooLargeError, r"cube\.hspy declares a 512×512×4096 array.*SFW_MAX_VOXELS")
def hspy_cube_over_lazy_cap(tmp_path, mp):
    capped(mp, pixels=10_000_000, voxels=100_000_000)
    path = hspy_declaring(tmp_path / "cube.hspy", (512, 512, 4096), "uint16")
    np.save(tmp_path / "x.npy", IMG)
    return labelled(), lambda: sfw.load(tmp_path / "x.npy", eds_path=path)


@case(DataTooLargeError, r"big\.zspy declares a 2000×2000 image")
def zspy_over_cap(tmp_path, mp):
    import dask.array as da

    capped(mp)
    sig = io._hyperspy().signals.Signal2D(da.zeros((2000, 2000), chunks=500, dtype=np.float32)).as_lazy()
    sig.save(tmp_path / "big.zspy", overwrite=True)
    return loading(tmp_path / "big.zspy")


@case(DataTooLargeError, r"SFW_MAX_PIXELS='lots' is not a positive number")
def cap_set_to_nonsense(tmp_path, mp):
    mp.setenv("SFW_MAX_PIXELS", "lots")
    np.save(tmp_path / "ok.npy", IMG)
    return loading(tmp_path / "ok.npy")


@case(FileFormatError, r"other\.hdf5 with HyperSpy's reader.*Several RosettaSciIO readers.*"
                       r"HyperSpy's was chosen.*file_format")
def hdf5_from_another_program(tmp_path, mp):
    import h5py

    with h5py.File(tmp_path / "other.hdf5", "w") as f:
        f.create_dataset("measurement/raw", data=np.zeros((4, 4)))
    return loading(tmp_path / "other.hdf5")


# ----------------------------------------------------------------------------- uploads
@case(FileFormatError, r"x\.tif is empty \(0 bytes\)\. Upload the file again")
def empty_upload(tmp_path, mp):
    return labelled(), lambda: io.load_upload(("x.tif", b""))


@case(FileFormatError, r"over the 0 MB upload limit")
def oversized_upload(tmp_path, mp):
    return labelled(), lambda: io.load_upload(("x.npy", b"\x93NUMPY" + b"0" * 2000), max_bytes=100)


@case(FileFormatError, r"notes\.png.*not really a \.png")
def upload_of_text_named_png(tmp_path, mp):
    return labelled(), lambda: io.load_upload(("../../notes.png", b"not an image\n" * 50))


@case(DataTooLargeError, r"bomb\.npz declares a 2000×2000 image")
def upload_bomb(tmp_path, mp):
    import io as pyio

    capped(mp)
    buf = pyio.BytesIO()
    np.savez_compressed(buf, image=np.zeros((2000, 2000), np.uint8))
    return labelled(), lambda: io.load_upload(("bomb.npz", buf.getvalue()))


# ----------------------------------------------------------------------------- export paths
_BAD_EXPORT_PATHS = {
    "absolute": ("/tmp/x", "absolute path"),
    "home": ("~", r"home folder"),
    "home_of_user": ("~root/x", "home folder"),
    "dotdot": ("../x", r"'\.\.' is not allowed"),
    "dotdot_inside": ("a/../../x", r"'\.\.' is not allowed"),
    "backslash": ("..\\x", "backslash"),
    "drive": ("C:/x", "drive letter"),
    "empty": ("", "empty"),
    "blank": ("   ", "empty"),
    "only_dot": (".", "empty"),
    "nul": ("a\x00b", "control characters"),
    "newline": ("a\nb", "control characters"),
}
for _name, (_path, _match) in _BAD_EXPORT_PATHS.items():
    def _bad_export(tmp_path, mp, p=_path):
        return labelled(), lambda: confine_path(p, tmp_path / "root")

    _bad_export.__name__ = f"export_path_{_name}"
    case(ExportPathError, _match)(_bad_export)


@case(ExportPathError, r"symbolic link \('out'\)")
def export_through_a_symlinked_folder(tmp_path, mp):
    (tmp_path / "root").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "root" / "out").symlink_to(tmp_path / "elsewhere")
    return labelled(), lambda: confine_path("out/run1", tmp_path / "root")


@case(ExportPathError, r"symbolic link \('x_labels\.png'\)")
def export_onto_a_planted_symlink(tmp_path, mp):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "x_labels.png").symlink_to(tmp_path / "victim")
    return labelled(), lambda: confine_path("x_labels.png", tmp_path / "root")


# ----------------------------------------------------------------------------- colours, names
for _c in ["", "blue;}", "<img src=x onerror=alert(1)>", "#12", "#12345", "rgb(1,2,3)", "#GGGGGG",
           "javascript:alert(1)", "notacolour"]:
    def _bad_colour(tmp_path, mp, c=_c):
        return doing(lambda s: s.set_colour("fine", c))

    _bad_colour.__name__ = f"colour_{''.join(ch if ch.isalnum() else '_' for ch in _c) or 'empty'}"
    case(InputError, r"is not a colour.*hex code")(_bad_colour)


@case(InputError, r"colour must be text")
def colour_not_text(tmp_path, mp):
    return doing(lambda s: s.add_class("new", 0xFF0000))


_BAD_NAMES = {"none": None, "number": 5, "blank": "   ", "too_long": "x" * 101, "newline": "a\nb",
              "tab": "a\tb"}
_NAME_MATCH = {"none": "must be text", "number": "must be text", "blank": "non-empty name",
               "too_long": "at most 100 characters", "newline": "control characters",
               "tab": "control characters"}
for _name, _value in _BAD_NAMES.items():
    def _bad_class(tmp_path, mp, v=_value):
        return doing(lambda s: s.label(5, v))

    _bad_class.__name__ = f"class_name_{_name}"
    case(InputError, _NAME_MATCH[_name])(_bad_class)


@case(InputError, r"non-empty name")
def label_many_with_empty_class(tmp_path, mp):
    return doing(lambda s: s.label_many([3, 4], ""))


@case(InputError, r"non-empty name")
def rename_to_blank(tmp_path, mp):
    return doing(lambda s: s.rename_class("fine", "  "))


# ----------------------------------------------------------------------------- chip indices
for _name, _chip in {"fraction": 3.9, "true": True, "false": False, "none": None, "text": "3",
                     "nan": float("nan"), "inf": float("inf"), "np_fraction": np.float64(2.5)}.items():
    def _bad_chip(tmp_path, mp, c=_chip):
        return doing(lambda s: s.label(c, "fine"))

    _bad_chip.__name__ = f"chip_{_name}"
    case(InputError, r"chip must be a whole number")(_bad_chip)


@case(InputError, r"chip must be a whole number, not 1\.5")
def label_many_with_a_fraction(tmp_path, mp):
    return doing(lambda s: s.label_many([2, 1.5], "fine"))


@case(InputError, r"label_many needs a list of chip indices")
def label_many_with_a_string(tmp_path, mp):
    return doing(lambda s: s.label_many("12", "fine"))


@case(InputError, r"chip must be a whole number, not True")
def unlabel_true(tmp_path, mp):
    return doing(lambda s: s.unlabel(True))


@case(InputError, r"chip must be a whole number")
def toggle_fraction(tmp_path, mp):
    return doing(lambda s: s.toggle(0.5, "fine"))


# ----------------------------------------------------------------------------- parameters
_BAD_SETTINGS = {
    "chip_size_fraction": ({"chip_size": 2.7}, InputError, "chip_size must be a whole number, not 2.7"),
    "chip_size_nan": ({"chip_size": float("nan")}, InputError, "chip_size must be a whole number, not nan"),
    "chip_size_none": ({"chip_size": None}, InputError, r"chip_size must be a whole number.*default 32"),
    "chip_size_bool": ({"chip_size": True}, InputError, "chip_size must be a whole number, not True"),
    "chip_size_text": ({"chip_size": "32"}, InputError, "chip_size must be a whole number"),
    "stride_fraction": ({"stride": 2.7}, InputError, "stride must be a whole number, not 2.7"),
    "stride_bool": ({"stride": True}, InputError, "stride must be a whole number"),
    "stride_negative": ({"stride": -4}, GridError, "Stride -4 is out of range"),
    "eds_weight_nan": ({"eds_weight": float("nan")}, InputError, r"eds_weight must be a number in \[0, 1\]"),
    "eds_weight_bool": ({"eds_weight": True}, InputError, r"eds_weight must be a number"),
    "eds_weight_text": ({"eds_weight": "half"}, InputError, "or 'auto'"),
    "threshold_nan": ({"threshold": float("nan")}, InputError, "threshold is a normalised entropy"),
    "threshold_big": ({"threshold": 2}, InputError, "threshold is a normalised entropy"),
    "metric": ({"metric": "manhattan"}, InputError, "metric must be 'sqeuclidean' or 'cosine'"),
    "fusion": ({"fusion": "middle"}, InputError, "fusion must be 'early' or 'late'"),
    "edge": ({"edge": "wrap"}, InputError, "edge must be 'shift' or 'drop'"),
    "eds_window_reversed": ({"eds_window": [5.0, 1.0]}, InputError, "upper bound must exceed"),
    "eds_window_text": ({"eds_window": "0.2-5"}, InputError, r"eds_window must be \[low, high\]"),
    "eds_window_nan": ({"eds_window": [float("nan"), 5]}, InputError, r"eds_window must be \[low, high\]"),
    "eds_rebin_zero": ({"eds_rebin": 0}, InputError, "eds_rebin must be at least 1"),
    "eds_components_fraction": ({"eds_components": 2.5}, InputError, "eds_components must be a whole number"),
    "elements_string": ({"elements": "Fe"}, InputError, "elements must be a list"),
    "encoder_number": ({"encoder": 3}, InputError, "Unknown encoder 3"),
}
for _name, (_kw, _exc, _match) in _BAD_SETTINGS.items():
    def _new_session(tmp_path, mp, kw=_kw):
        return labelled(), lambda: sfw.Session(IMG, **{"chip_size": 16, **kw})

    _new_session.__name__ = f"new_session_{_name}"
    case(_exc, _match)(_new_session)

    def _configure(tmp_path, mp, kw=_kw):
        return doing(lambda s: s.configure(**kw))

    _configure.__name__ = f"configure_{_name}"
    if "chip_size_none" not in _name:
        case(_exc, _match)(_configure)


@case(InputError, r"Unknown setting\(s\) \['colour_map'\]")
def unknown_keyword(tmp_path, mp):
    return labelled(), lambda: sfw.Session(IMG, chip_size=16, colour_map="viridis")


# ----------------------------------------------------------------------------- session files
def session_file(tmp_path, edit):
    s = labelled()
    state = s.to_dict()
    edit(state)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(state))
    return s, lambda: sfw.Session.load(path, s.dataset)


@case(SessionFileError, r"malformed.*support chip must be a whole number, not True|support chip must be")
def session_support_chip_true(tmp_path, mp):
    return session_file(tmp_path, lambda st: st["supports"].append({"chip": True, "class": "fine"}))


@case(SessionFileError, r"support chip must be a whole number, not 2\.5")
def session_support_chip_fraction(tmp_path, mp):
    return session_file(tmp_path, lambda st: st["supports"].append({"chip": 2.5, "class": "fine"}))


@case(SessionFileError, r"saved with the box .* on this grid it is .*another grid")
def session_box_of_another_grid(tmp_path, mp):
    def edit(st):
        st["supports"][0]["box"] = [0, 0, 32, 32]

    return session_file(tmp_path, edit)


@case(SessionFileError, r"stride must be a whole number, not 2\.7.*Fix or remove")
def session_stride_fraction(tmp_path, mp):
    return session_file(tmp_path, lambda st: st["settings"].update(stride=2.7))


@case(SessionFileError, r"metric must be.*Fix or remove")
def session_unknown_metric(tmp_path, mp):
    return session_file(tmp_path, lambda st: st["settings"].update(metric="manhattan"))


@case(SessionFileError, r"eds_weight must be a number in \[0, 1\]; got nan")
def session_eds_weight_nan(tmp_path, mp):
    return session_file(tmp_path, lambda st: st["settings"].update(eds_weight=float("nan")))


@case(SessionFileError, r"is not a colour.*Fix or remove")
def session_colour_markup(tmp_path, mp):
    return session_file(tmp_path, lambda st: st["classes"][0].update(colour="red;background:url(x)"))


@case(SessionFileError, r"non-empty name")
def session_nameless_class(tmp_path, mp):
    return session_file(tmp_path, lambda st: st["supports"][0].update({"class": ""}))


@case(SessionFileError, r"malformed.*'settings' is not an object")
def session_settings_list(tmp_path, mp):
    return session_file(tmp_path, lambda st: st.update(settings=[1, 2]))


@case(SessionFileError, r"no integer 'schema_version'")
def session_schema_true(tmp_path, mp):
    return session_file(tmp_path, lambda st: st.update(schema_version=True))


@case(InputError, r"x\.npz: a session file is JSON.*x\.json")
def save_session_as_npz(tmp_path, mp):
    return doing(lambda s: s.save(tmp_path / "x.npz", arrays=True))


@case(SessionFileError, r"s\.npz does not belong to s\.json.*SHA-256")
def arrays_from_another_save(tmp_path, mp):
    from stem_fsl_widgets.batch import load_reference

    s = labelled()
    s.save(tmp_path / "s.json", arrays=True)
    other = labelled()
    other.label(0, "fine")
    other.save(tmp_path / "t.json", arrays=True)
    os.replace(tmp_path / "t.npz", tmp_path / "s.npz")
    return s, lambda: load_reference(tmp_path / "s.json")


def reference(tmp_path, edit_arrays=None, edit_state=None):
    from stem_fsl_widgets.batch import load_reference

    s = labelled()
    path = s.save(tmp_path / "s.json", arrays=True)
    if edit_arrays is not None:
        with np.load(tmp_path / "s.npz") as f:
            arrays = {k: f[k] for k in f.files}
        edit_arrays(arrays)
        np.savez(tmp_path / "s.npz", **arrays)
        state = json.loads(path.read_text())
        del state["arrays"]
        path.write_text(json.dumps(state))
    if edit_state is not None:
        state = json.loads(path.read_text())
        edit_state(state)
        path.write_text(json.dumps(state))
    return s, lambda: load_reference(path)


@case(SessionFileError, r"image_scale has zero or negative entries")
def reference_image_scale_zero(tmp_path, mp):
    return reference(tmp_path, lambda a: a["image_scale"].__setitem__(0, 0.0))


@case(SessionFileError, r"image_mean has NaN or infinite values")
def reference_image_mean_nan(tmp_path, mp):
    return reference(tmp_path, lambda a: a["image_mean"].__setitem__(1, np.nan))


@case(SessionFileError, r"image_raw has shape \(1, \d+\), not \(2, features\)")
def reference_image_raw_wrong_rows(tmp_path, mp):
    return reference(tmp_path, lambda a: a.update(image_raw=a["image_raw"][:1]))


@case(SessionFileError, r"image_weights has shape \(\d+,\) or negative entries")
def reference_negative_feature_weights(tmp_path, mp):
    return reference(tmp_path, lambda a: a["image_weights"].__setitem__(0, -1.0))


@case(SessionFileError, r"image_support_purity has shape \(2,\) or entries outside \(0, 1\]")
def reference_zero_support_purity(tmp_path, mp):
    return reference(tmp_path, lambda a: a["image_support_purity"].__setitem__(0, 0.0))


@case(SessionFileError, r"s\.json: eds_weight must be a number in \[0, 1\]; got nan")
def reference_eds_weight_nan(tmp_path, mp):
    return reference(tmp_path, edit_state=lambda st: st["settings"].update(eds_weight=float("nan")))


@case(SessionFileError, r"s\.json: metric must be")
def reference_unknown_metric(tmp_path, mp):
    return reference(tmp_path, edit_state=lambda st: st["settings"].update(metric="l1"))


@case(SessionFileError, r"s\.json: chip_size must be a whole number, not 0\.5")
def reference_chip_size_fraction(tmp_path, mp):
    return reference(tmp_path, edit_state=lambda st: st["settings"].update(chip_size=0.5))


# ----------------------------------------------------------------------------- writes and exports
@case(ExportPathError, r"too long")
def export_path_too_long(tmp_path, mp):
    return labelled(), lambda: confine_path("x" * 300, tmp_path / "root")


@case(WriteError, r"Cannot write .*s\.json \(.*\)\. Check that the folder exists")
def save_under_a_file(tmp_path, mp):
    (tmp_path / "file.txt").write_text("x")
    return doing(lambda s: s.save(tmp_path / "file.txt" / "s.json"))


@case(WriteError, r"Cannot write .*x_labels\.tif.*free space")
def maps_under_a_file(tmp_path, mp):
    from stem_fsl_widgets.export import write_maps

    (tmp_path / "file.txt").write_text("x")
    return doing(lambda s: write_maps(s.result, s.dataset, tmp_path / "file.txt" / "x", formats=("tif",)))


@case(InputError, r"Unknown export format 'jpg'; use png, tif or hspy")
def maps_in_an_unknown_format(tmp_path, mp):
    from stem_fsl_widgets.export import write_maps

    return doing(lambda s: write_maps(s.result, s.dataset, tmp_path / "x", formats=("jpg",)))


@case(InputError, r"Unknown export '\.\./x\.png'")
def download_of_an_unknown_kind(tmp_path, mp):
    from stem_fsl_widgets.export import export_bytes

    return doing(lambda s: export_bytes(s.result, s, "../x.png"))


@case(InputError, r"Nothing to export yet: label at least one chip in each of two classes")
def download_before_any_result(tmp_path, mp):
    from stem_fsl_widgets.export import export_bytes

    return doing(lambda s: export_bytes(None, s, "labels.tif"))


@case(SessionFileError, r"too big for a session file")
def session_file_too_big(tmp_path, mp):
    from stem_fsl_widgets import sessionfile

    mp.setattr(sessionfile, "MAX_SESSION_BYTES", 100)
    s = labelled()
    s.save(tmp_path / "s.json")
    return s, lambda: sfw.Session.load(tmp_path / "s.json", s.dataset)


@case(SessionFileError, r"malformed")
def session_support_not_an_object(tmp_path, mp):
    return session_file(tmp_path, lambda st: st["supports"].append([3, "fine"]))


@case(AutosaveError, r"could not be restored.*made on .*Nothing was deleted.*start over")
def autosave_of_other_data(tmp_path, mp):
    from stem_fsl_widgets.autosave import restore_autosave

    s = labelled()
    state = s.to_dict()
    state["dataset"]["content_hash"] = "0" * 16
    (tmp_path / "a.json").write_text(json.dumps(state))
    return s, lambda: restore_autosave(tmp_path / "a.json", s.dataset)


def batch_run(tmp_path, **kw):
    from stem_fsl_widgets.batch import segment_files

    s = labelled()
    s.save(tmp_path / "s.json", arrays=True)
    np.save(tmp_path / "i.npy", IMG)
    kw.setdefault("out_dir", tmp_path / "out")
    return s, lambda: segment_files(tmp_path / "s.json", [tmp_path / "i.npy"], progress=False, **kw)


@case(InputError, r"is a file, not a folder")
def batch_out_is_a_file(tmp_path, mp):
    (tmp_path / "o.txt").write_text("x")
    return batch_run(tmp_path, out_dir=tmp_path / "o.txt")


@case(InputError, r"Cannot connect to the Dask scheduler at 'nonsense://x'.*unknown address scheme")
def batch_bad_scheduler(tmp_path, mp):
    return batch_run(tmp_path, scheduler="nonsense://x")


@case(InputError, r"Cannot connect to the Dask scheduler at 'tcp://127\.0\.0\.1:1'.*is running")
def batch_scheduler_not_running(tmp_path, mp):
    return batch_run(tmp_path, scheduler="tcp://127.0.0.1:1")


@case(InputError, r"Cannot connect to the Dask scheduler at 'tcp://localhost'.*missing port")
def batch_scheduler_without_port(tmp_path, mp):
    return batch_run(tmp_path, scheduler="tcp://localhost")


@case(InputError, r"workers must be a whole number, not 1\.5")
def batch_fractional_workers(tmp_path, mp):
    return batch_run(tmp_path, workers=1.5)


@case(InputError, r"workers must be at least 1")
def batch_zero_workers(tmp_path, mp):
    return batch_run(tmp_path, workers=0)


@case(InputError, r"Unknown output format\(s\) \['bmp'\]")
def batch_unknown_format(tmp_path, mp):
    return batch_run(tmp_path, formats=("bmp",))


@case(FileFormatError, r"frame must be a whole number \(a frame index\), not 1\.5")
def frame_fraction(tmp_path, mp):
    tifffile.imwrite(tmp_path / "s.tif", np.stack([IMG] * 3), imagej=True)
    return loading(tmp_path / "s.tif", frame=1.5)


@case(FileFormatError, r"frame must be a whole number.*not True")
def frame_true(tmp_path, mp):
    tifffile.imwrite(tmp_path / "s.tif", np.stack([IMG] * 3), imagej=True)
    return loading(tmp_path / "s.tif", frame=True)


@case(FileFormatError, r"image=True: name the image by its index or title")
def image_selector_true(tmp_path, mp):
    np.save(tmp_path / "i.npy", IMG)
    return loading(tmp_path / "i.npy", image=True)


# ----------------------------------------------------------------------------- the test
def test_the_corpus_is_large_enough():
    from test_bad_inputs import CASES as OLD

    assert len(CASES) >= 100 and len(CASES) + len(OLD) >= 150


@pytest.mark.parametrize("setup, exc, match", CASES)
def test_hostile_input(setup, exc, match, tmp_path, monkeypatch):
    assert_refused_untouched(setup, exc, match, tmp_path, monkeypatch, must_work=True)
