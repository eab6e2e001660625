"""Read microscope files into a :class:`~stem_fsl_widgets.dataset.Dataset`.

Formats go through RosettaSciIO/HyperSpy (``.dm3 .dm4 .emd .bcf .tif .tiff .hspy .zspy
.png``) or NumPy (``.npy .npz``, never unpickled). A file may hold several signals — a
Velox ``.emd`` has HAADF, DF4, BF images, element maps and an EDS spectrum image; a Bruker
``.bcf`` has SEM/STEM images and the EDS cube — so each signal becomes a :class:`Item`
with a role ("image", "stack", "eds", ...) read from its metadata and axes, and
:func:`from_signals` picks the image and the EDS cube: the HAADF/ADF detector first, the
only EDS cube, or what the user names with ``image=`` / ``eds=`` (index or title
substring). A choice it cannot make alone raises an error that lists the candidates.

Calibration travels with the data: the image pixel size and unit, the EDS pixel size
converted to the image's unit (so an EDS map sampled more coarsely than the image is mapped
through physical coordinates) and the energy axis in keV. Files above
:data:`LAZY_THRESHOLD` are opened lazily: the EDS cube stays a dask array and is summed per
chip row later (:func:`stem_fsl_widgets.chips.chip_spectra`); only the 2-D image is read.

HyperSpy is imported inside functions only: it is slow to import and scripts that never
read a file should not pay for it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write
from .dataset import Dataset
from .errors import FileFormatError, SFWError

__all__ = [
    "EXTENSIONS",
    "LAZY_THRESHOLD",
    "Item",
    "describe",
    "from_signals",
    "items_from_signals",
    "load",
    "load_upload",
    "quiet_reader_logs",
    "read_signals",
    "save_npz",
]

_logger = logging.getLogger(__name__)

#: File extensions :func:`load` reads (lower case).
EXTENSIONS = (".dm3", ".dm4", ".emd", ".bcf", ".tif", ".tiff", ".hspy", ".hdf5", ".zspy",
              ".npy", ".npz", ".png")

#: Files (or .zspy folders) larger than this many bytes are opened lazily when ``lazy=None``.
LAZY_THRESHOLD = 512 * 2**20

# Length units seen in microscope files → nanometres (pint would read "px" as a CSS pixel).
_NM_PER_UNIT = {
    "pm": 1e-3, "å": 0.1, "a": 0.1, "angstrom": 0.1, "nm": 1.0, "µm": 1e3, "μm": 1e3,
    "um": 1e3, "micron": 1e3, "mm": 1e6, "cm": 1e7, "m": 1e9,
}

# Ranked detector names: a HAADF image first, then other dark-field detectors, then the rest.
_HAADF = re.compile(r"haadf", re.I)
_DARK_FIELD = re.compile(r"(^|[^a-z])(a?df\d*|df-?[a-z]+|dark|adf)([^a-z]|$)", re.I)
# Velox and Bruker store element maps as images titled by the element ("Ni", "O", "Fe K").
_ELEMENT_MAP = re.compile(r"^\s*[A-Z][a-z]?(\s+[KLM][a-z0-9]*)?\s*$")

# npz keys with a fixed meaning (see save_npz).
_NPZ_ENERGY = ("energy_axis", "energy")
_NPZ_EDS = ("eds", "spectrum_image", "si")
_NPZ_SCALARS = ("pixel_size", "eds_pixel_size", "eds_binning", "pixel_unit", "name")


class _QuietReaders(logging.Filter):
    """Drop log lines that mislead here.

    HyperSpy/RosettaSciIO warn once per jitted function when numba is missing, and log
    "please report this error" for every unreadable file (we raise our own error).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage().lower()
        return "numba" not in msg and "please report this error" not in msg


_NUMBA_FILTER = _QuietReaders()


def quiet_reader_logs() -> None:
    """Silence HyperSpy/RosettaSciIO's misleading log lines (call before importing them)."""
    for name in ("hyperspy.decorators", "rsciio.utils._decorator", "hyperspy.io"):
        logger = logging.getLogger(name)
        if _NUMBA_FILTER not in logger.filters:
            logger.addFilter(_NUMBA_FILTER)


def _hyperspy():
    """Import ``hyperspy.api`` on first use, without misleading log noise."""
    quiet_reader_logs()
    import hyperspy.api as hs

    return hs


