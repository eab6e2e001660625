"""Hosting behaviour (issue 10) beyond single bad inputs: faults during autosave, two writers,
restoring, temp files, exports as bytes, CSV formulas, batch names/resume, CLI errors, culling."""

from __future__ import annotations

import csv
import errno
import io as pyio
import json
import os
import subprocess
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scenes import two_phase_scene

import stem_fsl_widgets as sfw
from stem_fsl_widgets import autosave, batch, export, io, paths
from stem_fsl_widgets.atomic import atomic_path, atomic_write, temporary_folder
from stem_fsl_widgets.colours import normalise_colour
from stem_fsl_widgets.errors import AutosaveError, InputError, SessionFileError

IMG, CUBE, ENERGY, _ = two_phase_scene(3)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def session():
    s = sfw.Session(sfw.Dataset(IMG, eds=CUBE, energy_axis=ENERGY, eds_binning=4, name="scan 1"),
                    chip_size=16)
    s.label(int(s.grid.chip_at(10, 20)), "fine")
    s.label(int(s.grid.chip_at(10, 100)), "coarse")
    return s


def free_chip(s, k=0):
    return [i for i in range(s.n_chips) if i not in s.supports][k]


# ----------------------------------------------------------------------------- autosave faults
def _disk_full(fd):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("fault", ["disk_full", "folder_is_a_file", "permission"])
def test_a_failed_autosave_keeps_the_label_redraws_and_retries(session, tmp_path, monkeypatch, fault):
    target = tmp_path / "auto" / "s.json"
    session.autosave = target
    seen = []
    session.on_change(lambda s: seen.append(dict(s.supports)))
    if fault == "disk_full":
        monkeypatch.setattr(os, "fsync", _disk_full)
    elif fault == "folder_is_a_file":
        target.parent.write_text("not a folder")
    else:
        def denied(*a, **k):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", denied)
    chip = free_chip(session)
    result = session.label(chip, "fine")
    assert session.supports[chip] == "fine" and result is session.result  # the label stands
    assert seen and seen[-1][chip] == "fine"  # views were told to redraw
    assert session.autosave_error.startswith("Autosave is off")
    assert "tries again at the next change" in session.autosave_error
    assert not [p for p in tmp_path.rglob("*.tmp")]
    monkeypatch.undo()
    if fault == "folder_is_a_file":
        target.parent.unlink()
    session.label(free_chip(session), "coarse")  # the next change retries, and succeeds
    assert session.autosave_error is None
    assert json.loads(target.read_text())["supports"][-1]["class"] in ("fine", "coarse")
    assert sfw.Session.load(target, session.dataset).supports == session.supports


def test_two_writers_on_one_autosave_are_detected_not_overwritten(session, tmp_path):
    path = tmp_path / "auto.json"
    session.autosave = path
    session.label(free_chip(session), "fine")
    other = sfw.Session.load(path, session.dataset, autosave=path)  # a second tab
    session.label(free_chip(session), "coarse")  # the first tab keeps working
    assert session.autosave_error is None
    mine = json.loads(path.read_text())
    chip = free_chip(other, 3)
    other.label(chip, "fine")  # the second tab's change would overwrite the first's
    assert chip in other.supports  # its label stands in its window
    assert "another window, tab or user saved" in other.autosave_error
    assert json.loads(path.read_text())["supports"] == mine["supports"]  # nothing overwritten
    other.take_over_autosave()  # the user chooses to keep this window's work
    assert other.autosave_error is None
    assert {s["chip"] for s in json.loads(path.read_text())["supports"]} == set(other.supports)


def test_a_fresh_session_never_overwrites_other_work(session, tmp_path):
    path = tmp_path / "auto.json"
    session.save(path)
    before = path.read_bytes()
    fresh = sfw.Session(session.dataset, chip_size=16, autosave=path)
    fresh.label(0, "a")
    assert "already holds other work" in fresh.autosave_error
    assert path.read_bytes() == before and not list(tmp_path.glob("auto-*"))


def test_a_truncated_autosave_is_replaced_not_called_a_writer(session, tmp_path):
    path = tmp_path / "auto.json"
    session.autosave = path
    session.label(free_chip(session), "fine")
    path.write_bytes(path.read_bytes()[:30])  # a crash mid-copy
    session.label(free_chip(session), "coarse")
    assert session.autosave_error is None
    assert sfw.Session.load(path, session.dataset).supports == session.supports


