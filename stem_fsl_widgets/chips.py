"""Cut an image into a grid of square chips and sum each chip's EDS spectra.

Edge policy
-----------
Chips start at ``0, stride, 2*stride, ...`` along each axis. When the last regular chip
stops short of the image edge, ``edge="shift"`` (the default) adds one more chip flush with
the edge, so every pixel belongs to at least one chip and every chip has full size (that
last chip overlaps its neighbour more than the others). ``edge="drop"`` leaves the
remainder uncovered; those pixels get label -1 in pixel maps.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .errors import CalibrationError, GridError, InputError

__all__ = ["ChipGrid", "chip_spectra", "eds_ranges"]

MIN_CHIP = 4


def _starts(n: int, size: int, stride: int, edge: str) -> np.ndarray:
    starts = np.arange(0, n - size + 1, stride, dtype=np.int64)
    if edge == "shift" and starts[-1] + size < n:
        starts = np.append(starts, n - size)
    return starts


@dataclass(frozen=True)
class ChipGrid:
    """A regular grid of square chips over an image of shape ``(height, width)``.

    Chip ``i`` sits at grid position ``(row, col) = divmod(i, n_cols)`` and covers the
    pixel box ``[y0, y1) × [x0, x1)``.

    Parameters
    ----------
    height, width : int
        Image shape in pixels.
    size : int
        Chip side in pixels (≥ 4 and ≤ the image's shorter side).
    stride : int, optional
        Step between chip origins in pixels, ``1 ≤ stride ≤ size``; ``stride < size`` gives
        overlapping chips. Defaults to ``size``.
    edge : {"shift", "drop"}
        Policy for the remainder at the right and bottom edges (see module docstring).

    Raises
    ------
    GridError
        If the chip is larger than the image, smaller than 4 px, or the stride is out of range.

    Examples
    --------
    >>> g = ChipGrid(100, 100, 32)
    >>> g.n_rows, g.n_cols, g.box(3)
    (4, 4, (0, 68, 32, 100))
    >>> int(g.chip_at(40, 5))
    4
    """

    height: int
    width: int
    size: int
    stride: int | None = None
    edge: str = "shift"

    def __post_init__(self) -> None:
        size = int(self.size)
        stride = size if self.stride is None else int(self.stride)
        if size < MIN_CHIP:
            raise GridError(f"Chip size {size} px is too small; use at least {MIN_CHIP} px.")
        if size > min(self.height, self.width):
            raise GridError(
                f"Chip size {size} px is larger than the image ({self.height}×{self.width}); "
                f"choose a chip size ≤ {min(self.height, self.width)} px."
            )
        if stride < 1 or stride > size:
            raise GridError(
                f"Stride {stride} is out of range; it must be between 1 and the chip size ({size}). "
                "A stride larger than the chip would leave gaps between chips."
            )
        if self.edge not in ("shift", "drop"):
            raise GridError(f"edge must be 'shift' or 'drop', not {self.edge!r}.")
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "stride", stride)
        object.__setattr__(self, "row_starts", _starts(self.height, size, stride, self.edge))
        object.__setattr__(self, "col_starts", _starts(self.width, size, stride, self.edge))

    row_starts: np.ndarray = field(default=None, init=False, repr=False, compare=False)
    col_starts: np.ndarray = field(default=None, init=False, repr=False, compare=False)

    @property
    def n_rows(self) -> int:
        """Number of chip rows."""
        return int(self.row_starts.size)

    @property
    def n_cols(self) -> int:
        """Number of chip columns."""
        return int(self.col_starts.size)

    @property
    def n_chips(self) -> int:
        """Number of chips, ``n_rows * n_cols``."""
        return self.n_rows * self.n_cols

    @property
    def shape(self) -> tuple[int, int]:
        """Grid shape ``(n_rows, n_cols)``."""
        return self.n_rows, self.n_cols

    def rowcol(self, i: int | np.ndarray) -> tuple:
        """Grid position ``(row, col)`` of chip index ``i``."""
        self._check_index(i)
        return np.divmod(i, self.n_cols) if isinstance(i, np.ndarray) else divmod(int(i), self.n_cols)

    def index(self, row: int, col: int) -> int:
        """Chip index at grid position ``(row, col)``."""
        if not (0 <= row < self.n_rows and 0 <= col < self.n_cols):
            raise IndexError(f"grid position ({row}, {col}) outside a {self.n_rows}×{self.n_cols} grid")
        return int(row) * self.n_cols + int(col)

    def box(self, i: int) -> tuple[int, int, int, int]:
        """Pixel box ``(y0, x0, y1, x1)`` of chip ``i`` (end-exclusive)."""
        r, c = self.rowcol(int(i))
        y0, x0 = int(self.row_starts[r]), int(self.col_starts[c])
        return y0, x0, y0 + self.size, x0 + self.size

    @property
    def boxes(self) -> np.ndarray:
        """All boxes, shape (N, 4), int64, rows of ``(y0, x0, y1, x1)``."""
        y0 = np.repeat(self.row_starts, self.n_cols)
        x0 = np.tile(self.col_starts, self.n_rows)
        return np.stack([y0, x0, y0 + self.size, x0 + self.size], axis=1)

    def _check_index(self, i) -> None:
        arr = np.asarray(i)
        if arr.size and (arr.min() < 0 or arr.max() >= self.n_chips):
            raise IndexError(f"chip index {i} out of range for a grid of {self.n_chips} chips")

    @staticmethod
    def _nearest(starts: np.ndarray, size: int, v: np.ndarray) -> np.ndarray:
        # Among the chips containing pixel v, the one whose centre is nearest the pixel centre
        # v + 0.5 (ties go to the earlier chip) — the same rule the canvas uses for its cells.
        centres = starts + size / 2.0
        c = v + 0.5
        j = np.searchsorted(centres, c)
        left = np.clip(j - 1, 0, starts.size - 1)
        right = np.clip(j, 0, starts.size - 1)
        in_l = (v >= starts[left]) & (v < starts[left] + size)
        in_r = (v >= starts[right]) & (v < starts[right] + size)
        take_left = in_l & (~in_r | (np.abs(c - centres[left]) <= np.abs(centres[right] - c)))
        return np.where(take_left, left, np.where(in_r, right, -1))

    def chip_at(self, y: float, x: float) -> int | np.ndarray:
        """Index of the chip under image pixel ``(y, x)``; -1 outside every chip.

        With overlapping chips the chip whose centre is nearest wins.
        Accepts scalars or arrays of coordinates.
        """
        yy, xx = np.asarray(y, dtype=float), np.asarray(x, dtype=float)
        valid = (yy >= 0) & (yy < self.height) & (xx >= 0) & (xx < self.width)
        # Compare pixel centres with chip centres: pixel k spans [k, k+1), so a pixel on the
        # boundary between two chips is not a tie (which the earlier chip would win wrongly).
        r = self._nearest(self.row_starts, self.size, np.floor(yy) + 0.5)
        c = self._nearest(self.col_starts, self.size, np.floor(xx) + 0.5)
        out = np.where(valid & (r >= 0) & (c >= 0), r * self.n_cols + c, -1)
        return int(out) if out.ndim == 0 else out

    def view(self, image: np.ndarray) -> np.ndarray:
        """Chips as a read-only strided view, shape (n_rows, n_cols, size, size).

        A true view (no copy) when the starts are regular; the ``shift`` edge chip breaks
        regularity, in which case the chips are gathered (a copy).
        """
        windows = np.lib.stride_tricks.sliding_window_view(image, (self.size, self.size))
        regular = (np.all(np.diff(self.row_starts) == self.stride)
                   and np.all(np.diff(self.col_starts) == self.stride))
        if regular:
            return windows[:: self.stride, :: self.stride][: self.n_rows, : self.n_cols]
        return windows[np.ix_(self.row_starts, self.col_starts)]

    def extract(self, image: np.ndarray, indices: np.ndarray | None = None) -> np.ndarray:
        """Chips as an array of shape (n, size, size) (a copy), for ``indices`` or all chips."""
        self._check_image(image)
        windows = np.lib.stride_tricks.sliding_window_view(image, (self.size, self.size))
        idx = np.arange(self.n_chips) if indices is None else np.asarray(indices, dtype=np.int64)
        r, c = np.divmod(idx, self.n_cols)
        return windows[self.row_starts[r], self.col_starts[c]]

    def batches(self, image: np.ndarray, batch_size: int = 256) -> Iterator[np.ndarray]:
        """Yield chips in order, ``batch_size`` at a time, so memory stays bounded."""
        for start in range(0, self.n_chips, batch_size):
            yield self.extract(image, np.arange(start, min(start + batch_size, self.n_chips)))

    def _check_image(self, image: np.ndarray) -> None:
        if tuple(image.shape[:2]) != (self.height, self.width):
            raise GridError(
                f"This grid was made for a {self.height}×{self.width} image, not {image.shape[:2]}."
            )

    def cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Split each axis into cells covered by the same set of chips.

        Returns
        -------
        y_edges, x_edges : ndarray
            Cell boundaries in pixels (cells are ``[edges[i], edges[i+1])``).
        y_cover, x_cover : ndarray of bool, shape (n_cells, n_rows) and (n_cells, n_cols)
            Which chip rows/columns cover each cell.
        """
        out = []
        for starts, n in ((self.row_starts, self.height), (self.col_starts, self.width)):
            edges = np.unique(np.concatenate([[0, n], starts, starts + self.size]))
            lo, hi = edges[:-1], edges[1:]
            cover = (starts[None, :] <= lo[:, None]) & (starts[None, :] + self.size >= hi[:, None])
            out.append((edges, cover))
        return out[0][0], out[1][0], out[0][1], out[1][1]

    def to_pixels(self, chip_values: np.ndarray, *, reduce: str = "mean") -> np.ndarray:
        """Spread per-chip values (N, ...) to a pixel map (H, W, ...) averaging overlaps.

        Pixels covered by no chip get NaN (float output).
        """
        vals = np.asarray(chip_values, dtype=np.float64).reshape(self.n_rows, self.n_cols, -1)
        ye, xe, yc, xc = self.cells()
        summed = np.einsum("ar,rck,bc->abk", yc.astype(float), vals, xc.astype(float), optimize=True)
        count = yc.sum(1)[:, None] * xc.sum(1)[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            cell = summed / count[..., None]
        cell[count == 0] = np.nan
        pix = np.repeat(np.repeat(cell, np.diff(ye), axis=0), np.diff(xe), axis=1)
        tail = np.asarray(chip_values).shape[1:]
        return pix.reshape(self.height, self.width, *tail)


def eds_ranges(starts: np.ndarray, size: int, binning: float, n_eds: int) -> tuple[np.ndarray, np.ndarray]:
    """EDS pixel ranges ``[lo, hi)`` whose centres fall inside each chip span.

    An EDS pixel ``j`` covers image pixels ``[j*b, (j+1)*b)``; it is assigned to a chip when its
    centre lies inside the chip. Chips narrower than one EDS pixel take the pixel under their
    centre, so every chip gets at least one spectrum.
    """
    centres = (np.arange(n_eds) + 0.5) * binning
    lo = np.searchsorted(centres, starts, side="left")
    hi = np.searchsorted(centres, starts + size, side="left")
    empty = hi <= lo
    if np.any(empty):
        mid = np.clip(((starts + size / 2.0) / binning).astype(np.int64), 0, n_eds - 1)
        lo = np.where(empty, mid, lo)
        hi = np.where(empty, mid + 1, hi)
    return lo.astype(np.int64), hi.astype(np.int64)


def _raise_non_finite(slab: np.ndarray, row0: int) -> None:
    """Refuse an EDS slab with NaN or infinite counts, saying where the first one is."""
    bad = ~np.isfinite(slab)
    y, x, e = np.argwhere(bad)[0]
    raise InputError(
        f"The EDS cube holds NaN or infinite counts ({int(bad.sum())} in EDS rows {row0}–"
        f"{row0 + slab.shape[0] - 1}; the first at EDS pixel (row {row0 + int(y)}, column {int(x)}), "
        f"channel {int(e)}). Replace them (e.g. with 0 for dead pixels) or crop them out before "
        "loading; a NaN would make every probability NaN."
    )


def chip_spectra(eds, grid: ChipGrid, binning: float, *, progress=None) -> np.ndarray:
    """Sum the EDS spectra inside each chip, chunk-wise by chip row.

    Parameters
    ----------
    eds : array-like, shape (Ye, Xe, E)
        Spectrum image in counts (numpy, memmap or dask; only one chip row of EDS rows
        is loaded at a time, so a cube larger than memory is never densified).
    grid : ChipGrid
        The image's chip grid.
    binning : float
        Image pixels per EDS pixel.
    progress : callable, optional
        Called with the fraction done (0–1) after each chip row.

    Returns
    -------
    ndarray, shape (N, E), float32
        Summed counts per chip.

    Raises
    ------
    CalibrationError
        If the EDS map does not cover the image.
    """
    ye, xe, n_e = (int(s) for s in eds.shape)
    if abs(ye * binning - grid.height) > max(binning, 0.02 * grid.height) or abs(
        xe * binning - grid.width
    ) > max(binning, 0.02 * grid.width):
        raise CalibrationError(
            f"The EDS map ({ye}×{xe} at binning {binning:g}) does not cover the {grid.height}×"
            f"{grid.width} image; check the binning or crop both to the same field of view."
        )
    rlo, rhi = eds_ranges(grid.row_starts, grid.size, binning, ye)
    clo, chi = eds_ranges(grid.col_starts, grid.size, binning, xe)
    out = np.empty((grid.n_rows, grid.n_cols, n_e), dtype=np.float32)
    cache: dict[tuple[int, int], np.ndarray] = {}
    for r in range(grid.n_rows):
        key = (int(rlo[r]), int(rhi[r]))
        if key not in cache:
            slab = eds[key[0] : key[1]]
            if hasattr(slab, "compute"):  # dask: load just this slab
                slab = slab.compute()
            # Sum in float64 (a float32 sum of a big cube overflows), then a running sum along x.
            slab = np.asarray(slab)
            acc = slab.sum(axis=0, dtype=np.float64)
            if not np.all(np.isfinite(acc)):
                _raise_non_finite(slab, key[0])
            cache = {key: np.concatenate([np.zeros((1, n_e)), np.cumsum(acc, axis=0)])}
        csum = cache[key]
        with np.errstate(over="ignore"):  # checked below, with a message
            out[r] = (csum[chi] - csum[clo]).astype(np.float32)
        if progress is not None:
            progress((r + 1) / grid.n_rows)
    if not np.all(np.isfinite(out)):
        raise InputError(
            "The EDS counts summed over a chip exceed the float32 range; the cube does not hold "
            "X-ray counts (check its scale, or load the raw counts)."
        )
    if np.any(out < 0):
        raise CalibrationError(
            "The EDS cube has negative counts; it must hold raw X-ray counts (≥ 0). Undo any "
            "background subtraction before loading."
        )
    return out.reshape(grid.n_chips, n_e)
