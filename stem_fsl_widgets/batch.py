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
import csv
import glob
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .chips import ChipGrid, chip_spectra
from .classify import Result, chip_probabilities
from .colours import normalise_colour
from .dataset import Dataset
from .encoders import encode_chips, get_encoder
from .errors import CalibrationError, InputError, NotEnoughSupportsError, SessionFileError, SFWError
from .fusion import Scaler
from .sessionfile import read_arrays, read_state
from .settings import Settings, as_whole_number, make_eds_encoder, make_grid, settings_from_dict

__all__ = ["Reference", "cli_segment", "load_reference", "pixel_refiner", "segment_dataset",
           "segment_files", "summary_fields"]

_FORMATS = ("tif", "tiff", "hspy", "png")

#: On runs of more than 200 images, ``summary.csv`` is rewritten at most this often (seconds).
SUMMARY_EVERY_S = 5.0


@dataclass
class Reference:
    """What classifying new images like a saved session needs (no pixels of its image).

    Attributes
    ----------
    settings : Settings
        The session's settings, validated as strictly as :class:`~stem_fsl_widgets.session.Session`
        validates them.
    classes, colours : list of str
        Classes that have supports, in the session's order, and their colours.
    support_lab : ndarray of int, shape (S,)
        Class index of each support.
    image_support : ndarray, shape (S, Di)
        Raw (unscaled) image embeddings of the supports.
    image_mean, image_scale : ndarray, shape (Di,)
        The image scaler fitted on the reference image.
    image_weights : ndarray, shape (Di,), or None
        Per-feature weights the session applied to scaled image features (None: all 1).
    image_support_scaled : ndarray, shape (S, Di), or None
        The supports' features as the session compared them (scaled, view-averaged,
        weighted); None: the scaled ``image_support``.
    image_support_purity : ndarray, shape (S,), or None
        Each support's weight in its class prototype (see :func:`.suggest.support_purity`);
        None (sessions saved before it existed): all 1.
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

    settings: Settings
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
    image_weights: np.ndarray | None = None
    image_support_scaled: np.ndarray | None = None
    image_support_purity: np.ndarray | None = None

    @classmethod
    def from_session(cls, session) -> Reference:
        """Reference of an open :class:`~stem_fsl_widgets.session.Session` (no files)."""
        state = session.to_dict()
        return cls._build(state, session.reference_arrays(), "session in memory")

    @classmethod
    def _build(cls, state: dict, arrays: dict, source: str) -> Reference:
        try:
            settings = settings_from_dict(state["settings"], source=source)
            colours = {str(c["name"]): normalise_colour(c["colour"]) for c in state["classes"]}
            supports = {as_whole_number(s["chip"], "support chip", minimum=0): str(s["class"])
                        for s in state["supports"]}
            ds = state.get("dataset", {})
            if not isinstance(ds, dict):
                raise TypeError("'dataset' is not an object")
        except InputError as err:
            raise SessionFileError(f"{err} Fix the session in the app and save it again.") from None
        except (KeyError, TypeError, ValueError, AttributeError) as err:
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
        _check_arrays(arrays, eds, len(chips), source)
        w = arrays.get("eds_weight")
        return cls(settings=settings, classes=order, colours=[colours.get(c, "#999999") for c in order],
                   support_lab=lab, image_support=np.asarray(arrays["image_raw"]),
                   image_mean=np.asarray(arrays["image_mean"]), image_scale=np.asarray(arrays["image_scale"]),
                   eds=eds, eds_weight=None if w is None else float(w),
                   pixel_size=ds.get("pixel_size"), pixel_unit=str(ds.get("pixel_unit") or "px"),
                   source=source,
                   image_weights=(None if "image_weights" not in arrays
                                  else np.asarray(arrays["image_weights"])),
                   image_support_scaled=(None if "image_support_scaled" not in arrays
                                         else np.asarray(arrays["image_support_scaled"])),
                   image_support_purity=(None if "image_support_purity" not in arrays
                                         else np.asarray(arrays["image_support_purity"], dtype=np.float64)))


def load_reference(session_path: str | os.PathLike) -> Reference:
    """Read a session JSON and its ``.npz`` reference arrays (never unpickled).

    Raises
    ------
    SessionFileError
        Missing, malformed, newer-schema or inconsistent files.
    NotEnoughSupportsError
        Fewer than two classes with supports.
    """
    path = Path(session_path)
    state = read_state(path)
    arrays = read_arrays(path, state)
    needed = {"support_chips", "image_raw", "image_mean", "image_scale"}
    if not needed <= set(arrays):
        raise SessionFileError(f"{path.with_suffix('.npz').name} lacks {sorted(needed - set(arrays))}; "
                               "save the session again with arrays=True.")
    return Reference._build(state, arrays, path.name)


def _check_arrays(arrays: dict, eds: dict | None, n_supports: int, source: str) -> None:
    """Refuse reference arrays that are not finite, not positive scales, or of mismatched shapes."""

    def bad(what: str) -> SessionFileError:
        return SessionFileError(f"{source}: the reference arrays are unusable ({what}). Open the session "
                                "and save it again with arrays=True.")

    def real(key: str, a) -> np.ndarray:
        a = np.asarray(a)
        if a.dtype.kind not in "fiu":
            raise bad(f"{key} is not numeric")
        if not np.all(np.isfinite(a)):
            raise bad(f"{key} has NaN or infinite values")
        return a.astype(np.float64, copy=False)

    raw = real("image_raw", arrays["image_raw"])
    mean, scale = real("image_mean", arrays["image_mean"]), real("image_scale", arrays["image_scale"])
    if raw.ndim != 2 or raw.shape[0] != n_supports:
        raise bad(f"image_raw has shape {raw.shape}, not ({n_supports}, features)")
    if mean.shape != (raw.shape[1],) or scale.shape != (raw.shape[1],):
        raise bad(f"image_mean/image_scale have shapes {mean.shape}/{scale.shape}, not ({raw.shape[1]},)")
    if np.any(scale <= 0):
        raise bad("image_scale has zero or negative entries")
    if "image_weights" in arrays:
        w = real("image_weights", arrays["image_weights"])
        if w.shape != (raw.shape[1],) or np.any(w < 0):
            raise bad(f"image_weights has shape {w.shape} or negative entries")
        sup = real("image_support_scaled", arrays.get("image_support_scaled", raw))
        if sup.shape != raw.shape:
            raise bad(f"image_support_scaled has shape {sup.shape}, not {raw.shape}")
    if "image_support_purity" in arrays:
        pur = real("image_support_purity", arrays["image_support_purity"])
        if pur.shape != (n_supports,) or np.any(pur <= 0) or np.any(pur > 1):
            raise bad(f"image_support_purity has shape {pur.shape} or entries outside (0, 1]")
    if eds is not None:
        sup = real("eds_raw", eds["support"])
        escale = real("eds_scale", eds["scale"])
        real("eds_mean", eds["mean"])
        real("energy_axis", eds["energy_axis"])
        if sup.ndim != 2 or sup.shape[0] != n_supports:
            raise bad(f"eds_raw has shape {sup.shape}, not ({n_supports}, features)")
        if np.any(escale <= 0):
            raise bad("eds_scale has zero or negative entries")
    if "eds_weight" in arrays:
        w = real("eds_weight", arrays["eds_weight"])
        if w.size != 1 or not 0.0 <= float(w.reshape(-1)[0]) <= 1.0:
            raise bad(f"eds_weight {w.tolist()} is not one number in [0, 1]")


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
    enc = make_eds_encoder(ref.settings, mean_=np.asarray(ref.eds["encoder_mean"]),
                           components_=ref.eds["components"])
    spectra = chip_spectra(dataset.eds, grid, dataset.eds_binning)
    scaler = Scaler(per_feature=False, mean_=ref.eds["mean"], scale_=ref.eds["scale"])
    return (scaler.transform(enc.transform(spectra, energy)),
            scaler.transform(ref.eds["support"]))


def segment_dataset(ref: Reference, dataset: Dataset, *, progress=None,
                    pixel_maps: bool | None = None) -> Result:
    """Classify every chip of ``dataset`` with a saved session's prototypes.

    Parameters
    ----------
    ref : Reference
        From :func:`load_reference` or :meth:`Reference.from_session`.
    dataset : Dataset
        A new image (with EDS if the session used it).
    progress : callable, optional
        ``progress(fraction)`` while encoding.
    pixel_maps : bool, optional
        Refine the maps to pixel resolution (see :func:`pixel_refiner`); default: the
        session's ``pixel_maps`` setting, so a batch gives the maps the app showed.

    Returns
    -------
    Result
        No chip is a support; ``notes`` say when EDS was missing or the pixel size differs.
        ``probabilities`` are per chip; with ``pixel_maps`` the ``label_map``/``entropy_map``
        are refined to pixels on first use.

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
    grid = make_grid(dataset.shape, st)
    notes: list[str] = []
    if ref.pixel_size and dataset.pixel_size and dataset.pixel_unit == ref.pixel_unit:
        ratio = dataset.pixel_size / ref.pixel_size
        if abs(ratio - 1) > 0.05:
            notes.append(f"pixel size {dataset.pixel_size:g} {dataset.pixel_unit} differs from the "
                         f"session's {ref.pixel_size:g} by ×{ratio:.2f}: chips see other features; "
                         "resample the image to the session's pixel size for reliable results")
    # One thread: the batch runs images in parallel already.
    raw = encode_chips(dataset.image, grid, get_encoder(st.encoder), progress=progress, workers=1)
    if raw.shape[1] != ref.image_support.shape[1]:
        raise SessionFileError(
            f"The session's saved embeddings have {ref.image_support.shape[1]} features but encoder "
            f"{st.encoder!r} gives {raw.shape[1]}: the .npz is from other settings. Save the "
            "session again with arrays=True.")
    scaler = Scaler(per_feature=True, mean_=ref.image_mean, scale_=ref.image_scale)
    img, sup = scaler.transform(raw), scaler.transform(ref.image_support)
    if ref.image_weights is not None:  # the metric the session's supports defined
        img = img * ref.image_weights
        sup = ref.image_support_scaled if ref.image_support_scaled is not None else sup * ref.image_weights
    eds, sup_eds = _eds_features(ref, dataset, grid, notes)
    w = None
    if eds is not None:
        saved = st.eds_weight
        w = ref.eds_weight if ref.eds_weight is not None else (0.5 if saved == "auto" else float(saved))
    arrays = chip_probabilities(
        img, sup, ref.support_lab, len(ref.classes), eds_emb=eds, support_eds=sup_eds,
        eds_weight=w or 0.0, fusion=st.fusion, metric=st.metric,
        support_weights=ref.image_support_purity)
    if pixel_maps is None:
        pixel_maps = bool(st.pixel_maps)
    return Result(classes=list(ref.classes), colours=list(ref.colours), **arrays,
                  is_support=np.zeros(grid.n_chips, dtype=bool),
                  threshold=float(st.threshold), grid=grid, eds_weight=w, notes=notes,
                  refiner=pixel_refiner(ref, dataset) if pixel_maps else None)