# ----------------------------------------------------------------------------- restoring
def test_autosave_paths_are_per_user_and_per_data(session, tmp_path, monkeypatch):
    monkeypatch.setenv("SFW_AUTOSAVE_DIR", str(tmp_path))
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    a = autosave.autosave_path(session.dataset, user="tab-a")
    b = autosave.autosave_path(session.dataset, user="tab-b")
    assert a != b and a.parent.parent == tmp_path and a.name == f"{session.dataset.content_hash}.json"
    monkeypatch.setenv("JUPYTERHUB_USER", "anna")
    assert autosave.autosave_path(session.dataset, user="tab-a").parent == tmp_path / "anna"
    monkeypatch.setenv("JUPYTERHUB_USER", "../../etc")
    assert autosave.autosave_path(session.dataset).parent.parent == tmp_path  # never escapes


def test_user_keys_are_safe_and_distinct(monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    keys = {paths.user_key(x) for x in ["a/b", "a_b", "a b", "ab", "../x", "x"]}
    assert len(keys) == 6 and all(paths.safe_name(k, max_len=80) == k for k in keys)
    assert paths.user_key(None)  # the OS user


def test_restore_says_what_came_back_and_start_over_sets_it_aside(session, tmp_path):
    path = tmp_path / "u" / "h.json"
    assert autosave.restore_autosave(path, session.dataset) is None
    session.autosave = path
    session.label(free_chip(session), "fine")
    restored, info = autosave.restore_autosave(path, session.dataset)
    assert restored.supports == session.supports and restored.autosave == path
    assert info.n_labels == 3 and info.n_classes == 2
    assert info.message == f"Restored 3 labels saved {info.saved_at:%H:%M}."
    restored.label(free_chip(restored), "coarse")  # it keeps autosaving to the same file
    assert restored.autosave_error is None and len(json.loads(path.read_text())["supports"]) == 4
    state = json.loads(path.read_text())
    state["settings"]["encoder"] = "resnet_weights_gone"
    path.write_text(json.dumps(state))
    gone = r"could not be restored.*Unknown encoder.*Nothing was deleted.*start over"
    with pytest.raises(AutosaveError, match=gone):
        autosave.restore_autosave(path, session.dataset)
    moved = autosave.start_over(path)
    assert not path.exists() and json.loads(moved.read_text())["supports"] == state["supports"]
    assert autosave.restore_autosave(path, session.dataset) is None
    assert not list(path.parent.glob("h-*"))  # no -2, -3 files


# ----------------------------------------------------------------------------- session files
def test_arrays_are_written_first_and_named_by_hash(session, tmp_path, monkeypatch):
    path = session.save(tmp_path / "s.json", arrays=True)
    state = json.loads(path.read_text())
    assert state["arrays"]["file"] == "s.npz"
    import hashlib

    assert state["arrays"]["sha256"] == hashlib.sha256((tmp_path / "s.npz").read_bytes()).hexdigest()
    assert batch.load_reference(path).classes == ["fine", "coarse"]
    # A kill after the arrays but before the JSON: the pair disagrees, and it is said.
    session.label(free_chip(session), "fine")
    real = sfw.session.atomic_write

    def killed(p, data):
        if str(p).endswith(".json"):
            raise KeyboardInterrupt
        return real(p, data)

    monkeypatch.setattr(sfw.session, "atomic_write", killed)
    with pytest.raises(KeyboardInterrupt):
        session.save(path, arrays=True)
    monkeypatch.undo()
    with pytest.raises(SessionFileError, match="does not belong to s.json"):
        batch.load_reference(path)


def test_colour_names_are_saved_as_hex_and_reload(session, tmp_path):
    session.set_colour("fine", "red")
    session.add_class("oxide", "DarkOrange")
    assert session.classes["fine"] == "#FF0000" and session.classes["oxide"] == "#FF8C00"
    path = session.save(tmp_path / "s.json")
    again = sfw.Session.load(path, session.dataset)
    assert again.classes == session.classes


@pytest.mark.parametrize("text, hexa", [("red", "#FF0000"), ("#abc", "#AABBCC"), (" E69F00 ", "#E69F00"),
                                        ("SteelBlue", "#4682B4"), ("#0072b2", "#0072B2")])
def test_normalise_colour(text, hexa):
    assert normalise_colour(text) == hexa


def test_old_files_with_colour_names_still_open(session, tmp_path):
    state = session.to_dict()
    state["classes"][0]["colour"] = "green"
    again = sfw.Session.from_dict(state, session.dataset)
    assert again.classes["fine"] == "#008000"


# ----------------------------------------------------------------------------- temp files
def test_hspy_export_ignores_a_planted_temp_symlink(session, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    for name in (".x_labels.hspy.tmp.hspy", ".x_entropy.hspy.tmp.hspy"):  # the old predictable names
        (out / name).symlink_to(victim)
    paths_ = export.write_maps(session.result, session.dataset, out / "x", formats=("hspy",))
    assert victim.read_text() == "precious"
    assert [p.name for p in paths_] == ["x_labels.hspy", "x_entropy.hspy"]
    assert io._hyperspy().load(paths_[0]).data.shape == IMG.shape


def test_atomic_writes_replace_a_symlink_instead_of_writing_through_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "a.csv").symlink_to(victim)
    atomic_write(tmp_path / "a.csv", b"new")
    assert victim.read_text() == "precious" and (tmp_path / "a.csv").read_bytes() == b"new"
    assert not (tmp_path / "a.csv").is_symlink()
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "victim.txt"]