# --------------------------------------------------------------------------- items
@dataclass
class Item:
    """One signal found in a file, with the role it can play in a :class:`Dataset`.

    Attributes
    ----------
    index : int
        Position of the signal in the file (what ``image=`` / ``eds=`` take as an int).
    title : str
        The signal's title (detector name for Velox images, "EDX" for Bruker cubes, ...).
    role : str
        "image" (2-D), "stack" (frames of 2-D images), "eds" (spectrum image, rows × columns ×
        energy), or "other" (single spectra, line scans, 4-D data, EELS...).
    data : ndarray or dask array
        The signal's data, not copied (lazy stays lazy).
    pixel_size : float or None
        Spatial pixel size in ``pixel_unit`` (None when uncalibrated).
    pixel_unit : str
        A length unit, or "px" when uncalibrated.
    energy_axis : ndarray, shape (E,), keV, or None
        For EDS cubes.
    detail : str
        Why a signal has role "other", or other facts shown to the user.
    """

    index: int
    title: str
    role: str
    data: Any
    pixel_size: float | None = None
    pixel_unit: str = "px"
    energy_axis: np.ndarray | None = None
    signal_type: str = ""
    detail: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the data array."""
        return tuple(int(s) for s in self.data.shape)

    def describe(self) -> str:
        """One line for listings and error messages."""
        dims = "×".join(str(s) for s in self.shape)
        what = {"image": "image", "stack": "image stack", "eds": "EDS spectrum image"}.get(
            self.role, "not usable")
        cal = f", {self.pixel_size:.4g} {self.pixel_unit}/px" if self.pixel_size else ""
        if self.energy_axis is not None and self.energy_axis.size:
            cal += f", {self.energy_axis[0]:.3g}–{self.energy_axis[-1]:.3g} keV"
        extra = f" ({self.detail})" if self.detail else ""
        return f"[{self.index}] {self.title or '(untitled)'!r}: {what} {dims}{cal}{extra}"


def _unit(axis) -> str:
    u = str(getattr(axis, "units", "") or "")
    return "" if u in ("<undefined>", "None", "undefined") else u.strip()


def _length(axis) -> tuple[float | None, str]:
    """(pixel size, unit) of a spatial axis; (None, "px") unless it is a calibrated length."""
    unit = _unit(axis)
    scale = float(getattr(axis, "scale", 1.0))
    if unit.lower() not in _NM_PER_UNIT or not (np.isfinite(scale) and scale > 0):
        return None, "px"
    return scale, unit


def _convert(value: float, unit: str, to_unit: str) -> float | None:
    """Convert a length between units of :data:`_NM_PER_UNIT`; None if either is unknown."""
    a, b = _NM_PER_UNIT.get(unit.lower()), _NM_PER_UNIT.get(to_unit.lower())
    return None if a is None or b is None else value * a / b


def _energy_kev(axis) -> np.ndarray:
    energy = np.asarray(axis.axis, dtype=np.float64)
    if _unit(axis).lower() == "ev":
        energy = energy / 1000.0
    return energy


def _item_from_signal(index: int, sig) -> Item:
    md = sig.metadata
    title = str(md.get_item("General.title", "") or "")
    signal_type = str(md.get_item("Signal.signal_type", "") or "")
    am = sig.axes_manager
    sig_axes, nav_axes = list(am.signal_axes), list(am.navigation_axes)
    item = Item(index, title, "other", sig.data, signal_type=signal_type)
    if len(sig_axes) == 2:
        item.pixel_size, item.pixel_unit = _length(sig_axes[0])
        if not nav_axes:
            item.role = "image"
        elif len(nav_axes) == 1:
            item.role = "stack"
        else:
            item.detail = (f"{len(nav_axes) + 2}-D data, e.g. 4D-STEM; make a virtual image "
                           "(sum over the detector) first")
    elif len(sig_axes) == 1:
        is_eds = signal_type.upper().startswith("EDS") or (
            not signal_type and _unit(sig_axes[0]).lower() in ("kev", "ev"))  # untyped, energy axis
        if len(nav_axes) == 2 and is_eds:
            item.role = "eds"
            item.pixel_size, item.pixel_unit = _length(nav_axes[0])
            item.energy_axis = _energy_kev(sig_axes[0])
        elif signal_type.upper().startswith("EDS"):
            item.detail = {0: "a single spectrum", 1: "a line scan"}.get(
                len(nav_axes), "EDS frames not summed; load with sum_frames=True")
        else:
            item.detail = f"signal type {signal_type or 'unknown'}, not EDS"
    else:
        item.detail = f"{len(sig_axes)} signal dimensions"
    return item


def items_from_signals(signals: Sequence | Any) -> list[Item]:
    """Describe HyperSpy signals (as a reader returns them) as :class:`Item` s.

    Parameters
    ----------
    signals : hyperspy signal or sequence of signals

    Returns
    -------
    list of Item
        In the file's order; ``Item.index`` is the position in that order.
    """
    if not isinstance(signals, (list, tuple)):
        signals = [signals]
    return [_item_from_signal(i, s) for i, s in enumerate(signals)]


def _items_from_npz(path: Path) -> tuple[list[Item], dict]:
    """Arrays of an .npz as items, plus its calibration scalars (see :func:`save_npz`)."""
    extra: dict = {}
    arrays: dict[str, np.ndarray] = {}
    with np.load(path, allow_pickle=False) as npz:
        for key in npz.files:
            arrays[key] = npz[key]
    energy = next((np.asarray(arrays.pop(k), float) for k in _NPZ_ENERGY if k in arrays), None)
    for key in _NPZ_SCALARS:
        if key in arrays:
            value = arrays.pop(key)
            extra[key] = str(value) if value.dtype.kind in "US" else float(value)
    if "ground_truth" in arrays:
        extra["ground_truth"] = arrays.pop("ground_truth")
    if "truth_classes" in arrays:
        extra["truth_classes"] = [str(c) for c in arrays.pop("truth_classes")]
    items = []
    for key, arr in arrays.items():
        item = Item(len(items), key, "other", arr, pixel_size=extra.get("pixel_size"),
                    pixel_unit=str(extra.get("pixel_unit", "px")))
        if arr.ndim == 2:
            item.role = "image"
        elif arr.ndim == 3 and (key.lower() in _NPZ_EDS
                                or (energy is not None and arr.shape[2] == energy.size)):
            item.role, item.energy_axis = "eds", energy
            eps = extra.get("eds_pixel_size")
            item.pixel_size = float(eps) if eps is not None else None
        elif arr.ndim == 3:
            item.role = "stack"
        else:
            item.detail = f"{arr.ndim}-D array"
        items.append(item)
    return items, extra


# --------------------------------------------------------------------------- size caps
#: Formats opened lazily first so the shapes they declare are checked before any data is read.
_PROBE_LAZILY = (".hspy", ".hdf5", ".zspy", ".emd", ".dm3", ".dm4", ".bcf")

#: RosettaSciIO readers that all claim ``.hdf5``; a plain .hdf5 here is HyperSpy's own format.
_HDF5_READERS = "HSPY (HyperSpy), USID, Delmic"


def _npy_header(fp) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an .npy header (nothing else is read)."""
    fmt = np.lib.format
    version = fmt.read_magic(fp)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(fp)
    else:
        shape, _, dtype = fmt._read_array_header(fp, version)  # 3.0: utf-8 header
    return tuple(int(s) for s in shape), np.dtype(dtype)


