"""What the views draw, as arrays: chip overlay, display image, fractions, entropy histogram.

Pure functions of a session's state; no widget toolkit. Both apps (the notebook widgets and
the Panel app) draw exactly these arrays, so they cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ..classify import Result

__all__ = [
    "Overlay",
    "changed_rows",
    "chip_overlay",
    "display_image",
    "entropy_histogram",
    "focus_window",
    "rgba",
    "segmentation_rgba",
    "sparse_ticks",
]

#: Longest side of the image sent to a browser (longer images are decimated for display only).
MAX_DISPLAY_SIDE = 2048


def rgba(colour: str, alpha: int = 255) -> tuple[int, int, int, int]:
    """``"#E69F00"`` → ``(230, 159, 0, alpha)``; any colour the package accepts (hex, CSS names).

    Parsing is :func:`stem_fsl_widgets.colours.normalise_colour`'s, the one every module uses.

    Examples
    --------
    >>> rgba("#E69F00"), rgba("red", 10)
    ((230, 159, 0, 255), (255, 0, 0, 10))
    """
    from ..colours import normalise_colour

    c = normalise_colour(colour)  # InputError (a ValueError) says what is accepted
    return int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16), int(alpha)


@dataclass(frozen=True, eq=False)
class Overlay:
    """Per-chip drawing state of the image view.

    Attributes
    ----------
    fill : ndarray, shape (N, 4), uint8
        RGBA of the predicted class (alpha 0 = no prediction); the view's segmentation
        opacity makes it translucent.
    outline : ndarray, shape (N, 4), uint8
        RGBA of a support's outline (its class colour), alpha 0 elsewhere; a drag in
        progress previews its chips here.
    uncertain : ndarray, shape (N,), uint8
        1 where the result flags the chip uncertain (drawn as a hatch).
    suggested : ndarray, shape (N,), uint8
        1 on chips suggested as the next to label (drawn unlike a support: dashed, no fill).
    """

    fill: np.ndarray
    outline: np.ndarray
    uncertain: np.ndarray
    suggested: np.ndarray

    @property
    def n_chips(self) -> int:
        """Number of chips N."""
        return len(self.uncertain)


def chip_overlay(
    n_chips: int,
    classes: Mapping[str, str],
    supports: Mapping[int, str],
    result: Result | None,
    suggested: Iterable[int] = (),
) -> Overlay:
    """Compute what every chip should look like.

    Parameters
    ----------
    n_chips : int
        Number of chips N on the current grid.
    classes : mapping of str to str
        Class name → hex colour (current colours: a colour change needs no reclassification).
    supports : mapping of int to str
        Chip index → class name of the user's labels.
    result : Result or None
        The latest classification; None (or one for another grid) draws no fill.
    suggested : iterable of int
        Chips suggested as the next to label; a support is never also marked suggested.

    Returns
    -------
    Overlay

    Examples
    --------
    >>> ov = chip_overlay(3, {"a": "#E69F00"}, {1: "a"}, None, suggested=[1, 2])
    >>> ov.outline[:, 3].tolist(), ov.fill[:, 3].tolist(), ov.suggested.tolist()
    ([0, 255, 0], [0, 0, 0], [0, 0, 1])
    """
    fill = np.zeros((n_chips, 4), np.uint8)
    outline = np.zeros((n_chips, 4), np.uint8)
    uncertain = np.zeros(n_chips, np.uint8)
    marked = np.zeros(n_chips, np.uint8)
    if result is not None and result.labels.shape == (n_chips,):
        # Look-up table over the result's class order, coloured with the *current* colours.
        lut = np.array([rgba(classes.get(c, col)) for c, col in zip(result.classes, result.colours,
                                                                     strict=True)], np.uint8)
        fill = lut[result.labels]
        uncertain = result.uncertain.astype(np.uint8)
    hl = np.fromiter((int(i) for i in suggested), np.int64)
    marked[hl[(hl >= 0) & (hl < n_chips)]] = 1
    if supports:
        names = list(classes)
        pos = {n: k for k, n in enumerate(names)}
        lut_s = np.array([rgba(classes[n]) for n in names] + [(0, 0, 0, 255)], np.uint8)
        idx = np.fromiter(supports.keys(), np.int64, len(supports))
        cls = np.fromiter((pos.get(n, len(names)) for n in supports.values()), np.int64,
                          len(supports))
        ok = (idx >= 0) & (idx < n_chips)
        outline[idx[ok]] = lut_s[cls[ok]]
        marked[idx[ok]] = 0
    return Overlay(fill, outline, uncertain, marked)


def changed_rows(drawn: Overlay, new: Overlay) -> np.ndarray:
    """Chips whose fill, outline, uncertainty or suggestion mark differ between two overlays.

    Comparing against what is actually drawn (rather than trusting
    :meth:`Result.changed_chips` alone) also catches colour changes and drag previews, and
    still yields only the rows a click changed.

    Returns
    -------
    ndarray of int64, shape (k,)
        Sorted chip indices; every chip when the two overlays have different lengths.
    """
    if drawn.n_chips != new.n_chips:
        return np.arange(new.n_chips)
    diff = (
        np.any(drawn.fill != new.fill, axis=1)
        | np.any(drawn.outline != new.outline, axis=1)
        | (drawn.uncertain != new.uncertain)
        | (drawn.suggested != new.suggested)
    )
    return np.flatnonzero(diff)


def display_image(image: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0), *,
                  max_side: int | None = None) -> np.ndarray:
    """Contrast-stretch an image to uint8 between two of its percentiles (display only).

    Parameters
    ----------
    image : ndarray, shape (H, W)
    percentiles : (float, float)
        Lower and upper percentile (0–100) mapped to 0 and 255; values outside are clipped.
    max_side : int, optional
        Decimate (every ``s``-th pixel, ``s = ceil(max(H, W) / max_side)``) before stretching,
        so a huge image is not sent to a browser whole.

    Returns
    -------
    ndarray, shape (H', W'), uint8

    Examples
    --------
    >>> display_image(np.arange(101.0).reshape(1, 101), (10, 90))[0, [0, 10, 50, 90, 100]].tolist()
    [0, 0, 128, 255, 255]
    """
    img = np.asarray(image)
    if max_side is not None:
        step = max(1, math.ceil(max(img.shape) / int(max_side)))
        img = img[::step, ::step]
    img = np.asarray(img, dtype=np.float32)
    lo, hi = np.percentile(img, [float(percentiles[0]), float(percentiles[1])])
    if not hi > lo:  # a flat stretch window: fall back to the full range
        lo, hi = float(img.min()), float(img.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip(np.rint((img - lo) * scale), 0, 255).astype(np.uint8)


def entropy_histogram(entropy: np.ndarray, n_bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Counts of chips per normalised-entropy bin over [0, 1].

    Returns
    -------
    centres : ndarray, shape (n_bins,)
    counts : ndarray of int, shape (n_bins,)

    Examples
    --------
    >>> entropy_histogram(np.array([0.0, 0.05, 0.96, 1.0]), 4)[1].tolist()
    [2, 0, 0, 2]
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts, _ = np.histogram(np.clip(entropy, 0.0, 1.0), bins=edges)
    return (edges[:-1] + edges[1:]) / 2.0, counts


def sparse_ticks(labels: list[str], most: int = 6) -> list[str]:
    """Every n-th category label, so at most ``most`` are written under a bar chart.

    A 15-bin size histogram labels each bar with its centre; written all at once, rotated or
    not, they run into each other in a 300-px figure.

    Examples
    --------
    >>> sparse_ticks([str(i) for i in range(15)], 6)
    ['0', '3', '6', '9', '12']
    >>> sparse_ticks(["a", "b"])
    ['a', 'b']
    """
    step = max(1, -(-len(labels) // max(1, int(most))))
    return list(labels[::step])


def segmentation_rgba(label_map: np.ndarray, colours: list[str], *, max_side: int | None = None,
                      ) -> np.ndarray:
    """A pixel label map as an RGBA image (alpha 0 where no class), for a pixel-level overlay.

    Parameters
    ----------
    label_map : ndarray of int, shape (H, W)
        Class index per pixel, -1 = none (e.g. :attr:`Result.label_map`).
    colours : list of str
        Colour of each class index.
    max_side : int, optional
        Decimate like :func:`display_image`.

    Returns
    -------
    ndarray, shape (H', W', 4), uint8
    """
    lab = np.asarray(label_map)
    if max_side is not None:
        step = max(1, math.ceil(max(lab.shape) / int(max_side)))
        lab = lab[::step, ::step]
    lut = np.array([rgba(c) for c in colours] + [(0, 0, 0, 0)], np.uint8)
    return lut[np.where(lab < 0, len(colours), lab)]


def focus_window(box: tuple[int, int, int, int], shape: tuple[int, int],
                 span: float = 4.0) -> tuple[float, float, float, float]:
    """The part of the image to show around a chip: ``(x0, x1, y0, y1)`` in image pixels.

    A square ``span`` chips wide, centred on the chip and shifted to stay inside the image
    (the whole image when it is smaller): the chip is large enough to name, with enough
    surroundings to see what it belongs to.

    Examples
    --------
    >>> focus_window((0, 0, 32, 32), (512, 512))
    (0.0, 128.0, 0.0, 128.0)
    """
    y0, x0, y1, x1 = (float(v) for v in box)
    h, w = (float(v) for v in shape)
    side = span * max(y1 - y0, x1 - x0)

    def place(lo: float, hi: float, size: float) -> tuple[float, float]:
        if side >= size:
            return 0.0, size
        start = min(max((lo + hi) / 2 - side / 2, 0.0), size - side)
        return start, start + side

    return (*place(x0, x1, w), *place(y0, y1, h))
