"""Apply a saved session to many images, on Dask: same encoder, scalers and prototypes.

A session saved with ``Session.save(path, arrays=True)`` writes ``path`` (JSON: classes,
supports, settings) and ``path.with_suffix(".npz")`` (:meth:`Session.reference_arrays`: the
supports' raw image and EDS embeddings, the fitted scalers and EDS PCA basis, the energy
axis, the resolved EDS weight). That is all a new image needs: its chips are encoded with
the same encoder, scaled with the *saved* scalers (never refitted, so a feature means the
same thing on every image), and compared with prototypes of the saved supports.

Each image is one task: read the file, encode, classify, write the label/entropy maps and a
per-chip CSV. Tasks run on the local Dask scheduler (processes) or on an existing
``dask.distributed`` cluster; workers read and write the files themselves, so with a
remote cluster the paths must be visible to the workers (shared file system). A file that
fails becomes an error row in the summary; the other images are still segmented.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .chips import ChipGrid, chip_spectra
from .classify import Result, prototype_probabilities
from .dataset import Dataset
from .eds import EDSEncoder
from .encoders import encode_chips, get_encoder
from .errors import CalibrationError, InputError, NotEnoughSupportsError, SessionFileError, SFWError
from .fusion import Scaler

__all__ = ["Reference", "cli_segment", "load_reference", "segment_dataset", "segment_files"]

_FORMATS = ("tif", "tiff", "hspy", "png")


@dataclass
class Reference:
    """What classifying new images like a saved session needs (no pixels of its image).

    Attributes
    ----------
    settings : dict
        The session's :class:`~stem_fsl_widgets.session.Settings` as a dict.
    classes, colours : list of str
        Classes that have supports, in the session's order, and their colours.
    support_lab : ndarray of int, shape (S,)
        Class index of each support.
    image_support : ndarray, shape (S, Di)
        Raw (unscaled) image embeddings of the supports.
    image_mean, image_scale : ndarray, shape (Di,)
        The image scaler fitted on the reference image.
    eds : dict or None
        ``support`` (S, De) raw EDS embeddings, ``mean``/``scale`` of the EDS scaler,
        ``encoder_mean`` and ``components`` of the EDS encoder, ``energy_axis`` (E,) keV.
    eds_weight : float or None
        The weight the session used (resolved when it was "auto").
    pixel_size, pixel_unit : float or None, str
        The reference image's calibration (to warn when a new image differs).
    source : str
        Where the reference came from.
    """

    settings: dict
    classes: list[str]
    colours: list[str]
    support_lab: np.ndarray
    image_support: np.ndarray
    image_mean: np.ndarray
    image_scale: np.ndarray
    eds: dict | None = None
    eds_weight: float | None = None
    pixel_size: float | None = None
    pixel_unit: str = "px"
    source: str = ""

    @classmethod
    def from_session(cls, session) -> Reference:
        """Reference of an open :class:`~stem_fsl_widgets.session.Session` (no files)."""
        state = session.to_dict()
        return cls._build(state, session.reference_arrays(), "session in memory")

    @classmethod
    def _build(cls, state: dict, arrays: dict, source: str) -> Reference:
        try:
            settings = dict(state["settings"])
            colours = {str(c["name"]): str(c["colour"]) for c in state["classes"]}
            supports = {int(s["chip"]): str(s["class"]) for s in state["supports"]}
            ds = state.get("dataset", {})
        except (KeyError, TypeError, ValueError) as err:
            raise SessionFileError(f"{source}: malformed session ({type(err).__name__}: {err}).") from None
        order = [c for c in colours if c in supports.values()]
        order += [c for c in dict.fromkeys(supports.values()) if c not in order]
        if len(order) < 2:
            raise NotEnoughSupportsError(
                f"{source}: the session has supports in {len(order)} class(es); label chips of at "
                "least two classes before applying it to other images.")
        chips = np.asarray(arrays.get("support_chips", []), dtype=np.int64)
        if sorted(chips.tolist()) != sorted(supports):
            raise SessionFileError(
                f"{source}: the .npz arrays do not match the session's supports (saved at another "
                "moment). Open the session and save it again with Session.save(path, arrays=True).")
        lab = np.array([order.index(supports[int(i)]) for i in chips], dtype=np.int64)
        eds = None
        if "eds_raw" in arrays:
            eds = {"support": arrays["eds_raw"], "mean": arrays["eds_mean"],
                   "scale": arrays["eds_scale"], "encoder_mean": arrays["eds_encoder_mean"],
                   "components": arrays.get("eds_components"), "energy_axis": arrays["energy_axis"]}
        w = arrays.get("eds_weight")
        return cls(settings=settings, classes=order, colours=[colours.get(c, "#999999") for c in order],
                   support_lab=lab, image_support=np.asarray(arrays["image_raw"]),
                   image_mean=np.asarray(arrays["image_mean"]), image_scale=np.asarray(arrays["image_scale"]),
                   eds=eds, eds_weight=None if w is None else float(w),
                   pixel_size=ds.get("pixel_size"), pixel_unit=str(ds.get("pixel_unit") or "px"),
                   source=source)


def load_reference(session_path: str | os.PathLike) -> Reference:
    """Read a session JSON and its ``.npz`` reference arrays (never unpickled).

    Raises
    ------
    SessionFileError
        Missing, malformed, newer-schema or inconsistent files.
    NotEnoughSupportsError
        Fewer than two classes with supports.
    """
    from .session import _migrate

    path = Path(session_path)
    try:
        state = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise SessionFileError(f"No session file at {path}.") from None
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise SessionFileError(
            f"{path.name} is not a readable session JSON ({type(err).__name__}: {err}); "
            f"a backup may exist as {path.name}.bak.") from None
    state = _migrate(state)
    npz = path.with_suffix(".npz")
    if not npz.exists():
        raise SessionFileError(
            f"{npz.name} is missing: batch mode needs the session's reference arrays. Open the "
            f"session and save it with Session.save({str(path)!r}, arrays=True).")
    try:
        with np.load(npz, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as err:
        raise SessionFileError(
            f"{npz.name} cannot be read ({type(err).__name__}: {str(err)[:150]}); save the session "
            "again with arrays=True.") from None
    needed = {"support_chips", "image_raw", "image_mean", "image_scale"}
    if not needed <= set(arrays):
        raise SessionFileError(f"{npz.name} lacks {sorted(needed - set(arrays))}; save the session again "
                               "with arrays=True.")
    return Reference._build(state, arrays, path.name)


def _eds_features(ref: Reference, dataset: Dataset, grid: ChipGrid, notes: list[str]):
    """Scaled EDS embeddings of the chips and of the supports, or (None, None)."""
    if ref.eds is None:
        return None, None
    if not dataset.has_eds:
        notes.append("no EDS in this file: image features only")
        return None, None
    energy = np.asarray(ref.eds["energy_axis"], dtype=np.float64)
    new = np.asarray(dataset.energy_axis, dtype=np.float64)
    step = float(np.median(np.diff(energy))) if energy.size > 1 else 1.0
    if new.size != energy.size or np.max(np.abs(new - energy)) > 0.5 * step:
        raise CalibrationError(
            f"The EDS energy axis ({new.size} channels, {new[0]:.3g}–{new[-1]:.3g} keV) differs "
            f"from the session's ({energy.size} channels, {energy[0]:.3g}–{energy[-1]:.3g} keV). "
            "Acquire or rebin with the same dispersion and offset, or segment without EDS.")
    st = ref.settings
    enc = EDSEncoder(window=tuple(st.get("eds_window") or (None, None)), rebin=int(st.get("eds_rebin", 1)),
                     n_components=st.get("eds_components"), elements=tuple(st.get("elements") or ()),
                     mean_=np.asarray(ref.eds["encoder_mean"]), components_=ref.eds["components"])
    spectra = chip_spectra(dataset.eds, grid, dataset.eds_binning)
    scaler = Scaler(per_feature=False, mean_=ref.eds["mean"], scale_=ref.eds["scale"])
    return (scaler.transform(enc.transform(spectra, energy)),
            scaler.transform(ref.eds["support"]))


def segment_dataset(ref: Reference, dataset: Dataset, *, progress=None) -> Result:
    """Classify every chip of ``dataset`` with a saved session's prototypes.

    Parameters
    ----------
    ref : Reference
        From :func:`load_reference` or :meth:`Reference.from_session`.
    dataset : Dataset
        A new image (with EDS if the session used it).
    progress : callable, optional
        ``progress(fraction)`` while encoding.

    Returns
    -------
    Result
        No chip is a support; ``notes`` say when EDS was missing or the pixel size differs.

    Raises
    ------
    GridError
        The image is smaller than a chip.
    CalibrationError
        The EDS energy axis differs from the session's.
    SessionFileError
        The saved embeddings do not fit the encoder (the session file is inconsistent).
    """
    st = ref.settings
    grid = ChipGrid(*dataset.shape, int(st["chip_size"]), st.get("stride"), st.get("edge", "shift"))
    notes: list[str] = []
    if ref.pixel_size and dataset.pixel_size and dataset.pixel_unit == ref.pixel_unit:
        ratio = dataset.pixel_size / ref.pixel_size
        if abs(ratio - 1) > 0.05:
            notes.append(f"pixel size {dataset.pixel_size:g} {dataset.pixel_unit} differs from the "
                         f"session's {ref.pixel_size:g} by ×{ratio:.2f}: chips see other features; "
                         "resample the image to the session's pixel size for reliable results")
    raw = encode_chips(dataset.image, grid, get_encoder(st.get("encoder")), progress=progress)
    if raw.shape[1] != ref.image_support.shape[1]:
        raise SessionFileError(
            f"The session's saved embeddings have {ref.image_support.shape[1]} features but encoder "
            f"{st.get('encoder')!r} gives {raw.shape[1]}: the .npz is from other settings. Save the "
            "session again with arrays=True.")
    scaler = Scaler(per_feature=True, mean_=ref.image_mean, scale_=ref.image_scale)
    img, sup = scaler.transform(raw), scaler.transform(ref.image_support)
    eds, sup_eds = _eds_features(ref, dataset, grid, notes)
    w = None
    if eds is not None:
        saved = st.get("eds_weight", "auto")
        w = ref.eds_weight if ref.eds_weight is not None else (0.5 if saved == "auto" else float(saved))
    probs = prototype_probabilities(
        img, sup, ref.support_lab, len(ref.classes), eds_emb=eds, support_eds=sup_eds,
        eds_weight=w or 0.0, fusion=st.get("fusion", "early"), metric=st.get("metric", "sqeuclidean"))
    return Result(classes=list(ref.classes), colours=list(ref.colours), probabilities=probs,
                  is_support=np.zeros(grid.n_chips, dtype=bool),
                  threshold=float(st.get("threshold", 0.5)), grid=grid, eds_weight=w, notes=notes)


# --------------------------------------------------------------------------- one task
Entry = str | os.PathLike | tuple


def _entry_paths(entry: Entry) -> tuple[Path, Path | None]:
    if isinstance(entry, (tuple, list)):
        return Path(entry[0]), (Path(entry[1]) if len(entry) > 1 and entry[1] else None)
    return Path(entry), None


def _segment_one(ref: Reference, entry: Entry, prefix: str, formats: Sequence[str],
                 load_kwargs: dict) -> dict:
    """Load, segment and write one image; never raises (errors become the row's status)."""
    import dask

    from .export import write_chip_csv, write_maps
    from .io import load

    path, eds_path = _entry_paths(entry)
    row: dict[str, Any] = {"file": str(path), "name": Path(prefix).name, "status": "ok"}
    try:
        # A lazy EDS cube is summed here, in this worker: never ship its slabs to the cluster.
        with dask.config.set(scheduler="synchronous"):
            ds = load(path, eds_path=eds_path, **load_kwargs)
            result = segment_dataset(ref, ds)
            write_maps(result, ds, prefix, formats=formats)
            write_chip_csv(f"{prefix}_chips.csv", result)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # one bad file must not stop the batch
        msg = str(err) if isinstance(err, SFWError) else f"{type(err).__name__}: {err}"
        row.update(status="error", error=msg.replace("\n", " "))
        return row
    row.update(n_chips=result.grid.n_chips, pixel_size=ds.pixel_size, pixel_unit=ds.pixel_unit,
               eds_weight="" if result.eds_weight is None else round(result.eds_weight, 4))
    row.update({f"fraction_{c}": round(f, 6) for c, f in result.fractions.items()})
    row["uncertain_fraction"] = round(result.uncertain_fraction, 6)
    row["notes"] = "; ".join(result.notes + list(ds.metadata.get("notes", [])))
    return row


def _prefixes(entries: Sequence[Entry], out_dir: Path) -> list[str]:
    """Output prefix per image: the file stem, made unique (a_1, a_2) when stems repeat."""
    seen: dict[str, int] = {}
    out = []
    for entry in entries:
        stem = _entry_paths(entry)[0].stem
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        out.append(str(out_dir / (stem if n == 0 else f"{stem}_{n + 1}")))
    return out


def _expand(files: Sequence[Entry]) -> list[Entry]:
    """Expand shell-style patterns the shell did not (Windows, or quoted arguments)."""
    out: list[Entry] = []
    for f in files:
        if isinstance(f, (str, os.PathLike)) and not Path(f).exists() and glob.has_magic(str(f)):
            out += sorted(glob.glob(str(f)))
        else:
            out.append(f)
    return out


def _run_local(ref, entries, prefixes, formats, load_kwargs, scheduler, workers, bar) -> list[dict]:
    import dask
    from dask.callbacks import Callback

    class _Tick(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if isinstance(result, dict) and "status" in result:
                bar.update(1)

    ref_d = dask.delayed(ref, traverse=False)
    tasks = [dask.delayed(_segment_one, pure=False)(ref_d, e, p, formats, load_kwargs)
             for e, p in zip(entries, prefixes, strict=True)]
    with _Tick():
        return list(dask.compute(*tasks, scheduler=scheduler, num_workers=workers))


def _run_distributed(ref, entries, prefixes, formats, load_kwargs, client, bar) -> list[dict]:
    from distributed import as_completed

    ref_f = client.scatter(ref, broadcast=True)
    futures = [client.submit(_segment_one, ref_f, e, p, formats, load_kwargs, pure=False)
               for e, p in zip(entries, prefixes, strict=True)]
    for _ in as_completed(futures):
        bar.update(1)
    return client.gather(futures)


def segment_files(
    session_path: str | os.PathLike | Any,
    files: Sequence[Entry],
    out_dir: str | os.PathLike,
    *,
    scheduler: str | Any | None = None,
    workers: int | None = None,
    formats: Sequence[str] = ("tif", "hspy"),
    progress: bool = True,
    load_kwargs: dict | None = None,
) -> list[dict]:
    """Segment many images with a saved session and write maps, per-chip CSVs and a summary.

    Parameters
    ----------
    session_path : str, Path or Session
        A session JSON saved with ``Session.save(path, arrays=True)`` (its ``.npz`` beside
        it), or an open :class:`~stem_fsl_widgets.session.Session`.
    files : sequence of paths, or of (image_path, eds_path) pairs
        Images readable by :func:`stem_fsl_widgets.load`; glob patterns are expanded.
    out_dir : str or Path
        Created if needed. Per image ``<stem>_labels.*``, ``<stem>_entropy.*`` (TIFF with
        ImageJ calibration, ``.hspy`` with calibrated axes and class names), and
        ``<stem>_chips.csv``; over all images ``summary.csv``.
    scheduler : str or distributed.Client, optional
        None: the local Dask scheduler with processes. "threads" or "synchronous": those
        local schedulers. An address ("tcp://host:8786") or a ``distributed.Client``: an
        existing cluster (file paths must be visible to its workers).
    workers : int, optional
        Local worker processes (default: the number of cores); ignored on a cluster.
    formats : sequence of {"tif", "hspy", "png"}
        Map formats to write.
    progress : bool
        Show a tqdm progress bar (one tick per image).
    load_kwargs : dict, optional
        Passed to :func:`stem_fsl_widgets.load` for every file (``image=``, ``eds=``, ...).

    Returns
    -------
    list of dict
        One row per file, in input order: ``file``, ``name``, ``status`` ("ok" or "error"),
        ``error``, ``n_chips``, ``fraction_<class>``, ``uncertain_fraction``, ``eds_weight``,
        ``notes``. The same rows are written to ``summary.csv``.

    Raises
    ------
    SessionFileError, NotEnoughSupportsError
        The session cannot be applied (before any image is touched).
    InputError
        Unknown format, no files, or workers < 1.
    """
    from tqdm.auto import tqdm

    from .export import write_summary_csv

    if hasattr(session_path, "reference_arrays"):
        ref = Reference.from_session(session_path)
    else:
        ref = load_reference(session_path)
    formats = tuple(str(f).lower().lstrip(".") for f in formats)
    bad = [f for f in formats if f not in _FORMATS]
    if bad:
        raise InputError(f"Unknown output format(s) {bad}; choose from tif, hspy, png.")
    if workers is not None and int(workers) < 1:
        raise InputError(f"workers must be at least 1, not {workers}.")
    entries = _expand(list(files))
    if not entries:
        raise InputError("No input files given (or no file matches the pattern).")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prefixes = _prefixes(entries, out)
    load_kwargs = dict(load_kwargs or {})
    with tqdm(total=len(entries), desc="segmenting", unit="image", disable=not progress) as bar:
        if scheduler is None or scheduler in ("processes", "threads", "synchronous", "sync"):
            rows = _run_local(ref, entries, prefixes, formats, load_kwargs,
                              scheduler or "processes", workers, bar)
        else:
            from distributed import Client

            own = not isinstance(scheduler, Client)
            client = Client(scheduler) if own else scheduler
            try:
                rows = _run_distributed(ref, entries, prefixes, formats, load_kwargs, client, bar)
            finally:
                if own:
                    client.close()
    write_summary_csv(out / "summary.csv", rows)
    return rows


# --------------------------------------------------------------------------- command line
def _selector(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.lstrip("-").isdigit() else value


def cli_segment(argv: list[str] | None = None) -> int:
    """``stem-fsl segment SESSION.json FILES... --out DIR [--scheduler ADDR] [--workers N]``.

    Returns
    -------
    int
        0 when every image was segmented, 1 when some failed (listed on stderr), 2 when the
        session or the arguments are unusable.
    """
    p = argparse.ArgumentParser(
        prog="stem-fsl segment",
        description="Apply a saved session (SESSION.json + SESSION.npz, written by "
                    "Session.save(path, arrays=True)) to many images.")
    p.add_argument("session", help="session JSON saved with arrays=True")
    p.add_argument("files", nargs="+", help="images (.dm4, .emd, .bcf, .tif, .hspy, .npz, ...); globs ok")
    p.add_argument("--out", "-o", required=True, help="output folder")
    p.add_argument("--scheduler", help="dask.distributed address, e.g. tcp://host:8786 "
                                       "(default: local processes)")
    p.add_argument("--workers", type=int, help="local worker processes (default: all cores)")
    p.add_argument("--formats", nargs="+", default=["tif", "hspy"], choices=["tif", "hspy", "png"],
                   help="map formats (default: tif hspy)")
    p.add_argument("--image", help="image to use in multi-signal files: index or title (e.g. HAADF)")
    p.add_argument("--eds", help="EDS cube to use: index or title; 'none' to ignore EDS")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:  # -h or a usage error: argparse has printed the message
        return int(exc.code or 0)
    load_kwargs = {k: _selector(v) for k, v in (("image", args.image), ("eds", args.eds)) if v is not None}
    try:
        rows = segment_files(args.session, args.files, args.out, scheduler=args.scheduler,
                             workers=args.workers, formats=args.formats,
                             progress=not args.no_progress, load_kwargs=load_kwargs)
    except SFWError as err:
        print(f"stem-fsl segment: {err}", file=sys.stderr)
        return 2
    failed = [r for r in rows if r["status"] != "ok"]
    for r in failed:
        print(f"failed: {r['file']}: {r['error']}", file=sys.stderr)
    print(f"{len(rows) - len(failed)} of {len(rows)} images segmented; summary: "
          f"{Path(args.out) / 'summary.csv'}")
    return 1 if failed else 0