def _declared_npz(path: Path) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    import zipfile

    out = []
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if name.endswith(".npy"):
                with zf.open(name) as fp:
                    shape, dtype = _npy_header(fp)
                out.append((name[:-4], shape, dtype))
    return out


def _declared_header(path: Path) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    """(name, shape, dtype) of each array a TIFF, PNG, .npy or .npz declares; [] if unknown."""
    ext = path.suffix.lower()
    try:
        if ext == ".npy":
            with open(path, "rb") as fp:
                shape, dtype = _npy_header(fp)
            return [(path.stem, shape, dtype)]
        if ext == ".npz":
            return _declared_npz(path)
        if ext in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                return [(f"series {k}", tuple(int(d) for d in s.shape), np.dtype(s.dtype))
                        for k, s in enumerate(tif.series)]
        if ext == ".png":
            from PIL import Image

            with Image.open(path) as im:
                w, h = im.size
            return [(path.stem, (int(h), int(w)), np.dtype(np.uint8))]
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception:  # unreadable header: the reader itself reports it below
        return []
    return []


def _declared_signals(signals: list) -> list[tuple[str, tuple[int, ...], np.dtype]]:
    out = []
    for k, s in enumerate(signals):
        data = s.data
        title = str(s.metadata.get_item("General.title", "") or f"signal {k}")
        out.append((title, tuple(int(d) for d in data.shape), np.dtype(data.dtype)))
    return out


def _decide_lazy(path: Path, declared: list, lazy: bool | None, hint: str | None = None) -> bool:
    """Check declared shapes against the caps; return whether to keep cubes lazy.

    With ``lazy=None`` data are kept lazy when the file, or what it declares, is bigger than
    :data:`LAZY_THRESHOLD` or than the in-memory cube cap.
    """
    from .limits import check_shape, max_memory_voxels

    many = len(declared) > 1
    for name, shape, _ in declared:
        check_shape(shape, f"{path.name}: {name!r}" if many else path.name)
    if lazy is None:
        total = sum(int(np.prod(shape, dtype=np.float64)) * dt.itemsize for _, shape, dt in declared)
        cube_cap = max_memory_voxels()
        lazy = (_size_on_disk(path) > LAZY_THRESHOLD or total > LAZY_THRESHOLD
                or any(len(s) >= 3 and np.prod(s, dtype=np.float64) > cube_cap for _, s, _ in declared))
    if not lazy:
        for name, shape, _ in declared:
            check_shape(shape, f"{path.name}: {name!r}" if many else path.name, in_memory=True, hint=hint)
    return bool(lazy)


def _hdf5_error(path: Path, err: BaseException) -> FileFormatError:
    msg = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
    return FileFormatError(
        f"Could not read {path.name} with HyperSpy's reader ({type(err).__name__}: {msg}). Several "
        f"RosettaSciIO readers accept .hdf5 files ({_HDF5_READERS}); HyperSpy's was chosen. If the "
        "file comes from another program, name its reader, e.g. "
        "load(path, reader_kwargs={'file_format': 'USID'}); or re-export it as .hspy.")


