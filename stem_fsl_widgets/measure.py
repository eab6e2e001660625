"""Measure a segmentation in calibrated units: class areas, particle counts and particle sizes.

A *particle* is a connected region of one class in the pixel label map (scikit-image's
:func:`skimage.measure.label`); its size is the *equivalent diameter*, the diameter of the disc
with the same area, ``d = sqrt(4 A / π)`` (ImageJ's "Feret"-free size, scikit-image's
``equivalent_diameter_area``). Areas always count every pixel of a class; the particle filters
(``min_pixels``, ``exclude_border``) change only which regions are counted and sized.

Lengths are reported in nm (µm when the particles are a micrometre or more across) and areas
in nm² (µm² when the field of view is a square micrometre or more); an uncalibrated image is
measured in px and px², with a note saying so.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

__all__ = [
    "ClassMeasurement",
    "Measurements",
    "CLASS_COLUMNS",
    "PARTICLE_COLUMNS",
    "measure_labels",
    "measure_result",
    "measurements_csv",
    "size_histogram",
    "write_measurements_csv",
    "write_particles_csv",
]

#: Length units this module converts, as nanometres per unit.
_NM_PER_UNIT = {
    "pm": 1e-3, "Å": 0.1, "å": 0.1, "A": 0.1, "angstrom": 0.1, "nm": 1.0,
    "µm": 1e3, "μm": 1e3, "um": 1e3, "micron": 1e3, "mm": 1e6, "m": 1e9,
}
_UNCALIBRATED = ("", "px", "pixel", "pixels", "<undefined>", "none", "None")

#: Columns of :meth:`Measurements.rows` (the per-class table), in order.
CLASS_COLUMNS = ("class", "pixels", "area", "area_unit", "area_fraction", "particles", "diameter_mean",
                 "diameter_median", "diameter_std", "diameter_min", "diameter_max", "length_unit")
#: Columns of :meth:`Measurements.particle_rows` (one row per particle), in order.
PARTICLE_COLUMNS = ("class", "particle", "pixels", "area", "area_unit", "equivalent_diameter",
                    "length_unit", "centroid_row_px", "centroid_col_px")


@dataclass(frozen=True)
class ClassMeasurement:
    """What was measured for one class.

    Attributes
    ----------
    name : str
        Class name.
    pixels : int
        Number of pixels of the class (all of them, whatever the particle filters).
    area : float
        ``pixels`` in the measurement's area unit.
    area_fraction : float
        Share of the assigned (covered) pixels, in [0, 1].
    diameters : ndarray of float, shape (n_particles,)
        Equivalent diameter of each counted particle, in the measurement's length unit,
        in the order of the particle labels (row-major scan order of their first pixel).
    particle_pixels : ndarray of int, shape (n_particles,)
        Pixel count of each counted particle.
    centroids : ndarray of float, shape (n_particles, 2)
        ``(row, col)`` centroid of each counted particle, in image pixels.
    n_regions : int
        Connected regions before the particle filters.
    """

    name: str
    pixels: int
    area: float
    area_fraction: float
    diameters: np.ndarray
    particle_pixels: np.ndarray
    centroids: np.ndarray
    n_regions: int

    @property
    def n_particles(self) -> int:
        """Number of particles counted (after ``min_pixels`` and ``exclude_border``)."""
        return int(self.diameters.size)


@dataclass(frozen=True)
class Measurements:
    """Per-class areas, particle counts and sizes of one label map, with their units.

    Attributes
    ----------
    classes : list of ClassMeasurement
        One entry per class, in class-index order.
    length_unit : str
        Unit of the diameters: ``"nm"``, ``"µm"``, the data's own unit when it is not a known
        length unit, or ``"px"`` when uncalibrated.
    area_unit : str
        Unit of the areas, e.g. ``"nm²"``.
    pixel_size : float or None
        Pixel size in ``length_unit``; None when uncalibrated.
    pixel_area : float
        Area of one pixel in ``area_unit``.
    connectivity : int
        1 (pixels sharing an edge) or 2 (edge or corner) — see :func:`measure_labels`.
    min_pixels : int
    exclude_border : bool
    unassigned_pixels : int
        Pixels with label -1 (not covered by any chip), excluded from every figure.
    notes : list of str
        Plain-language caveats (uncalibrated image, unknown unit, nothing assigned).
    """

    classes: list[ClassMeasurement]
    length_unit: str
    area_unit: str
    pixel_size: float | None
    pixel_area: float
    connectivity: int
    min_pixels: int
    exclude_border: bool
    unassigned_pixels: int
    notes: list[str] = field(default_factory=list)

    @property
    def calibrated(self) -> bool:
        """True when sizes are physical lengths, not pixels."""
        return self.pixel_size is not None

    def __getitem__(self, name: str) -> ClassMeasurement:
        for c in self.classes:
            if c.name == name:
                return c
        raise KeyError(f"No class {name!r}; classes are {[c.name for c in self.classes]}.")

    def rows(self) -> list[dict[str, Any]]:
        """The per-class table: one dict per class, keys :data:`CLASS_COLUMNS`.

        ``area`` is in ``area_unit``, the diameter statistics (mean, median, standard deviation,
        min, max of the counted particles' equivalent diameters) in ``length_unit``; they are
        NaN for a class with no counted particle.
        """
        out = []
        for c in self.classes:
            d = c.diameters

            def stat(f: Any, d: np.ndarray = d) -> float:
                return _round(float(f(d))) if d.size else float("nan")

            out.append({
                "class": c.name, "pixels": c.pixels, "area": _round(c.area), "area_unit": self.area_unit,
                "area_fraction": _round(c.area_fraction), "particles": c.n_particles,
                "diameter_mean": stat(np.mean), "diameter_median": stat(np.median),
                "diameter_std": stat(np.std), "diameter_min": stat(np.min), "diameter_max": stat(np.max),
                "length_unit": self.length_unit,
            })
        return out

    def particle_rows(self) -> list[dict[str, Any]]:
        """One dict per counted particle, keys :data:`PARTICLE_COLUMNS` (centroid in image pixels)."""
        out = []
        for c in self.classes:
            for i in range(c.n_particles):
                out.append({
                    "class": c.name, "particle": i + 1, "pixels": int(c.particle_pixels[i]),
                    "area": _round(c.particle_pixels[i] * self.pixel_area), "area_unit": self.area_unit,
                    "equivalent_diameter": _round(float(c.diameters[i])), "length_unit": self.length_unit,
                    "centroid_row_px": _round(float(c.centroids[i, 0])),
                    "centroid_col_px": _round(float(c.centroids[i, 1])),
                })
        return out

    def summary(self) -> str:
        """A short plain-text table (one line per class), for a terminal or a notebook."""
        lines = [f"{'class':>16s} {'area (' + self.area_unit + ')':>16s} {'fraction':>9s} "
                 f"{'particles':>9s} {'median d (' + self.length_unit + ')':>16s}"]
        for r in self.rows():
            med = "–" if math.isnan(r["diameter_median"]) else f"{r['diameter_median']:.3g}"
            lines.append(f"{r['class']:>16s} {r['area']:16.4g} {100 * r['area_fraction']:8.1f}% "
                         f"{r['particles']:9d} {med:>16s}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _round(x: float) -> float:
    # 7 significant digits: more than a pixel-count measurement carries, fewer than float noise.
    return float(f"{x:.7g}") if math.isfinite(x) else x


def _units(pixel_size: float | None, unit: str, shape: tuple[int, int],
           notes: list[str]) -> tuple[float | None, str, str]:
    """Pixel size in a readable length unit, that unit and the area unit."""
    if pixel_size is None or str(unit).strip() in _UNCALIBRATED:
        notes.append("The image is not calibrated (no pixel size), so sizes are in pixels; "
                     "enter the pixel size (e.g. in nm) to measure in physical units.")
        return None, "px", "px²"
    if not (math.isfinite(pixel_size) and pixel_size > 0):
        raise InputError(f"pixel_size must be a positive number; got {pixel_size!r}.")
    unit = str(unit).strip()
    if unit not in _NM_PER_UNIT:
        notes.append(f"Unit {unit!r} is not a known length unit; sizes are given in {unit} as they are.")
        return float(pixel_size), unit, f"{unit}²"
    nm = pixel_size * _NM_PER_UNIT[unit]
    field_nm2 = shape[0] * shape[1] * nm * nm
    # Micrometres once the field of view reaches a square micrometre: 2.3 µm² reads better
    # than 2,300,000 nm², while 40 nm particles in a 50 nm field stay in nm.
    if field_nm2 >= 1e6:
        return nm / 1e3, "µm", "µm²"
    return nm, "nm", "nm²"


def _pixels(mask: np.ndarray, weight: np.ndarray | None) -> int:
    """Pixels under ``mask``: its count, or the summed cell sizes ``weight`` under it."""
    return int(mask.sum()) if weight is None else int(round(float(weight[mask].sum())))


def _region_sums(regions: np.ndarray, n: int, weight: np.ndarray | None, row_c: np.ndarray,
                 col_c: np.ndarray, block: int = 1 << 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels, and their summed row and column centres, of regions ``0..n`` (0: background).

    ``weight`` is each element's pixel count (None: 1); ``row_c``/``col_c`` the centre of each
    row/column in pixels. Summed over blocks of about ``block`` elements, so a large map needs
    no full-size coordinate arrays.
    """
    area, rows, cols = np.zeros(n + 1), np.zeros(n + 1), np.zeros(n + 1)
    step = max(1, block // max(regions.shape[1], 1))
    for a in range(0, regions.shape[0], step):
        part = regions[a:a + step]
        flat = part.ravel()
        w = np.ones(part.shape) if weight is None else weight[a:a + step]
        area += np.bincount(flat, weights=w.ravel(), minlength=n + 1)
        rows += np.bincount(flat, weights=(w * row_c[a:a + step, None]).ravel(), minlength=n + 1)
        cols += np.bincount(flat, weights=(w * col_c[None, :]).ravel(), minlength=n + 1)
    return area, rows, cols


def _border_mask(label_map: np.ndarray) -> np.ndarray:
    """Pixels on the image edge or next to an unassigned (-1) pixel: a particle there is cut."""
    from scipy.ndimage import binary_dilation

    edge = np.zeros(label_map.shape, dtype=bool)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    unassigned = label_map < 0
    if unassigned.any():
        edge |= binary_dilation(unassigned)
    return edge


def measure_labels(
    label_map: np.ndarray,
    classes: Sequence[str] | None = None,
    *,
    pixel_size: float | None = None,
    unit: str = "px",
    connectivity: int = 2,
    min_pixels: int = 1,
    exclude_border: bool = False,
    cell_sizes: tuple[np.ndarray, np.ndarray] | None = None,
) -> Measurements:
    """Areas, area fractions, particle counts and equivalent diameters of each class.

    Parameters
    ----------
    label_map : ndarray of int, shape (H, W)
        Class index per pixel (0..K-1); -1 = not assigned (not covered by any chip). Such
        pixels are left out of every figure, including the area fractions' denominator.
    classes : sequence of str, optional
        Class names, index order. Default: ``"class 0"``, ``"class 1"``, … up to the largest
        index present.
    pixel_size : float, optional
        Size of one pixel in ``unit``. None (or unit ``"px"``) measures in pixels, with a note.
    unit : str
        Length unit of ``pixel_size``: pm, Å, nm, µm (or um), mm or m are converted to nm or
        µm; any other string is kept as it is.
    connectivity : {1, 2}
        Which pixels touch, for :func:`skimage.measure.label`: 1 = sharing an edge
        (4-neighbourhood), 2 = sharing an edge or a corner (8-neighbourhood; the default, as in
        scikit-image and ImageJ's particle analyser).
    min_pixels : int
        Regions with fewer pixels are not counted as particles (their pixels still count in
        the class area). Use it to drop specks; the default 1 keeps every region.
    exclude_border : bool
        Do not count or size regions touching the image edge or an unassigned pixel: they are
        cut, so their size is underestimated. Leaving them out biases the distribution the
        other way (large particles touch the edge more often); report which you used.
    cell_sizes : (heights, widths), optional
        ``label_map`` is given per rectangular cell of a grid, not per pixel: cell ``(i, j)``
        is ``heights[i] × widths[j]`` pixels (e.g. a chip map,
        :attr:`Result.chip_label_cells <stem_fsl_widgets.Result.chip_label_cells>`). The
        figures are those of the pixel map the cells tile, areas, centroids and ``min_pixels``
        included, but the cost is that of the cells: the chip map of a click is measured in
        about a millisecond instead of hundreds.

    Returns
    -------
    Measurements
        With ``rows()`` (the per-class table), ``particle_rows()`` and ``summary()``.

    Raises
    ------
    InputError
        If the map is not a 2-D integer array, a label is below -1 or has no class name,
        ``connectivity`` is not 1 or 2, or ``pixel_size`` is not positive.

    Examples
    --------
    Two classes in a map of 0.5 nm pixels; class 1 is two 2×2 squares touching at a corner:

    >>> lab = np.zeros((6, 6), dtype=int)
    >>> lab[1:3, 1:3] = 1
    >>> lab[3:5, 3:5] = 1
    >>> m = measure_labels(lab, ["matrix", "particle"], pixel_size=0.5, unit="nm")
    >>> m["particle"].n_particles, m["particle"].area, m.area_unit  # corners touch: one particle
    (1, 2.0, 'nm²')
    >>> m4 = measure_labels(lab, ["matrix", "particle"], pixel_size=0.5, unit="nm", connectivity=1)
    >>> m4["particle"].diameters.round(3)  # two of 1 nm² each: sqrt(4 · 1 nm² / π)
    array([1.128, 1.128])

    A map given per cell of 2×2 pixels measures as the pixel map those cells tile:

    >>> cells = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 1]])
    >>> two = np.full(3, 2)
    >>> mc = measure_labels(cells, ["matrix", "particle"], connectivity=1, cell_sizes=(two, two))
    >>> mc["particle"].particle_pixels.tolist(), mc["particle"].centroids.tolist()
    ([4, 4], [[2.5, 2.5], [4.5, 4.5]])
    >>> mp = measure_labels(np.kron(cells, np.ones((2, 2), int)), ["matrix", "particle"], connectivity=1)
    >>> mp["particle"].particle_pixels.tolist(), mp["particle"].centroids.tolist()
    ([4, 4], [[2.5, 2.5], [4.5, 4.5]])
    """
    from skimage.measure import label as label_regions

    lab = np.asarray(label_map)
    if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer) or lab.size == 0:
        raise InputError(f"label_map must be a non-empty 2-D integer array; got {lab.dtype} {lab.shape}.")
    if int(lab.min()) < -1:
        raise InputError(
            f"label_map holds {int(lab.min())}; class indices are ≥ 0, and -1 means unassigned.")
    if connectivity not in (1, 2):
        raise InputError(
            f"connectivity must be 1 (edge neighbours) or 2 (edge or corner); got {connectivity!r}.")
    if int(min_pixels) < 1:
        raise InputError(f"min_pixels must be at least 1; got {min_pixels!r}.")
    if cell_sizes is None:
        heights, widths = np.ones(lab.shape[0], np.int64), np.ones(lab.shape[1], np.int64)
    else:
        heights, widths = (np.asarray(v).astype(np.int64).ravel() for v in cell_sizes)
        if heights.size != lab.shape[0] or widths.size != lab.shape[1] or (
                heights.min(initial=1) < 1 or widths.min(initial=1) < 1):
            raise InputError(
                f"cell_sizes must give one positive height per row ({lab.shape[0]}) and one "
                f"positive width per column ({lab.shape[1]}); got {heights.size} and {widths.size}.")
    shape = (int(heights.sum()), int(widths.sum()))  # in pixels
    # Each cell's pixel count (None: one pixel each) and the mean row / column of its pixels.
    weight = None if cell_sizes is None else np.outer(heights, widths).astype(np.float64)
    row_c = np.cumsum(heights) - heights - 0.5 + heights / 2.0
    col_c = np.cumsum(widths) - widths - 0.5 + widths / 2.0
    top = int(lab.max())
    names = [str(c) for c in classes] if classes is not None else [f"class {k}" for k in range(top + 1)]
    if top >= len(names):
        raise InputError(f"label_map holds class index {top}, but only {len(names)} class names were given.")

    notes: list[str] = []
    size, length_unit, area_unit = _units(pixel_size, unit, shape, notes)
    pixel_area = 1.0 if size is None else size * size
    assigned = _pixels(lab >= 0, weight)
    if assigned == 0:
        notes.append("No pixel is assigned to a class; there is nothing to measure.")
    border = _border_mask(lab) if exclude_border else None

    out = []
    for k, name in enumerate(names):
        mask = lab == k
        regions_map = label_regions(mask, connectivity=connectivity)
        n_regions = int(regions_map.max())
        area, rows, cols = _region_sums(regions_map, n_regions, weight, row_c, col_c)
        keep = np.arange(1, n_regions + 1)
        keep = keep[area[keep] >= min_pixels]
        if border is not None:
            keep = keep[~np.isin(keep, regions_map[border])]
        px = np.rint(area[keep]).astype(np.int64)
        n = _pixels(mask, weight)
        out.append(ClassMeasurement(
            name=name, pixels=n, area=n * pixel_area,
            area_fraction=n / assigned if assigned else 0.0,
            diameters=np.sqrt(4.0 * px * pixel_area / np.pi),
            particle_pixels=px,
            centroids=np.stack([rows[keep], cols[keep]], axis=1) / np.maximum(area[keep], 1)[:, None],
            n_regions=n_regions,
        ))
    return Measurements(classes=out, length_unit=length_unit, area_unit=area_unit, pixel_size=size,
                        pixel_area=pixel_area, connectivity=connectivity, min_pixels=int(min_pixels),
                        exclude_border=bool(exclude_border),
                        unassigned_pixels=int(shape[0] * shape[1] - assigned),
                        notes=notes)


def measure_result(result: Any, dataset: Any, **kwargs: Any) -> Measurements:
    """:func:`measure_labels` on a :class:`~stem_fsl_widgets.Result`'s pixel label map.

    Parameters
    ----------
    result : Result
        Its ``label_map`` and ``classes`` are measured.
    dataset : Dataset
        Its ``pixel_size`` and ``pixel_unit`` calibrate the sizes.
    **kwargs
        ``connectivity``, ``min_pixels``, ``exclude_border`` — see :func:`measure_labels`.

    Returns
    -------
    Measurements
    """
    return measure_labels(result.label_map, list(result.classes), pixel_size=dataset.pixel_size,
                          unit=dataset.pixel_unit, **kwargs)


def size_histogram(measurements: Measurements, *, bins: int | Sequence[float] = 20,
                   classes: Sequence[str] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Histogram of equivalent diameters per class, on one set of bin edges.

    Parameters
    ----------
    measurements : Measurements
    bins : int or sequence of float
        Number of equal bins from 0 to the largest diameter, or the edges (length unit).
    classes : sequence of str, optional
        Which classes (default: every class with at least one particle).

    Returns
    -------
    edges : ndarray, shape (n_bins + 1,)
        Bin edges in ``measurements.length_unit``.
    counts : dict of str to ndarray of int, shape (n_bins,)
        Particles per bin for each class.

    Examples
    --------
    >>> lab = np.zeros((8, 8), dtype=int); lab[1:3, 1:3] = 1; lab[5:7, 5:7] = 1
    >>> edges, counts = size_histogram(measure_labels(lab, ["a", "b"]), bins=[0, 2, 4])
    >>> counts["b"]
    array([0, 2])
    """
    chosen = [c for c in measurements.classes
              if (c.name in classes if classes is not None else c.n_particles)]
    if np.ndim(bins) == 0:
        top = max((float(c.diameters.max()) for c in chosen if c.n_particles), default=1.0)
        edges = np.linspace(0.0, top * (1 + 1e-9), int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=float)
    return edges, {c.name: np.histogram(c.diameters, bins=edges)[0] for c in chosen}


def measurements_csv(measurements: Measurements, *, particles: bool = False) -> bytes:
    """The per-class table, or one row per particle, as UTF-8 CSV bytes (for a download).

    Parameters
    ----------
    measurements : Measurements
    particles : bool
        False: :meth:`Measurements.rows` (columns :data:`CLASS_COLUMNS`); True:
        :meth:`Measurements.particle_rows` (columns :data:`PARTICLE_COLUMNS`).

    Returns
    -------
    bytes
        A header row always (also when there is no particle); NaN statistics are empty cells;
        text cells that a spreadsheet would run as a formula are escaped by the package's
        :func:`~stem_fsl_widgets.export.csv_safe`, as in every other CSV export.

    Examples
    --------
    >>> lab = np.zeros((4, 4), dtype=int); lab[1:3, 1:3] = 1
    >>> print(measurements_csv(measure_labels(lab, ["=bad", "dot"]), particles=True).decode())
    class,particle,pixels,area,area_unit,equivalent_diameter,length_unit,centroid_row_px,centroid_col_px
    '=bad,1,12,12.0,px²,3.90882,px,1.5,1.5
    dot,1,4,4.0,px²,2.256758,px,1.5,1.5
    <BLANKLINE>
    """
    from .export import csv_safe

    keys = PARTICLE_COLUMNS if particles else CLASS_COLUMNS
    rows = measurements.particle_rows() if particles else measurements.rows()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(keys)
    for row in rows:
        writer.writerow([
            "" if isinstance(v, float) and math.isnan(v) else csv_safe(v) for v in (row[k] for k in keys)
        ])
    return buf.getvalue().encode("utf-8")


def write_measurements_csv(path: str | os.PathLike, measurements: Measurements) -> Path:
    """Write the per-class table (see :func:`measurements_csv`) to ``path``, atomically."""
    from .atomic import atomic_write

    return atomic_write(Path(path), measurements_csv(measurements))


def write_particles_csv(path: str | os.PathLike, measurements: Measurements) -> Path:
    """Write one row per particle (see :func:`measurements_csv`) to ``path``, atomically."""
    from .atomic import atomic_write

    return atomic_write(Path(path), measurements_csv(measurements, particles=True))
