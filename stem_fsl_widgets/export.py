"""Write results: label/entropy maps (PNG, TIFF, .hspy with calibration), per-chip CSV, summaries.

Used by the widgets' export buttons and by batch mode alike; everything is written
atomically (temp file + rename) so a crash never leaves a half-written file under the real name.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .classify import Result
from .dataset import Dataset
from .scalebar import draw_scale_bar

__all__ = [
    "colourise",
    "chip_rows",
    "write_chip_csv",
    "write_maps",
    "write_summary_csv",
    "hex_to_rgb",
]


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    """``"#E69F00"`` → ``(230, 159, 0)``."""
    c = colour.lstrip("#")
    if len(c) == 3:
        c = "".join(ch * 2 for ch in c)
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def colourise(label_map: np.ndarray, colours: Sequence[str], *, image: np.ndarray | None = None,
              alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 picture of a label map, optionally blended over the grey image.

    Parameters
    ----------
    label_map : ndarray of int, shape (H, W)
        Class indices; -1 (uncovered) stays grey/black.
    colours : sequence of str
        Hex colour per class index.
    image : ndarray, shape (H, W), optional
        Shown underneath, contrast-stretched between its 1st and 99th percentiles.
    alpha : float
        Opacity of the class colours over the image.
    """
    lut = np.array([hex_to_rgb(c) for c in colours] + [(0, 0, 0)], dtype=np.float32)
    rgb = lut[np.where(label_map < 0, len(colours), label_map)]
    if image is None:
        return rgb.astype(np.uint8)
    lo, hi = np.percentile(image, [1, 99])
    grey = np.clip((image - lo) / max(hi - lo, 1e-12), 0, 1)[..., None] * 255.0
    a = np.where(label_map[..., None] < 0, 0.0, alpha)
    return np.clip((1 - a) * grey + a * rgb, 0, 255).astype(np.uint8)


def _write_bytes(path: Path, data: bytes) -> Path:
    from .session import _atomic_write

    _atomic_write(path, data)
    return path


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


def _csv_bytes(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue().encode()


def write_chip_csv(path: str | os.PathLike, result: Result) -> Path:
    """Per-chip table (see :func:`chip_rows`) as CSV."""
    return _write_bytes(Path(path), _csv_bytes(list(chip_rows(result))))


def write_summary_csv(path: str | os.PathLike, rows: Sequence[dict]) -> Path:
    """A table of dicts (e.g. one row of class fractions per image) as CSV; keys may vary."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    full = [{k: r.get(k, "") for k in keys} for r in rows]
    return _write_bytes(Path(path), _csv_bytes(full))


def _tiff_bytes(data: np.ndarray, dataset: Dataset, description: str) -> bytes:
    import tifffile

    buf = io.BytesIO()
    kwargs: dict = {"description": description}
    if dataset.pixel_size and dataset.pixel_unit not in ("px", ""):
        # ImageJ-style calibration: pixels per unit, unit in the ImageJ metadata.
        kwargs["resolution"] = (1.0 / dataset.pixel_size, 1.0 / dataset.pixel_size)
        # TIFF descriptions are ASCII: ImageJ writes µm as "micron" and escapes other symbols.
        unit = "micron" if dataset.pixel_unit in ("µm", "μm", "um") else "".join(
            c if ord(c) < 128 else f"\\u{ord(c):04X}" for c in dataset.pixel_unit)
        tifffile.imwrite(buf, data, imagej=True, metadata={"unit": unit},
                         resolution=kwargs["resolution"])
    else:
        tifffile.imwrite(buf, data, **kwargs)
    return buf.getvalue()


def _png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


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
    """
    prefix = Path(prefix)
    lab = result.label_map
    ent = result.entropy_map
    out: list[Path] = []
    for fmt in formats:
        fmt = fmt.lower().lstrip(".")
        if fmt == "png":
            cal = (dataset.pixel_size, dataset.pixel_unit)
            seg = draw_scale_bar(colourise(lab, result.colours, image=dataset.image), *cal)
            out.append(_write_bytes(prefix.with_name(prefix.name + "_labels.png"), _png_bytes(seg)))
            grey = (np.nan_to_num(ent) * 255).astype(np.uint8)
            grey = draw_scale_bar(np.repeat(grey[..., None], 3, axis=2), *cal)
            out.append(_write_bytes(prefix.with_name(prefix.name + "_entropy.png"), _png_bytes(grey)))
        elif fmt in ("tif", "tiff"):
            classes = ", ".join(f"{k}={c}" for k, c in enumerate(result.classes))
            lab_t = lab.astype(np.uint8) if lab.min() >= 0 and lab.max() < 255 else lab.astype(np.int16)
            out.append(_write_bytes(prefix.with_name(prefix.name + "_labels.tif"),
                                    _tiff_bytes(lab_t, dataset, f"labels: {classes}")))
            out.append(_write_bytes(prefix.with_name(prefix.name + "_entropy.tif"),
                                    _tiff_bytes(ent.astype(np.float32), dataset, "normalised entropy")))
        elif fmt == "hspy":
            out += _write_hspy(result, dataset, prefix)
        else:
            raise ValueError(f"Unknown export format {fmt!r}; use png, tif or hspy.")
    return out


def _write_hspy(result: Result, dataset: Dataset, prefix: Path) -> list[Path]:
    import hyperspy.api as hs

    paths = []
    for suffix, data in (("labels", result.label_map.astype(np.int16)),
                         ("entropy", result.entropy_map.astype(np.float32))):
        sig = hs.signals.Signal2D(data)
        sig.metadata.General.title = f"{dataset.name} {suffix}"
        sig.metadata.set_item("Segmentation.classes", list(result.classes))
        sig.metadata.set_item("Segmentation.colours", list(result.colours))
        for ax in sig.axes_manager.signal_axes:
            ax.scale = dataset.pixel_size or 1.0
            ax.units = dataset.pixel_unit
        path = prefix.with_name(f"{prefix.name}_{suffix}.hspy")
        tmp = path.with_name("." + path.name + ".tmp.hspy")
        sig.save(tmp, overwrite=True)
        os.replace(tmp, path)
        paths.append(path)
    return paths