#: Most confident chips per predicted class that stand in for supports in a batch refinement.
PSEUDO_SUPPORTS = 5


def pixel_refiner(ref: Reference, dataset: Dataset):
    """A ``Result.refiner`` for an image segmented with a saved session's prototypes.

    A new image has no supports of its own, so its :data:`PSEUDO_SUPPORTS` least uncertain
    chips per predicted class take their place in :func:`~.refine.refine_probabilities`
    (their labels come from the saved prototypes, not from a user). The EDS joins the pixel
    features when the session used it and the image has it. A class with no chip in the
    image keeps its chip-level answer (the refinement only sees the classes present).
    """
    from dataclasses import replace

    from .refine import _chip_prior, eds_pixel_features, pixel_features, pixel_map_note, refine_probabilities

    def refine(result: Result) -> np.ndarray:
        pf = pixel_features(dataset.image)
        if ref.eds is not None and dataset.has_eds and (result.eds_weight or 0) > 0:
            enc = make_eds_encoder(ref.settings, mean_=np.asarray(ref.eds["encoder_mean"]),
                                   components_=ref.eds["components"])
            pf = eds_pixel_features(dataset.eds, np.asarray(ref.eds["energy_axis"], dtype=np.float64),
                                    enc, dataset.eds_binning, pf)
        pseudo = np.zeros(result.grid.n_chips, dtype=bool)
        for k in np.unique(result.labels):
            mine = np.flatnonzero(result.labels == k)
            pseudo[mine[np.argsort(result.soft_entropy[mine], kind="stable")[:PSEUDO_SUPPORTS]]] = True
        if np.unique(result.labels).size < 2:  # one class everywhere: nothing to tell apart
            return _chip_prior(result.at_soft_scale(), pf).astype(np.float32)
        info: dict = {}
        prob = refine_probabilities(pf, replace(result, is_support=pseudo, refiner=None), info=info)
        note = pixel_map_note(info, result.classes)
        if note:
            result.notes.append(note)
        return prob

    return refine


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
    row.update(summary_fields(result, ds))
    return row