def test_upload_folders_are_deleted_however_reading_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    buf = pyio.BytesIO()
    np.save(buf, IMG)
    ds = io.load_upload(("C:\\Users\\me\\scan.npy", buf.getvalue()))
    assert ds.name == "scan" and ds.shape == IMG.shape
    with pytest.raises(sfw.FileFormatError):
        io.load_upload(("bad.tif", b"not a tiff" * 20))
    with temporary_folder() as folder:
        assert folder.parent == tmp_path and (folder.stat().st_mode & 0o777) == 0o700
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- export confinement
@pytest.mark.parametrize("typed, rel", [("run1/sample", "run1/sample"), ("./a", "a"), ("a//b", "a/b"),
                                        ("x.tif", "x.tif")])
def test_confine_path_accepts_names_inside_the_root(tmp_path, typed, rel):
    got = paths.confine_path(typed, tmp_path)
    assert got == tmp_path / rel


def test_export_root_is_per_user(tmp_path, monkeypatch):
    monkeypatch.setenv("SFW_EXPORT_ROOT", str(tmp_path))
    monkeypatch.setenv("JUPYTERHUB_USER", "bob")
    assert paths.export_root() == tmp_path / "bob"
    assert paths.confine_path("r/x").parent == tmp_path / "bob" / "r"


