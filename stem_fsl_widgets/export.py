"""Write results: label/entropy maps (PNG, TIFF, .hspy with calibration), per-chip CSV, summaries.

Two ways out, from the same code:

- files (:func:`write_maps`, :func:`write_chip_csv`, :func:`write_summary_csv`), used by
  scripts, the command line and batch mode; every file is written atomically (a unique temp
  file in the destination folder, then a rename), so a crash never leaves half a file under
  the real name and a planted symlink is never followed;
- bytes (:func:`export_bytes`, :func:`export_zip`), for hosted apps, which hand them to the
  browser as downloads and so never write on the server.

Every CSV cell that a spreadsheet would run as a formula (text starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return) is prefixed with a single quote, as OWASP advises
against CSV injection. Big maps are coloured in bands of rows, so an export never holds
full-size float copies of the image.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path, atomic_write, temporary_folder
from .classify import Result
from .colours import normalise_colour
from .dataset import Dataset
from .errors import InputError
from .legend import add_class_legend, add_colour_bar
from .paths import safe_name
from .scalebar import draw_scale_bar

__all__ = [
    "EXPORTS",
    "chip_rows",
    "colourise",
    "csv_safe",
    "export_bytes",
    "export_zip",
    "hex_to_rgb",
    "summary_csv_bytes",
    "write_chip_csv",
    "write_maps",
    "write_summary_csv",
]

#: What :func:`export_bytes` can produce (the file name's suffix after ``<dataset name>_``).
EXPORTS = ("labels.png", "entropy.png", "labels.tif", "entropy.tif", "labels.hspy", "entropy.hspy",
           "chips.csv", "session.json")

#: Rows coloured at a time: bounds the temporary float arrays to ~BAND × width × 3.
BAND = 512

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    """``"#E69F00"`` → ``(230, 159, 0)``; any colour :func:`.colours.normalise_colour` accepts."""
    c = normalise_colour(colour)
    return int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)


def _stretch(image: np.ndarray) -> tuple[float, float]:
    """1st and 99th percentiles of ``image``, from a subsample when it is big (no full copy)."""
    step = max(1, int(np.sqrt(image.size / 4_000_000)))
    lo, hi = np.percentile(image[::step, ::step], [1, 99])
    return float(lo), float(hi)


def colourise(label_map: np.ndarray, colours: Sequence[str], *, image: np.ndarray | None = None,
              alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 picture of a label map, optionally blended over the grey image.

    Parameters
    ----------
    label_map : ndarray of int, shape (H, W)
        Class indices; -1 (uncovered) stays grey/black.
    colours : sequence of str
        Colour per class index (hex or CSS name).
    image : ndarray, shape (H, W), optional
        Shown underneath, contrast-stretched between its 1st and 99th percentiles.
    alpha : float
        Opacity of the class colours over the image.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        Computed in bands of :data:`BAND` rows: the only full-size array is this result.
    """
    lut = np.array([hex_to_rgb(c) for c in colours] + [(0, 0, 0)], dtype=np.float32)
    h, w = label_map.shape
    out = np.empty((h, w, 3), dtype=np.uint8)
    lo, hi = _stretch(image) if image is not None else (0.0, 1.0)
    span = np.float32(max(hi - lo, 1e-12))
    for y in range(0, h, BAND):
        lab = label_map[y:y + BAND]
        rgb = lut[np.where(lab < 0, len(colours), lab)]
        if image is None:
            out[y:y + BAND] = rgb.astype(np.uint8)
            continue
        grey = np.clip((image[y:y + BAND].astype(np.float32) - np.float32(lo)) / span, 0, 1)[..., None]
        grey *= np.float32(255.0)
        a = np.where(lab[..., None] < 0, np.float32(0.0), np.float32(alpha))
        out[y:y + BAND] = np.clip((1 - a) * grey + a * rgb, 0, 255).astype(np.uint8)
    return out


def _entropy_grey(ent: np.ndarray) -> np.ndarray:
    """Entropy map as an RGB uint8 picture (white = unsure), in bands."""
    h, w = ent.shape
    out = np.empty((h, w, 3), dtype=np.uint8)
    for y in range(0, h, BAND):
        out[y:y + BAND] = (np.nan_to_num(ent[y:y + BAND]) * 255).astype(np.uint8)[..., None]
    return out