def summary_fields(result: Result, dataset: Dataset) -> dict[str, Any]:
    """One image's columns of ``summary.csv``.

    Chips, calibration, EDS weight, class fractions (of the label map: at pixel resolution when
    it is refined), the uncertain share of chips, and notes.
    """
    fractions = result.pixel_fractions if result.refiner is not None else result.fractions
    row: dict[str, Any] = dict(
        n_chips=result.grid.n_chips, pixel_size=dataset.pixel_size, pixel_unit=dataset.pixel_unit,
        eds_weight="" if result.eds_weight is None else round(result.eds_weight, 4))
    row.update({f"fraction_{c}": round(float(f), 6) for c, f in fractions.items()})
    row["uncertain_fraction"] = round(result.uncertain_fraction, 6)
    row["notes"] = "; ".join(result.notes + list(dataset.metadata.get("notes", [])))
    return row


def _prefixes(entries: Sequence[Entry], out_dir: Path, taken: dict[str, str] | None = None) -> list[str]:
    """Output prefix per image: its file stem, made unique when stems repeat.

    ``a/x.tif``, ``b/x.tif`` and ``a/x_2.tif`` get ``x``, ``x_3`` and ``x_2``: every plain stem
    is reserved first, then repeats take the next free ``<stem>_<n>``; names are compared
    without case (file systems on Windows and macOS ignore it). ``taken`` maps files to the
    names an earlier run gave them (``--resume``), which they keep.
    """
    taken = dict(taken or {})
    names: list[str | None] = [None] * len(entries)
    used: set[str] = set()
    for k, entry in enumerate(entries):
        name = taken.get(str(_entry_paths(entry)[0]))
        if name and name.lower() not in used:
            names[k] = name
            used.add(name.lower())
    for k, entry in enumerate(entries):
        stem = _entry_paths(entry)[0].stem
        if names[k] is None and stem.lower() not in used:
            names[k] = stem
            used.add(stem.lower())
    for k, entry in enumerate(entries):
        if names[k] is None:
            stem, n = _entry_paths(entry)[0].stem, 2
            while f"{stem}_{n}".lower() in used:
                n += 1
            names[k] = f"{stem}_{n}"
            used.add(names[k].lower())
    return [str(out_dir / n) for n in names]