# ----------------------------------------------------------------------------- exports as bytes
def test_every_export_as_bytes_and_a_zip_without_writing(session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for what in export.EXPORTS:
        name, data = export.export_bytes(session.result, session, what)
        assert name == f"scan_1_{what}" and data
    _, png = export.export_bytes(session.result, session, "labels.png")
    from PIL import Image

    width, height = Image.open(pyio.BytesIO(png)).size
    assert width == IMG.shape[1] and IMG.shape[0] < height < IMG.shape[0] + 60  # the map, then its legend
    _, ent = export.export_bytes(session.result, session, "entropy.png")
    picture = np.asarray(Image.open(pyio.BytesIO(ent)).convert("L"))
    bar = picture[IMG.shape[0] + 5 : IMG.shape[0] + 10, 5 : IMG.shape[1] // 2 - 1].mean(axis=0)
    assert bar[0] < 30 and bar[-1] > 225  # the colour bar runs from black (sure) to white (unsure)
    _, tif = export.export_bytes(session.result, session, "labels.tif")
    np.testing.assert_array_equal(tifffile.imread(pyio.BytesIO(tif)), session.result.label_map)
    name, data = export.export_zip(session.result, session)
    assert name == "scan_1_export.zip"
    with zipfile.ZipFile(pyio.BytesIO(data)) as zf:
        assert sorted(zf.namelist()) == sorted(f"scan_1_{w}" for w in (
            "labels.png", "entropy.png", "labels.tif", "entropy.tif", "chips.csv", "session.json"))
        assert json.loads(zf.read("scan_1_session.json"))["supports"]
    assert list(tmp_path.iterdir()) == []  # nothing was written on the server
    with pytest.raises(InputError, match="Unknown export"):
        export.export_bytes(session.result, session, "../../x.png")


def test_banded_colouring_equals_the_whole_image_formula(session, monkeypatch):
    whole = export.colourise(session.result.label_map, session.result.colours, image=IMG)
    monkeypatch.setattr(export, "BAND", 7)
    assert np.array_equal(export.colourise(session.result.label_map, session.result.colours, image=IMG),
                          whole)


# ----------------------------------------------------------------------------- CSV formulas
@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://x\")", "+SUM(A1)", "-2+3", "@cmd"])
def test_formula_class_names_are_quoted_in_every_csv(session, tmp_path, name):
    session.rename_class("fine", name)
    export.write_chip_csv(tmp_path / "c.csv", session.result)
    with open(tmp_path / "c.csv", newline="") as fh:
        header, *rows = list(csv.reader(fh))
    assert f"p_{name}" in header  # "p_" makes the header harmless already
    cells = [c for r in rows for c in r]
    assert "'" + name in cells and name not in cells
    assert not [c for c in cells if c.startswith(("=", "+", "@")) or (c.startswith("-") and _nan(c))]
    export.write_summary_csv(tmp_path / "s.csv", [{"file": "=cmd|' /C calc'!A0", "fraction": -0.25,
                                                    f"fraction_{name}": 0.5, name: 1}])
    with open(tmp_path / "s.csv", newline="") as fh:
        header, row = list(csv.reader(fh))
    assert row[0].startswith("'=") and row[1] == "-0.25" and header[-1] == "'" + name


def _nan(c):
    try:
        float(c)
        return False
    except ValueError:
        return True


# ----------------------------------------------------------------------------- batch
@pytest.fixture
def saved(session, tmp_path):
    return session.save(tmp_path / "ref.json", arrays=True)


def _inputs(tmp_path, rel):
    out = []
    for r in rel:
        p = tmp_path / r
        p.parent.mkdir(parents=True, exist_ok=True)
        np.save(p, IMG + len(out))
        out.append(p)
    return out


def test_same_stems_never_overwrite_each_other(saved, tmp_path):
    files = _inputs(tmp_path, ["a/x.npy", "b/x.npy", "a/x_2.npy", "b/X.npy"])
    rows = batch.segment_files(saved, files, tmp_path / "out", scheduler="synchronous", progress=False,
                               formats=("tif",))
    names = [r["name"] for r in rows]
    assert len({n.lower() for n in names}) == 4 and names[0] == "x" and names[2] == "x_2"
    assert all(r["status"] == "ok" for r in rows)
    assert len(list((tmp_path / "out").glob("*_chips.csv"))) == 4


def test_summary_is_written_as_the_run_goes_and_resume_skips_done(saved, tmp_path, monkeypatch):
    files = _inputs(tmp_path, ["i0.npy", "i1.npy", "i2.npy"])
    out = tmp_path / "out"
    real = batch._segment_one
    calls = []

    def interrupted(ref, entry, prefix, *a):
        calls.append(Path(prefix).name)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the second image
        return real(ref, entry, prefix, *a)

    monkeypatch.setattr(batch, "_segment_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        batch.segment_files(saved, files, out, scheduler="synchronous", progress=False, formats=("tif",))
    with open(out / "summary.csv", newline="") as fh:
        done = [r["name"] for r in csv.DictReader(fh)]
    assert done == calls[:1]  # what finished is there
    monkeypatch.setattr(batch, "_segment_one", lambda *a: (calls.append(Path(a[2]).name), real(*a))[1])
    calls.clear()
    rows = batch.segment_files(saved, files, out, scheduler="synchronous", progress=False,
                               formats=("tif",), resume=True)
    assert sorted(calls) == sorted({"i0", "i1", "i2"} - set(done))  # finished images are skipped
    assert [r["name"] for r in rows] == ["i0", "i1", "i2"]
    with open(out / "summary.csv", newline="") as fh:
        assert [r["status"] for r in csv.DictReader(fh)] == ["ok"] * 3


def _cli(args, capsys):
    code = batch.cli_segment(args)
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("extra, match", [
    (["--scheduler", "nonsense://nowhere"], "Cannot connect to the Dask scheduler"),
    (["--workers", "0"], "workers must be at least 1"),
    (["--formats", "jpg"], "invalid choice: 'jpg'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--workers", "two"], "invalid int value"),
])
def test_cli_errors_are_one_line_and_exit_2(saved, tmp_path, capsys, extra, match):
    files = [str(p) for p in _inputs(tmp_path, ["i.npy"])]
    code, err = _cli([str(saved), *files, "--out", str(tmp_path / "o"), "--no-progress", *extra], capsys)
    assert code == 2 and match in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_out_naming_a_file_and_missing_out(saved, tmp_path, capsys):
    files = [str(p) for p in _inputs(tmp_path, ["i.npy"])]
    (tmp_path / "file.txt").write_text("x")
    code, err = _cli([str(saved), *files, "--out", str(tmp_path / "file.txt")], capsys)
    assert code == 2 and "is a file, not a folder" in err and len(err.splitlines()) == 1
    code, err = _cli([str(saved), *files], capsys)
    assert code == 2 and "--out" in err and len(err.splitlines()) == 1


def test_cli_reference_validated_as_strictly_as_session(saved, tmp_path, capsys):
    state = json.loads(saved.read_text())
    state["settings"]["eds_weight"] = float("nan")
    saved.write_text(json.dumps(state))
    code, err = _cli([str(saved), "x.npy", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "eds_weight must be a number in [0, 1]; got nan" in err


@pytest.mark.parametrize("argv, match", [(["nosuch"], "invalid choice"),
                                         (["demo", "--eds-weight", "lots"], "--eds-weight must be"),
                                         (["demo", "-k", "x"], "invalid int value")])
def test_main_cli_errors_are_one_line(argv, match, capsys, tmp_path, monkeypatch):
    from stem_fsl_widgets.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1


# ----------------------------------------------------------------------------- kernels
def test_dashboard_culls_idle_kernels():
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager

    from stem_fsl_widgets.cli import VOILA_CULLING

    traits = MappingKernelManager.class_trait_names()
    for flag in VOILA_CULLING:
        cls, rest = flag.lstrip("-").split(".", 1)
        assert cls == "MappingKernelManager" and rest.split("=")[0] in traits
    make = subprocess.run(["make", "-n", "dashboard"], cwd=ROOT, capture_output=True, text=True)
    line = [x for x in make.stdout.splitlines() if "voila" in x][-1]
    assert "cull_idle_timeout=300" in line and "cull_interval=60" in line and "cull_connected=False" in line


def test_a_bad_scheduler_address_leaves_no_default_client(saved, tmp_path):
    import dask.base

    for address in ("nonsense://x", "tcp://127.0.0.1:1"):
        with pytest.raises(InputError, match="Cannot connect"):
            batch.segment_files(saved, [tmp_path / "x.npy"], tmp_path / "o", scheduler=address,
                                progress=False)
    assert dask.base.get_scheduler() is None  # later dask work is not sent to a dead client


def test_lazily_probed_files_are_closed_after_reading(tmp_path):
    io._hyperspy().signals.Signal2D(IMG).save(tmp_path / "a.hspy")
    sfw.load(tmp_path / "a.hspy")
    os.replace(tmp_path / "a.hspy", tmp_path / "b.hspy")  # any handle left open would keep it busy
    fds = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
           if os.path.exists(f"/proc/self/fd/{fd}")] if os.path.isdir("/proc/self/fd") else []
    assert not [f for f in fds if f.endswith(("a.hspy", "b.hspy"))]


def test_io_and_export_do_not_import_session():
    # The old loop eds -> elements -> io -> session -> eds went through io's atomic writer.
    for name in ("io.py", "export.py", "atomic.py", "limits.py", "paths.py", "colours.py"):
        text = (ROOT / "stem_fsl_widgets" / name).read_text()
        assert "from .session" not in text and "import session" not in text, name