# --------------------------------------------------------------------------- CSV
def csv_safe(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs as a formula (OWASP: prefix a single quote).

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
    ``'``, unless it is a plain number (``-0.5``); other values pass unchanged.

    Examples
    --------
    >>> csv_safe("=HYPERLINK(1)"), csv_safe("-0.5"), csv_safe("oxide"), csv_safe(-2)
    ("'=HYPERLINK(1)", '-0.5', 'oxide', -2)
    """
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def chip_rows(result: Result) -> Iterable[dict]:
    """One dict per chip: index, grid position, box, class, probabilities, entropy, flags."""
    g = result.grid
    boxes = g.boxes
    for i in range(g.n_chips):
        r, c = divmod(i, g.n_cols)
        row = {"chip": i, "row": r, "col": c, "y0": int(boxes[i, 0]), "x0": int(boxes[i, 1]),
               "y1": int(boxes[i, 2]), "x1": int(boxes[i, 3]),
               "class": result.classes[result.labels[i]]}
        for k, name in enumerate(result.classes):
            row[f"p_{name}"] = round(float(result.probabilities[i, k]), 6)
        row.update(entropy=round(float(result.entropy[i]), 6), uncertain=bool(result.uncertain[i]),
                   is_support=bool(result.is_support[i]))
        yield row


def _csv_bytes(rows: list[dict], keys: list[str] | None = None) -> bytes:
    buf = io.StringIO()
    keys = keys if keys is not None else (list(rows[0]) if rows else [])
    if keys:
        writer = csv.writer(buf)
        writer.writerow([csv_safe(k) for k in keys])
        for r in rows:
            writer.writerow([csv_safe(r.get(k, "")) for k in keys])
    return buf.getvalue().encode()


def chip_csv_bytes(result: Result) -> bytes:
    """The per-chip table (see :func:`chip_rows`) as CSV bytes."""
    return _csv_bytes(list(chip_rows(result)))


def write_chip_csv(path: str | os.PathLike, result: Result) -> Path:
    """Per-chip table (see :func:`chip_rows`) as CSV."""
    return atomic_write(Path(path), chip_csv_bytes(result))


def summary_csv_bytes(rows: Sequence[dict]) -> bytes:
    """A table of dicts (e.g. one row of class fractions per image) as CSV bytes.

    Keys may vary between rows: the columns are every key, in order of first appearance.
    """
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    return _csv_bytes(list(rows), keys)


def write_summary_csv(path: str | os.PathLike, rows: Sequence[dict]) -> Path:
    """A table of dicts (e.g. one row of class fractions per image) as CSV; keys may vary."""
    return atomic_write(Path(path), summary_csv_bytes(rows))


# --------------------------------------------------------------------------- maps
def _tiff(target: Any, data: np.ndarray, dataset: Dataset, description: str) -> None:
    """Write ``data`` as TIFF to a path or file object, with ImageJ calibration when known."""
    import tifffile

    if dataset.pixel_size and dataset.pixel_unit not in ("px", ""):
        # ImageJ-style calibration: pixels per unit, unit in the ImageJ metadata.
        resolution = (1.0 / dataset.pixel_size, 1.0 / dataset.pixel_size)
        # TIFF descriptions are ASCII: ImageJ writes µm as "micron" and escapes other symbols.
        unit = "micron" if dataset.pixel_unit in ("µm", "μm", "um") else "".join(
            c if ord(c) < 128 else f"\\u{ord(c):04X}" for c in dataset.pixel_unit)
        tifffile.imwrite(target, data, imagej=True, metadata={"unit": unit}, resolution=resolution)
    else:
        tifffile.imwrite(target, data, description=description)


def _png(target: Any, rgb: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(rgb).save(target, format="PNG")


def _label_picture(result: Result, dataset: Dataset) -> np.ndarray:
    cal = (dataset.pixel_size, dataset.pixel_unit)
    rgb = draw_scale_bar(colourise(result.label_map, result.colours, image=dataset.image), *cal)
    return add_class_legend(rgb, result.classes, result.colours)


def _entropy_picture(result: Result, dataset: Dataset) -> np.ndarray:
    return add_colour_bar(draw_scale_bar(_entropy_grey(result.entropy_map), dataset.pixel_size,
                                         dataset.pixel_unit))


def _label_array(result: Result) -> tuple[np.ndarray, str]:
    lab = result.label_map
    classes = ", ".join(f"{k}={c}" for k, c in enumerate(result.classes))
    small = lab.min() >= 0 and lab.max() < 255
    return (lab.astype(np.uint8) if small else lab.astype(np.int16, copy=False)), f"labels: {classes}"


def _picture(target: Any, kind: str, result: Result, dataset: Dataset) -> None:
    """Write a PNG or TIFF map of ``kind`` into ``target`` (a path or a binary buffer)."""
    if kind == "labels.png":
        _png(target, _label_picture(result, dataset))
    elif kind == "entropy.png":
        _png(target, _entropy_picture(result, dataset))
    elif kind == "labels.tif":
        data, desc = _label_array(result)
        _tiff(target, data, dataset, desc)
    elif kind == "entropy.tif":
        _tiff(target, result.entropy_map.astype(np.float32, copy=False), dataset, "normalised entropy")
    else:  # pragma: no cover - callers pass known kinds
        raise InputError(f"Unknown map {kind!r}.")


def _write_map(path: Path, kind: str, result: Result, dataset: Dataset) -> Path:
    """One map file, written straight into a unique temp file beside ``path`` then renamed."""
    with atomic_path(path) as tmp:
        if kind in ("labels.png", "entropy.png", "labels.tif", "entropy.tif"):
            _picture(tmp, kind, result, dataset)
        elif kind in ("labels.hspy", "entropy.hspy"):
            _hspy_signal(result, dataset, kind.split(".")[0]).save(tmp, overwrite=True)
        else:  # pragma: no cover - callers pass known kinds
            raise InputError(f"Unknown map {kind!r}.")
    return path


def write_maps(
    result: Result,
    dataset: Dataset,
    prefix: str | os.PathLike,
    *,
    formats: Sequence[str] = ("png", "tif"),
) -> list[Path]:
    """Write ``<prefix>_labels.*`` and ``<prefix>_entropy.*`` in the given formats.

    ``png``: the segmentation blended over the image, and the entropy as greys (white = unsure),
    each with a scale bar when the data are calibrated.
    ``tif``: label indices (uint8/int16, -1 = uncovered) and entropy (float32), with the pixel
    size in the ImageJ calibration. ``hspy``: HyperSpy signals with calibrated axes and the
    class names in the metadata.

    Raises
    ------
    InputError
        For an unknown format (before anything is written).
    OSError
        When the folder cannot be written; no half-written file is left.
    """
    prefix = Path(prefix)
    kinds = []
    for fmt in formats:
        fmt = str(fmt).lower().lstrip(".")
        fmt = "tif" if fmt == "tiff" else fmt
        if fmt not in ("png", "tif", "hspy"):
            raise InputError(f"Unknown export format {fmt!r}; use png, tif or hspy.")
        kinds += [f"labels.{fmt}", f"entropy.{fmt}"]
    return [_write_map(prefix.with_name(f"{prefix.name}_{k}"), k, result, dataset) for k in kinds]


def _hspy_signal(result: Result, dataset: Dataset, suffix: str):
    import hyperspy.api as hs

    data = (result.label_map.astype(np.int16, copy=False) if suffix == "labels"
            else result.entropy_map.astype(np.float32, copy=False))
    sig = hs.signals.Signal2D(data)
    sig.metadata.General.title = f"{dataset.name} {suffix}"
    sig.metadata.set_item("Segmentation.classes", list(result.classes))
    sig.metadata.set_item("Segmentation.colours", list(result.colours))
    for ax in sig.axes_manager.signal_axes:
        ax.scale = dataset.pixel_size or 1.0
        ax.units = dataset.pixel_unit
    return sig


# --------------------------------------------------------------------------- downloads
def _dataset_of(session_or_dataset: Any) -> tuple[Dataset, Any]:
    if isinstance(session_or_dataset, Dataset):
        return session_or_dataset, None
    return session_or_dataset.dataset, session_or_dataset


def export_bytes(result: Result | None, session: Any, what: str) -> tuple[str, bytes]:
    """One export as ``(file name, bytes)``, for a browser download; nothing is written.

    Parameters
    ----------
    result : Result or None
        The segmentation to export (None only for ``"session.json"``).
    session : Session or Dataset
        Gives the image, its calibration and name (and the session JSON).
    what : str
        One of :data:`EXPORTS`: ``"labels.png"``, ``"entropy.png"``, ``"labels.tif"``,
        ``"entropy.tif"``, ``"labels.hspy"``, ``"entropy.hspy"``, ``"chips.csv"``,
        ``"session.json"``.

    Returns
    -------
    (str, bytes)
        ``<dataset name>_<what>`` (the name reduced to safe characters) and the content.

    Raises
    ------
    InputError
        Unknown ``what``, no result to export, or a session export without a session.
    """
    dataset, sess = _dataset_of(session)
    if what not in EXPORTS:
        raise InputError(f"Unknown export {what!r}; choose one of {', '.join(EXPORTS)}.")
    name = f"{safe_name(dataset.name)}_{what}"
    if what == "session.json":
        if sess is None:
            raise InputError("A session export needs the session, not only its dataset.")
        import json

        return name, json.dumps(sess.to_dict(), indent=1).encode()
    if result is None:
        raise InputError("Nothing to export yet: label at least one chip in each of two classes.")
    if what == "chips.csv":
        return name, chip_csv_bytes(result)
    if what.endswith(".hspy"):
        with temporary_folder("sfw_export_") as folder:
            path = _write_map(folder / name, what, result, dataset)
            return name, path.read_bytes()
    buf = io.BytesIO()
    _picture(buf, what, result, dataset)
    return name, buf.getvalue()


def export_zip(result: Result | None, session: Any,
               whats: Sequence[str] = ("labels.png", "entropy.png", "labels.tif", "entropy.tif",
                                       "chips.csv", "session.json")) -> tuple[str, bytes]:
    """Several exports in one zip, as ``(file name, bytes)``, for one browser download.

    Parameters
    ----------
    result, session
        As for :func:`export_bytes`.
    whats : sequence of str
        Members (see :data:`EXPORTS`); ``session.json`` is left out when ``session`` is a
        Dataset.

    Returns
    -------
    (str, bytes)
        ``<dataset name>_export.zip`` and the zip's bytes (PNG and TIFF stored, text deflated).
    """
    dataset, sess = _dataset_of(session)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for what in whats:
            if what == "session.json" and sess is None:
                continue
            name, data = export_bytes(result, session, what)
            packed = what.endswith((".csv", ".json", ".tif", ".hspy"))
            zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if packed else zipfile.ZIP_STORED)
    return f"{safe_name(dataset.name)}_export.zip", buf.getvalue()