def _expand(files: Sequence[Entry]) -> list[Entry]:
    """Expand shell-style patterns the shell did not (Windows, or quoted arguments)."""
    out: list[Entry] = []
    for f in files:
        if isinstance(f, (str, os.PathLike)) and not Path(f).exists() and glob.has_magic(str(f)):
            out += sorted(glob.glob(str(f)))
        else:
            out.append(f)
    return out


class _Summary:
    """``summary.csv``, rewritten atomically as images finish, and once more at the end.

    Up to 200 rows, every finished image rewrites it; beyond, at most every
    :data:`SUMMARY_EVERY_S` seconds (rewriting 10,000 rows per image would cost more than the
    images). :meth:`flush` runs in a ``finally``, so Ctrl-C keeps what finished.
    """

    def __init__(self, path: Path, n: int, done: dict[int, dict]) -> None:
        self.path, self.rows = path, dict(done)
        self.n = n
        self._written_at = 0.0
        self._dirty = False

    def add(self, k: int, row: dict) -> None:
        import time

        self.rows[k] = row
        self._dirty = True
        if len(self.rows) <= 200 or time.monotonic() - self._written_at >= SUMMARY_EVERY_S:
            self.flush()

    def flush(self) -> None:
        import time

        from .export import write_summary_csv

        if self._dirty or not self.path.exists():
            write_summary_csv(self.path, [self.rows[i] for i in sorted(self.rows)])
            self._written_at, self._dirty = time.monotonic(), False

    def ordered(self) -> list[dict]:
        return [self.rows[i] for i in range(self.n) if i in self.rows]


def _finished(out: Path) -> dict[str, dict]:
    """Rows of an earlier run's summary that finished ("ok") with their outputs present."""
    path = out / "summary.csv"
    if not path.exists():
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{path} cannot be read to resume ({err}); delete it to start over.") from None
    done = {}
    for r in rows:
        name = r.get("name") or ""
        if r.get("status") == "ok" and name and (out / f"{name}_chips.csv").exists():
            done[r.get("file", "")] = {k: v for k, v in r.items() if v != ""}
    return done


