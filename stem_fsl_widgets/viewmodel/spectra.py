"""What the spectrum views draw: a chip's summed spectrum, class means, element lines.

One policy for both apps: a class with no chip has no mean line (rather than a line of
zeros), element lines are those with a within-family weight ≥ :data:`MIN_LINE_WEIGHT`, and a
log axis gets counts floored at :data:`LOG_FLOOR` with finite limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..eds import class_mean_spectra as _class_mean_spectra

__all__ = [
    "LOG_FLOOR",
    "MIN_LINE_WEIGHT",
    "SpectrumPanel",
    "class_mean_spectra",
    "element_markers",
    "marker_levels",
    "y_limits",
]

LOG_FLOOR = 0.1  # counts; zeros would be -inf on a log axis
MIN_LINE_WEIGHT = 0.5  # weaker lines (relative to their family's strongest) are not marked


def class_mean_spectra(spectra: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean spectrum of the chips predicted in each class; NaN rows for an empty class.

    Examples
    --------
    >>> class_mean_spectra(np.array([[1., 0.], [3., 2.]]), np.array([0, 0]), 2).tolist()
    [[2.0, 1.0], [nan, nan]]
    """
    return _class_mean_spectra(spectra, labels, n_classes, empty=np.nan)


def element_markers(elements: Sequence[str], energy_range: tuple[float, float],
                    min_weight: float = MIN_LINE_WEIGHT) -> list[tuple[str, float]]:
    """X-ray lines to mark: ``(label, keV)`` for each element's lines inside the energy range.

    Energies come from :func:`stem_fsl_widgets.elements.xray_lines` (exSpy's database).

    Raises
    ------
    InputError
        For an unknown element (the message suggests the right symbol).

    Examples
    --------
    >>> element_markers(["Ni"], (0.2, 20.0))
    [('Ni La', 0.8511), ('Ni Ka', 7.4781)]
    """
    from ..elements import xray_lines  # imports exSpy: only when elements are picked

    lo, hi = energy_range
    out = []
    for el in elements:
        for name, energy, _w in xray_lines(el, max_energy=hi, min_weight=min_weight):
            if energy >= lo:
                out.append((name.replace("_", " "), float(energy)))
    return out


def marker_levels(energies: Sequence[float], span: float, *, min_gap: float = 0.04,
                  levels: int = 3) -> np.ndarray:
    """Heights (fractions of the plot) for marker labels, staggered so close ones don't overlap.

    Labels closer than ``min_gap × span`` keV to the previous one on the same level move one
    level down (0.9, 0.75, 0.6 of the height): never clipped at the top.

    Examples
    --------
    >>> marker_levels([1.0, 1.1, 5.0], span=10.0).tolist()
    [0.9, 0.75, 0.9]
    """
    heights = [round(0.9 - 0.15 * k, 6) for k in range(levels)]
    last = [-np.inf] * levels
    out = []
    for e in energies:
        k = next((k for k in range(levels) if e - last[k] >= min_gap * span), int(np.argmin(last)))
        last[k] = e
        out.append(heights[k])
    return np.array(out, dtype=float)


def y_limits(curves: Sequence[np.ndarray], *, log: bool) -> tuple[float, float]:
    """Finite y-axis limits for the curves (log: floored at :data:`LOG_FLOOR`, never NaN).

    Examples
    --------
    >>> y_limits([np.array([0.0, 50.0])], log=True)
    (0.1, 75.0)
    >>> y_limits([], log=False)
    (0.0, 1.0)
    """
    vals = [np.asarray(c, float)[np.isfinite(c)] for c in curves]
    top = max((float(v.max()) for v in vals if v.size), default=0.0)
    if log:
        return LOG_FLOOR, max(top * 1.5, 10 * LOG_FLOOR)
    return 0.0, (top * 1.05 if top > 0 else 1.0)


@dataclass
class SpectrumPanel:
    """Everything a spectrum view draws, ready for any plotting library.

    Attributes
    ----------
    energy : ndarray, shape (E,), keV
    chip : int
        Chip whose spectrum is shown; -1 for none.
    chip_counts : ndarray, shape (E,) or None
        Its summed counts (floored for a log axis).
    chip_label : str
        Legend text of the chip line, e.g. "chip 12 (predicted oxide)".
    class_names, class_colours : list of str
        Classes with at least one chip, in result order.
    class_means : ndarray, shape (K', E)
        Their mean spectra (floored for a log axis).
    markers : list of (str, float)
        Element line labels and energies (keV).
    marker_heights : ndarray, shape (M,)
        Label heights as fractions of the plot height (see :func:`marker_levels`).
    window : (float, float)
        EDS energy window used by the classifier, keV.
    log_y : bool
    y_range : (float, float)
        Finite axis limits.
    """

    energy: np.ndarray
    chip: int = -1
    chip_counts: np.ndarray | None = None
    chip_label: str = ""
    class_names: list = field(default_factory=list)
    class_colours: list = field(default_factory=list)
    class_means: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    markers: list = field(default_factory=list)
    marker_heights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    window: tuple = (0.0, 0.0)
    log_y: bool = False
    y_range: tuple = (0.0, 1.0)