# --------------------------------------------------------------------------- reading
def _size_on_disk(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def _check_path(path: Path) -> None:
    if not path.exists():
        raise FileFormatError(f"No file at {path}. Check the path (and the working folder: {Path.cwd()}).")
    ext = path.suffix.lower()
    if ext not in EXTENSIONS:
        raise FileFormatError(
            f"{path.name}: unsupported file type {ext or '(no extension)'!r}. Supported: "
            f"{', '.join(EXTENSIONS)}. Export the image from your microscope software as TIFF "
            "or open it in HyperSpy and save it as .hspy."
        )
    if path.is_dir() and ext != ".zspy":
        raise FileFormatError(f"{path} is a folder, not a {ext} file.")
    if _size_on_disk(path) == 0:
        raise FileFormatError(
            f"{path.name} is empty (0 bytes): the copy or export was probably interrupted. "
            "Copy or export it again."
        )


def _read_error(path: Path, err: BaseException) -> FileFormatError:
    msg = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
    if isinstance(err, MemoryError):
        hint = "It does not fit in memory: open it with lazy=True."
    else:
        hint = ("The file may be truncated, corrupt, or not really a "
                f"{path.suffix} file; re-export or re-copy it, and check that it opens in the "
                "microscope software or in HyperSpy (hs.load).")
    return FileFormatError(f"Could not read {path.name} ({type(err).__name__}: {msg}). {hint}")


def read_signals(path: str | os.PathLike, *, lazy: bool | None = None, **reader_kwargs: Any) -> list:
    """Read every signal of a file with HyperSpy (lazily for big files).

    Parameters
    ----------
    path : str or Path
        A file (or .zspy folder) with one of the HyperSpy-readable :data:`EXTENSIONS`.
    lazy : bool, optional
        Keep data as dask arrays; default: only when the file, or the data it declares, is
        bigger than :data:`LAZY_THRESHOLD` (or holds a cube over the in-memory cap).
    **reader_kwargs
        Passed to ``hyperspy.api.load`` (e.g. ``select_type``, ``sum_frames`` for Velox,
        ``file_format`` to choose among readers of one extension; ``.hdf5`` defaults to
        HyperSpy's own, "HSPY").

    Returns
    -------
    list of hyperspy signals

    Raises
    ------
    DataTooLargeError
        When the file declares more pixels or voxels than the caps of
        :mod:`stem_fsl_widgets.limits` (checked before any data is read).
    FileFormatError
        If the file is missing, empty, of an unsupported type, or cannot be read.
    """
    path = Path(path).expanduser()
    _check_path(path)
    ext = path.suffix.lower()
    hdf5_default = ext == ".hdf5" and not {"reader", "file_format"} & set(reader_kwargs)
    if hdf5_default:  # HSPY, USID and Delmic all claim .hdf5: hs.load would refuse to choose
        reader_kwargs = {**reader_kwargs, "file_format": "HSPY"}
    probe = ext in _PROBE_LAZILY
    if not probe:  # TIFF, PNG: their headers give the shapes
        lazy = _decide_lazy(path, _declared_header(path), lazy)
    hs = _hyperspy()
    try:
        # Probed formats are opened lazily first: shapes are checked before data are read.
        out = hs.load(str(path), lazy=True if probe else lazy, **reader_kwargs)
    except ModuleNotFoundError as err:
        if path.suffix.lower() == ".emd" and "sparse" in str(err) and "select_type" not in reader_kwargs:
            # Velox EDS streams need `sparse`; still give the user the images.
            _logger.warning("%s: EDS stream skipped, 'sparse' is not installed", path.name)
            signals = read_signals(path, lazy=lazy, select_type="images", **reader_kwargs)
            for s in signals:
                s.metadata.set_item("General.sfw_note", "EDS stream not read: pip install sparse")
            return signals
        raise _read_error(path, err) from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # readers raise anything from OSError to struct.error
        raise (_hdf5_error(path, err) if hdf5_default else _read_error(path, err)) from None
    signals = list(out) if isinstance(out, (list, tuple)) else [out]
    if not signals:
        raise FileFormatError(
            f"{path.name} holds no signal that HyperSpy can read: it may be truncated or not a "
            f"{path.suffix} file. Re-export or re-copy it.")
    # HyperSpy's HDF5 readers keep the file open for lazy data: close it once read, or refused.
    closers = _file_handles(signals) if ext in (".hspy", ".hdf5", ".emd") else []
    try:
        keep_lazy = _decide_lazy(path, _declared_signals(signals), lazy) if probe else True
    except SFWError:
        _close(closers)
        raise
    if not keep_lazy:
        import dask

        try:
            # Read here, in this thread: never through a dask cluster someone made the default.
            with dask.config.set(scheduler="synchronous"):
                for s in signals:
                    if getattr(s, "_lazy", False):
                        s.compute(show_progressbar=False)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:
            raise _read_error(path, err) from None
        finally:
            _close(closers)
    return signals


def _file_handles(signals: list) -> list:
    """The open h5py files behind lazy signals' dask arrays (rsciio's own lookup)."""
    try:
        from rsciio.utils.file import get_file_handle
    except ImportError:  # an older RosettaSciIO: the files close when collected
        return []
    handles = []
    for s in signals:
        try:
            h = get_file_handle(s.data)
        except Exception:  # not an h5py-backed array
            continue
        if h is not None and all(h is not o for o in handles):
            handles.append(h)
    return handles


def _close(handles: list) -> None:
    for h in handles:
        try:
            h.close()
        except Exception:  # already closed
            pass


def _read_items(path: Path, lazy: bool | None, reader_kwargs: dict) -> tuple[list[Item], dict]:
    """Items of any supported file, plus npz calibration scalars."""
    _check_path(path)
    ext = path.suffix.lower()
    try:
        if ext == ".npz":  # read into memory, whatever ``lazy`` says
            _decide_lazy(path, _declared_header(path), False,
                         "An .npz is always read whole: crop or bin the cube, or save it as .hspy or "
                         ".zspy, which open lazily (SFW_MAX_MEMORY_VOXELS sets this limit).")
            return _items_from_npz(path)
        if ext == ".npy":
            big = _decide_lazy(path, _declared_header(path), lazy)  # big: memory-mapped
            arr = np.load(path, allow_pickle=False, mmap_mode="r" if big else None)
            role = {2: "image", 3: "stack"}.get(arr.ndim, "other")
            detail = "" if role != "other" else f"{arr.ndim}-D array"
            return [Item(0, path.stem, role, arr, detail=detail)], {}
    except SFWError:
        raise
    except ValueError as err:
        if "pickle" in str(err).lower() or "object arrays" in str(err).lower():
            raise FileFormatError(
                f"{path.name} holds Python objects, which are never unpickled (a file could run "
                "code). Save plain numeric arrays: np.savez(path, image=..., eds=..., energy_axis=...)."
            ) from None
        raise _read_error(path, err) from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:
        raise _read_error(path, err) from None
    signals = read_signals(path, lazy=lazy, **reader_kwargs)
    items = items_from_signals(signals)
    for item, sig in zip(items, signals, strict=True):
        note = sig.metadata.get_item("General.sfw_note", None)
        if note:
            item.notes.append(str(note))
    if ext in (".tif", ".tiff"):
        _imagej_unit(path, items)
    return items, {}


def _imagej_unit(path: Path, items: list[Item]) -> None:
    """RosettaSciIO reads an ImageJ TIFF's pixel size but only the unit "micron"; add the rest."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            meta = tif.imagej_metadata or {}
            page = tif.pages[0]
            xres = page.tags.get("XResolution")
    except Exception:  # calibration is a bonus; the data were read already
        return
    # ImageJ escapes non-ASCII symbols in its description ("\\u00B5m" for µm).
    unit = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), str(meta.get("unit", "")))
    if unit.lower() not in _NM_PER_UNIT or xres is None:
        return
    num, den = xres.value
    for item in items:
        if item.role in ("image", "stack") and item.pixel_size is None and num > 0:
            item.pixel_size, item.pixel_unit = den / num, unit


# --------------------------------------------------------------------------- choosing
def _image_rank(item: Item) -> int:
    if _HAADF.search(item.title):
        return 0
    if _DARK_FIELD.search(item.title):
        return 1
    if _ELEMENT_MAP.match(item.title):
        return 3
    return 2


def _listing(items: Sequence[Item]) -> str:
    return "\n  " + "\n  ".join(i.describe() for i in items)


def _by_selector(items: list[Item], selector: int | str, roles: tuple[str, ...], what: str,
                 arg: str) -> Item:
    if isinstance(selector, (int, np.integer)) and not isinstance(selector, bool):
        matches = [i for i in items if i.index == int(selector)]
        if not matches:
            raise FileFormatError(
                f"{arg}={selector} is out of range: the file holds {len(items)} signal(s):{_listing(items)}")
    else:
        key = str(selector).lower()
        matches = [i for i in items if key in i.title.lower()]
        exact = [i for i in matches if i.title.lower() == key]
        in_role = [i for i in matches if i.role in roles]
        matches = exact if len(exact) == 1 else in_role if len(in_role) == 1 else matches
        if not matches:
            raise FileFormatError(
                f"No signal titled like {selector!r}. The file holds:{_listing(items)}\nPass "
                f"{arg}= with one of these titles or indices.")
        if len(matches) > 1:
            raise FileFormatError(
                f"{arg}={selector!r} matches several signals:{_listing(matches)}\nPass the "
                f"index instead, e.g. {arg}={matches[0].index}.")
    item = matches[0]
    if item.role not in roles:
        raise FileFormatError(f"{arg}={selector!r} names {item.describe()}, which is not {what}.")
    return item


def _choose_image(items: list[Item], selector, frame: int | None) -> tuple[np.ndarray, Item]:
    import numbers

    if frame is not None and (isinstance(frame, bool) or not isinstance(frame, numbers.Integral)):
        raise FileFormatError(f"frame must be a whole number (a frame index), not {frame!r}.")
    if isinstance(selector, bool):
        raise FileFormatError(f"image={selector!r}: name the image by its index or title.")
    usable = [i for i in items if i.role in ("image", "stack")]
    if selector is not None:
        item = _by_selector(items, selector, ("image", "stack"), "an image", "image")
    elif not usable:
        eds_only = any(i.role == "eds" for i in items)
        hint = ("It holds only an EDS spectrum image: load the HAADF/ADF image file and pass "
                "this one as eds_path=." if eds_only else "Check that this is an image file.")
        raise FileFormatError(f"No 2-D image found. The file holds:{_listing(items)}\n{hint}")
    else:
        best = min(_image_rank(i) for i in usable)
        tier = [i for i in usable if _image_rank(i) == best]
        if len(tier) > 1:
            titles = [i.title for i in tier]
            unique = tier[0].title and titles.count(tier[0].title) == 1
            raise FileFormatError(
                "Several images could be the one to segment:" + _listing(tier) + "\nChoose with "
                f"image=<index or title>, e.g. image={tier[0].title if unique else tier[0].index!r}.")
        item = tier[0]
    data = item.data
    if item.role == "stack":
        n = item.shape[0]
        if frame is None:
            raise FileFormatError(
                f"{item.describe()} is a stack of {n} frames; segmentation needs one 2-D image. "
                f"Pick one with frame=<0..{n - 1}>, or sum/align the frames first and save the result.")
        if not -n <= int(frame) < n:
            raise FileFormatError(f"frame={frame} is out of range for a stack of {n} frames.")
        data = data[int(frame)]
    elif frame is not None and frame not in (0, -1):
        raise FileFormatError(f"frame={frame} given, but {item.describe()} is a single image.")
    return data, item


def _choose_eds(items: list[Item], selector) -> Item | None:
    if selector is False or (isinstance(selector, str) and selector.lower() == "none"):
        return None
    if selector is not None:
        return _by_selector(items, selector, ("eds",), "an EDS spectrum image", "eds")
    cubes = [i for i in items if i.role == "eds"]
    if len(cubes) > 1:
        raise FileFormatError(
            "Several EDS spectrum images found:" + _listing(cubes) + "\nChoose with "
            "eds=<index or title> (or eds=False to load the image alone).")
    return cubes[0] if cubes else None


def _grey(data: Any, rgb: str, title: str) -> tuple[np.ndarray, str | None]:
    """Plain 2-D array from an image, converting RGB(A) as ``rgb`` says."""
    arr = np.asarray(data.compute() if hasattr(data, "compute") else data)
    if arr.dtype.names:  # HyperSpy's structured RGB(A) dtype
        arr = np.stack([arr[n] for n in arr.dtype.names], axis=-1)
    if not (arr.ndim == 3 and arr.shape[-1] in (3, 4) and min(arr.shape[:2]) > 4):
        return arr, None
    chans = arr[..., :3].astype(np.float32)
    if np.array_equal(chans[..., 0], chans[..., 1]) and np.array_equal(chans[..., 1], chans[..., 2]):
        return chans[..., 0], f"{title}: grey image stored as RGB; used one channel"
    if rgb != "luminance":
        raise FileFormatError(
            f"{title} is a colour (RGB) picture, not detector data: its channels differ, as in a "
            "false-colour lookup table or an overlay. Export the raw single-channel image "
            "(e.g. TIFF from the microscope software), or pass rgb='luminance' to convert it "
            "to grey anyway.")
    lum = chans @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return lum, f"{title}: colour image converted to grey (ITU-R 601 luminance)"


def from_signals(
    signals: Sequence | Any,
    *,
    image: int | str | None = None,
    eds: int | str | bool | None = None,
    eds_signals: Sequence | Any | None = None,
    frame: int | None = None,
    rgb: str = "auto",
    name: str | None = None,
    **kwargs: Any,
) -> Dataset:
    """Build a Dataset from HyperSpy signals (one file's content), choosing image and EDS.

    Parameters
    ----------
    signals : hyperspy signal or sequence of signals, or list of Item
        E.g. what ``hyperspy.api.load`` returned for one file.
    image : int or str, optional
        The image: its index in ``signals`` or a (case-insensitive) title substring. By
        default a HAADF image, else another dark-field detector (ADF, DF4, ...), else the
        only image; several equally likely ones raise an error listing them.
    eds : int, str or False, optional
        The EDS spectrum image, chosen the same way; by default the only one. ``False``
        ignores EDS.
    eds_signals : signal(s), optional
        Take the EDS cube from these instead (a second file).
    frame : int, optional
        Frame to use when the image is a stack.
    rgb : {"auto", "luminance"}
        "auto" accepts grey images stored as RGB and refuses colour pictures; "luminance"
        converts colour to grey.
    name : str, optional
        Dataset name (default: the image's title).
    **kwargs
        Any :class:`Dataset` argument; overrides the calibration read from the signals
        (``pixel_size``, ``pixel_unit``, ``eds_pixel_size``, ``energy_axis`` in keV,
        ``eds_binning``).

    Returns
    -------
    Dataset
        With ``metadata["notes"]`` listing conversions made, ``metadata["image_title"]`` and
        ``metadata["eds_title"]``.

    Raises
    ------
    FileFormatError
        When no image is found, the choice is ambiguous, or a selector matches nothing.
    InputError, CalibrationError
        When the chosen data cannot be segmented (see :class:`Dataset`).
    """
    items = signals if _is_items(signals) else items_from_signals(signals)
    eds_items = items if eds_signals is None else (
        eds_signals if _is_items(eds_signals) else items_from_signals(eds_signals))
    return _dataset(items, eds_items, image=image, eds=eds, frame=frame, rgb=rgb,
                    name=name, extra={}, kwargs=kwargs)


def _is_items(x: Any) -> bool:
    return isinstance(x, (list, tuple)) and bool(x) and all(isinstance(i, Item) for i in x)


def _dataset(items: list[Item], eds_items: list[Item], *, image, eds, frame, rgb, name,
             extra: dict, kwargs: dict, eds_extra: dict | None = None,
             default_name: str | None = None) -> Dataset:
    data, img_item = _choose_image(items, image, frame)
    arr, note = _grey(data, rgb, img_item.title or "the image")
    notes = [n for i in items for n in i.notes]
    notes += [note] if note else []
    cube = _choose_eds(eds_items, eds)
    px, unit = img_item.pixel_size, img_item.pixel_unit
    if extra.get("pixel_size") is not None:
        px, unit = float(extra["pixel_size"]), str(extra.get("pixel_unit", "nm"))
    args: dict[str, Any] = {"pixel_size": px, "pixel_unit": unit if px else "px",
                            "name": name or str(extra.get("name") or default_name
                                                or img_item.title or "image")}
    for key in ("ground_truth", "truth_classes"):
        if key in extra:
            args[key] = extra[key]
    if cube is not None:
        args["eds"] = cube.data
        args["energy_axis"] = cube.energy_axis
        eds_extra = eds_extra if eds_extra is not None else extra
        if eds_extra.get("eds_binning") is not None:
            args["eds_binning"] = float(eds_extra["eds_binning"])
        elif cube.pixel_size and px:
            eps = _convert(cube.pixel_size, cube.pixel_unit, unit)
            if eps is not None:
                args["eds_pixel_size"] = eps
            else:
                notes.append(f"EDS unit {cube.pixel_unit!r} not convertible to {unit!r}; binning from shapes")
    args.update(kwargs)
    if args.get("pixel_size") is None:
        args.pop("pixel_size")
    metadata = dict(args.pop("metadata", {}) or {})
    metadata.update(image_title=img_item.title, eds_title=None if cube is None else cube.title,
                    notes=notes)
    for n in notes:
        _logger.info(n)
    return Dataset(arr, metadata=metadata, **args)


# --------------------------------------------------------------------------- public entry
def load(
    path: str | os.PathLike,
    *,
    image: int | str | None = None,
    eds: int | str | bool | None = None,
    eds_path: str | os.PathLike | None = None,
    frame: int | None = None,
    lazy: bool | None = None,
    rgb: str = "auto",
    reader_kwargs: dict | None = None,
    **kwargs: Any,
) -> Dataset:
    """Read a microscope file (and optionally a second file with the EDS cube) as a Dataset.

    Parameters
    ----------
    path : str or Path
        ``.dm3 .dm4 .emd .bcf .tif .tiff .hspy .zspy .npy .npz .png``. An ``.npz`` holds
        arrays named ``image``, ``eds`` (rows, columns, energy), ``energy_axis`` (keV) and
        scalars ``pixel_size``, ``pixel_unit``, ``eds_pixel_size`` (see :func:`save_npz`).
    image, eds : int or str, optional
        Which signal is the image / the EDS cube when the file holds several: index or title
        substring (see :func:`describe`). ``eds=False`` ignores EDS.
    eds_path : str or Path, optional
        A second file holding the EDS spectrum image (e.g. a DigitalMicrograph SI saved
        apart from its survey image). Its calibration maps it onto the image.
    frame : int, optional
        Frame of an image stack to segment.
    lazy : bool, optional
        Keep big data as dask arrays; default: files above :data:`LAZY_THRESHOLD`. Only the
        2-D image is read into memory; the EDS cube is summed chunk-wise later.
    rgb : {"auto", "luminance"}
        Colour pictures are refused unless "luminance" (grey stored as RGB is always fine).
    reader_kwargs : dict, optional
        Passed to ``hyperspy.api.load`` (e.g. ``{"sum_frames": True}`` for Velox).
    **kwargs
        :class:`Dataset` arguments overriding the file's calibration: ``pixel_size``,
        ``pixel_unit``, ``eds_pixel_size``, ``energy_axis`` (keV), ``eds_binning``, ``name``.

    Returns
    -------
    Dataset
        ``metadata`` has ``source``, ``eds_source``, ``image_title``, ``eds_title``, ``lazy``
        and ``notes`` (conversions made while reading).

    Raises
    ------
    FileFormatError
        Missing, empty, unsupported, truncated or corrupt files; no image; an ambiguous
        choice (the message lists the candidates); colour pictures; image stacks without
        ``frame``. Every message names the file and says what to do.
    InputError, CalibrationError
        The data read cannot be segmented (NaN pixels, constant image, EDS field of view
        that does not match...); the message starts with the file name.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "img.npy")
    >>> np.save(p, np.random.default_rng(0).random((64, 64)))
    >>> load(p).shape
    (64, 64)
    """
    path = Path(path).expanduser()
    reader_kwargs = dict(reader_kwargs or {})
    items, extra = _read_items(path, lazy, reader_kwargs)
    eds_items, eds_extra = items, extra
    if eds_path is not None:
        eds_path = Path(eds_path).expanduser()
        eds_items, eds_extra = _read_items(eds_path, lazy, reader_kwargs)
        if eds_path.suffix.lower() == ".npy" and eds_items[0].role == "stack":
            eds_items[0].role = "eds"  # a 3-D array given as the EDS file is the cube
    try:
        ds = _dataset(items, eds_items, image=image, eds=eds, frame=frame, rgb=rgb,
                      name=kwargs.pop("name", None), default_name=path.stem, extra=extra,
                      eds_extra=eds_extra, kwargs=kwargs)
    except FileFormatError as err:
        raise FileFormatError(f"{path.name}: {err}") from None
    except SFWError as err:  # keep the type (InputError, CalibrationError), name the file
        raise type(err)(f"{path.name}: {err}") from None
    if eds_path is not None and ds.eds is None and eds is not False:
        raise FileFormatError(
            f"{eds_path.name} holds no EDS spectrum image (rows × columns × energy):"
            f"{_listing(eds_items)}")
    ds.metadata.update(source=str(path), eds_source=str(eds_path) if eds_path else None,
                       lazy=bool(ds.eds is not None and hasattr(ds.eds, "compute")))
    return ds


def describe(path: str | os.PathLike, *, lazy: bool = True) -> str:
    """List the signals a file holds, with the index/title to pass as ``image=``/``eds=``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.npz")
    >>> np.savez(p, image=np.zeros((8, 8)))
    >>> print(describe(p))
    x.npz:
      [0] 'image': image 8×8
    """
    path = Path(path)
    items, _ = _read_items(path, lazy, {})
    return f"{path.name}:" + _listing(items)


def save_npz(dataset: Dataset, path: str | os.PathLike) -> Path:
    """Write a Dataset (image, EDS cube, calibration) to one ``.npz`` that :func:`load` reads.

    The EDS cube is read into memory, so this is for small data (tests, demos, exchange).
    """
    import io as _io

    arrays: dict[str, Any] = {"image": dataset.image, "name": np.array(dataset.name)}
    if dataset.pixel_size:
        arrays.update(pixel_size=np.float64(dataset.pixel_size), pixel_unit=np.array(dataset.pixel_unit))
    if dataset.has_eds:
        arrays.update(eds=np.asarray(dataset.eds), energy_axis=np.asarray(dataset.energy_axis),
                      eds_binning=np.float64(dataset.eds_binning))
    if dataset.ground_truth is not None:
        arrays["ground_truth"] = dataset.ground_truth
    if dataset.truth_classes:
        arrays["truth_classes"] = np.array(dataset.truth_classes)  # unicode, not objects
    buf = _io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path = Path(path)
    atomic_write(path, buf.getvalue())
    return path


def load_upload(image: tuple[str, bytes], eds: tuple[str, bytes] | None = None, *,
                max_bytes: int | None = None, **kwargs: Any) -> Dataset:
    """Read uploaded files (name, content) as a Dataset; nothing of them is left on disk.

    The bytes go to a private temporary folder (unique name, mode 700) under their base names
    reduced to safe characters, are read entirely into memory (``lazy=False``: cubes are held
    to ``SFW_MAX_MEMORY_VOXELS``) and the folder is deleted however reading ends.

    Parameters
    ----------
    image : (str, bytes)
        The image file's name (only its extension and stem are used) and content.
    eds : (str, bytes), optional
        A second file with the EDS spectrum image.
    max_bytes : int, optional
        Refuse larger uploads (the dashboard's ``SFW_MAX_UPLOAD_MB``).
    **kwargs
        Passed to :func:`load` (``image=``, ``eds=``, ``frame=``, ...).

    Raises
    ------
    FileFormatError
        Empty or too large uploads, and everything :func:`load` raises.
    """
    from .atomic import temporary_folder
    from .paths import safe_name

    files = [image] + ([eds] if eds is not None else [])
    for name, content in files:
        if not content:
            raise FileFormatError(f"{name} is empty (0 bytes). Upload the file again.")
        if max_bytes is not None and len(content) > max_bytes:
            raise FileFormatError(
                f"{name} is {len(content) / 1e6:.0f} MB, over the {max_bytes / 1e6:.0f} MB upload limit. "
                "Use the Python API or batch mode for big files.")
    kwargs.setdefault("lazy", False)
    with temporary_folder("sfw_upload_") as folder:
        paths = []
        for role, (name, content) in zip(("image", "eds")[:len(files)], files, strict=True):
            base = Path(str(name).replace("\\", "/")).name  # never trust a client path
            stem, ext = os.path.splitext(base)
            path = folder / role / f"{safe_name(stem, max_len=80)}{ext.lower()}"
            path.parent.mkdir()
            path.write_bytes(content)
            paths.append(path)
        ds = load(paths[0], eds_path=paths[1] if eds is not None else None,
                  name=kwargs.pop("name", None) or Path(str(image[0]).replace("\\", "/")).stem or "upload",
                  **kwargs)
    ds.metadata.update(source=str(image[0]), eds_source=None if eds is None else str(eds[0]))
    return ds