def _run_local(ref, todo, formats, load_kwargs, scheduler, workers, bar, summary) -> None:
    import dask
    from dask.callbacks import Callback

    keys = {}

    class _Tick(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if key in keys and isinstance(result, dict) and "status" in result:
                summary.add(keys[key], result)
                bar.update(1)

    ref_d = dask.delayed(ref, traverse=False)
    tasks = []
    for k, entry, prefix in todo:
        t = dask.delayed(_segment_one, pure=False)(ref_d, entry, prefix, formats, load_kwargs)
        keys[t.key] = k
        tasks.append(t)
    with _Tick():
        dask.compute(*tasks, scheduler=scheduler, num_workers=workers)


def _run_distributed(ref, todo, formats, load_kwargs, client, bar, summary) -> None:
    from distributed import as_completed

    ref_f = client.scatter(ref, broadcast=True)
    futures = {client.submit(_segment_one, ref_f, e, p, formats, load_kwargs, pure=False): k
               for k, e, p in todo}
    for fut in as_completed(list(futures), loop=client.loop):  # this client, not a default one
        summary.add(futures[fut], fut.result())
        bar.update(1)


def _reach(address: str, timeout: float) -> None:
    """Check that a scheduler address is well formed and answers, before a Client is made.

    A ``distributed.Client`` that fails half-way stays registered and retries in the
    background, so the usual mistakes (a typo, a stopped scheduler) are caught here.
    """
    import socket

    from distributed.comm import parse_address, parse_host_port
    from distributed.comm.registry import backends

    scheme, location = parse_address(address)
    if scheme not in backends:
        raise ValueError(f"unknown address scheme {scheme!r}; use one of {sorted(backends)}")
    if scheme in ("tcp", "tls", "ws", "wss"):
        host, port = parse_host_port(location)
        with socket.create_connection((host, port), timeout=timeout):
            pass


def _client(scheduler: Any, timeout: float):
    """A ``distributed.Client`` for an address, or an error saying the cluster is unreachable."""
    try:
        from distributed import Client
    except ImportError as err:
        raise InputError(f"Dask distributed is not installed ({err}); "
                         "pip install 'stem_fsl_widgets[batch]'.") from None

    if isinstance(scheduler, Client):
        return scheduler, False
    try:
        _reach(str(scheduler), timeout)
        # Not the process-wide default: nothing else in this process is sent to that cluster.
        return Client(scheduler, timeout=f"{timeout}s", set_as_default=False), True
    except Exception as err:  # OSError, TimeoutError, ValueError for a malformed address...
        msg = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise InputError(
            f"Cannot connect to the Dask scheduler at {scheduler!r} ({msg}). Check the address "
            "(e.g. tcp://host:8786) and that the scheduler is running, or leave out --scheduler "
            "to run on this machine.") from None


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
    resume: bool = False,
    connect_timeout: float = 10.0,
    pixel_maps: bool | None = None,
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
        Created if needed. Per image ``<name>_labels.*``, ``<name>_entropy.*`` (TIFF with
        ImageJ calibration, ``.hspy`` with calibrated axes and class names), and
        ``<name>_chips.csv``, where ``<name>`` is the file's stem, made unique when several
        inputs share one (``x``, ``x_2``, ...; the summary's ``name`` column says which is
        which); over all images ``summary.csv``, rewritten after every image.
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
    resume : bool
        Skip images that ``out_dir/summary.csv`` lists as "ok" and whose outputs exist (after
        an interrupted run); their rows are kept.
    connect_timeout : float
        Seconds to wait for a scheduler address to answer.
    pixel_maps : bool, optional
        Maps at pixel resolution (see :func:`pixel_refiner`) or chip maps (False, faster);
        default: the session's ``pixel_maps`` setting.

    Returns
    -------
    list of dict
        One row per file, in input order: ``file``, ``name``, ``status`` ("ok" or "error"),
        ``error``, ``n_chips``, ``fraction_<class>``, ``uncertain_fraction``, ``eds_weight``,
        ``notes``. The same rows are in ``summary.csv``.

    Raises
    ------
    SessionFileError, NotEnoughSupportsError
        The session cannot be applied (before any image is touched).
    InputError
        Unknown format, no files, workers < 1, an output folder that cannot be made, or a
        scheduler that cannot be reached.
    """
    from tqdm.auto import tqdm

    if hasattr(session_path, "reference_arrays"):
        ref = Reference.from_session(session_path)
    else:
        ref = load_reference(session_path)
    if pixel_maps is not None:
        from dataclasses import replace

        ref.settings = replace(ref.settings, pixel_maps=bool(pixel_maps))
    formats = tuple(str(f).lower().lstrip(".") for f in formats)
    bad = [f for f in formats if f not in _FORMATS]
    if bad:
        raise InputError(f"Unknown output format(s) {bad}; choose from tif, hspy, png.")
    if workers is not None:
        workers = as_whole_number(workers, "workers", minimum=1)
    entries = _expand(list(files))
    if not entries:
        raise InputError("No input files given (or no file matches the pattern).")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"--out {out} is a file, not a folder; name a folder for the results.") from None
    except OSError as err:
        raise InputError(f"Cannot create the output folder {out} ({err.strerror or err}).") from None
    if not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder; name a folder for the results.")
    earlier = _finished(out) if resume else {}
    prefixes = _prefixes(entries, out, {f: r["name"] for f, r in earlier.items()})
    done = {k: earlier[str(_entry_paths(e)[0])] for k, e in enumerate(entries)
            if str(_entry_paths(e)[0]) in earlier
            and earlier[str(_entry_paths(e)[0])]["name"] == Path(prefixes[k]).name}
    todo = [(k, e, p) for k, (e, p) in enumerate(zip(entries, prefixes, strict=True)) if k not in done]
    summary = _Summary(out / "summary.csv", len(entries), done)
    load_kwargs = dict(load_kwargs or {})
    client, own = (None, False)
    if todo and not (scheduler is None or scheduler in ("processes", "threads", "synchronous", "sync")):
        client, own = _client(scheduler, connect_timeout)  # before any image: a bad address fails fast
    try:
        with tqdm(total=len(entries), initial=len(done), desc="segmenting", unit="image",
                  disable=not progress) as bar:
            if not todo:
                pass
            elif client is None:
                _run_local(ref, todo, formats, load_kwargs, scheduler or "processes", workers, bar, summary)
            else:
                _run_distributed(ref, todo, formats, load_kwargs, client, bar, summary)
    finally:
        if own:
            client.close()
        if summary.rows or not todo:
            summary.flush()  # also after Ctrl-C: what finished is listed, --resume continues
    return summary.ordered()


# --------------------------------------------------------------------------- command line
def _selector(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.lstrip("-").isdigit() else value


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line on stderr and exit code 2."""

    def error(self, message: str):  # noqa: D102 (argparse's own hook)
        self.exit(2, f"{self.prog}: {message} (see {self.prog} -h)\n")


def cli_segment(argv: list[str] | None = None) -> int:
    """``stem-fsl segment SESSION.json FILES... --out DIR [--scheduler ADDR] [--resume] [--chip-maps]``.

    Returns
    -------
    int
        0 when every image was segmented, 1 when some failed (listed on stderr), 2 when the
        session or the arguments are unusable (one line on stderr, never a traceback).
    """
    p = OneLineParser(
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
    p.add_argument("--resume", action="store_true",
                   help="skip images the output folder's summary.csv lists as done")
    p.add_argument("--chip-maps", action="store_true",
                   help="chip-level maps (faster) instead of maps refined to pixel resolution")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:  # -h or a usage error: argparse has printed the message
        return int(exc.code or 0)
    load_kwargs = {k: _selector(v) for k, v in (("image", args.image), ("eds", args.eds)) if v is not None}
    try:
        rows = segment_files(args.session, args.files, args.out, scheduler=args.scheduler,
                             workers=args.workers, formats=args.formats,
                             progress=not args.no_progress, load_kwargs=load_kwargs, resume=args.resume,
                             pixel_maps=False if args.chip_maps else None)
    except KeyboardInterrupt:
        print(f"stem-fsl segment: interrupted; {Path(args.out) / 'summary.csv'} lists the images "
              "finished so far; run again with --resume to continue.", file=sys.stderr)
        return 130
    except SFWError as err:
        print(f"stem-fsl segment: {one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # never a traceback for a user; the type helps a bug report
        print(f"stem-fsl segment: unexpected {type(err).__name__}: {one_line(err)}", file=sys.stderr)
        return 2
    failed = [r for r in rows if r["status"] != "ok"]
    for r in failed:
        print(f"failed: {r['file']}: {r['error']}", file=sys.stderr)
    print(f"{len(rows) - len(failed)} of {len(rows)} images segmented; summary: "
          f"{Path(args.out) / 'summary.csv'}")
    return 1 if failed else 0


def one_line(err: BaseException) -> str:
    """An error's message on one line (line breaks folded)."""
    return " ".join(str(err).split()) or type(err).__name__
