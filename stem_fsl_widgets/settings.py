"""A session's settings, validated strictly, and the objects built from them.

:class:`Settings` is shared by :class:`~stem_fsl_widgets.session.Session` and batch mode, so a
value refused by one is refused by the other, and both build the chip grid and the EDS
encoder with the same functions (:func:`make_grid`, :func:`make_eds_encoder`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields
from typing import Any

from .chips import ChipGrid
from .classify import DEFAULT_THRESHOLD
from .eds import DEFAULT_WINDOW, EDSEncoder
from .encoders import DEFAULT_ENCODER, available_encoders
from .errors import InputError

__all__ = ["Settings", "as_index", "as_whole_number", "make_eds_encoder", "make_grid", "settings_from_dict"]

METRICS = ("sqeuclidean", "cosine")
FUSIONS = ("early", "late")
EDGES = ("shift", "drop")


def as_whole_number(value: Any, name: str, *, minimum: int | None = None) -> int:
    """``value`` as an int when it is a whole number (``3``, ``3.0``, ``np.int64(3)``).

    Raises
    ------
    InputError
        For booleans, fractions (``3.9``), NaN, infinities, text and None, or a value below
        ``minimum``.

    Examples
    --------
    >>> as_whole_number(32.0, "chip_size")
    32
    """
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok and isinstance(value, numbers.Real) and not isinstance(value, bool):
        ok = math.isfinite(float(value)) and float(value).is_integer()
    if not ok:
        raise InputError(f"{name} must be a whole number, not {value!r}.")
    out = int(value)
    if minimum is not None and out < minimum:
        raise InputError(f"{name} must be at least {minimum}; got {out}.")
    return out


def as_index(value: Any, name: str = "chip") -> int:
    """A chip or class index: a whole number, never a bool or a fraction (see :func:`as_whole_number`)."""
    return as_whole_number(value, name)


def _fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise InputError(f"{name} must be a number in [0, 1]; got {value!r}.")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{name} must be in [0, 1]; got {value}.")
    return value


@dataclass
class Settings:
    """User-adjustable settings; every field is JSON-serialisable.

    Attributes
    ----------
    chip_size : int
        Chip side, px.
    stride : int or None
        Step between chips, px (None = chip_size, no overlap).
    edge : str
        Edge policy of the grid ("shift" or "drop").
    encoder : str
        Image encoder name (see :func:`stem_fsl_widgets.encoders.available_encoders`).
    eds_weight : float or "auto"
        0 = image only, 1 = EDS only; "auto" weighs each modality by how well it separates
        the supports.
    fusion : str
        "early" (weighted concatenation) or "late" (weighted log-probabilities).
    metric : str
        "sqeuclidean" or "cosine".
    threshold : float
        Normalised entropy above which a chip is uncertain.
    eds_window : list of two floats (the upper may be None)
        Energy window in keV.
    eds_rebin : int
    eds_components : int or None
    elements : list of str
        Elements whose lines are added to the EDS features and shown in the spectrum view.
    pixel_maps : bool
        Refine the chip classification to pixel resolution (:mod:`stem_fsl_widgets.refine`)
        for ``Result.label_map``, ``Result.entropy_map`` and the exports; computed on first
        use, never on a click. False keeps the chip-level maps.
    """

    chip_size: int = 32
    stride: int | None = None
    edge: str = "shift"
    encoder: str = DEFAULT_ENCODER
    eds_weight: float | str = "auto"
    fusion: str = "early"
    metric: str = "sqeuclidean"
    threshold: float = DEFAULT_THRESHOLD
    eds_window: list = field(default_factory=lambda: list(DEFAULT_WINDOW))
    eds_rebin: int = 1
    eds_components: int | None = 12
    elements: list = field(default_factory=list)
    pixel_maps: bool = True

    def validate(self) -> None:
        """Check every field and bring it to its canonical type, in place.

        Whole-number floats (``32.0``) become ints; anything else that is not what the
        field documents raises.

        Raises
        ------
        InputError
            Naming the field, the value and what is accepted.
        """
        # Ranges (chip ≥ 4 px, 1 ≤ stride ≤ chip) are the grid's to check, against the image.
        self.chip_size = as_whole_number(self.chip_size, "chip_size")
        if self.stride is not None:
            self.stride = as_whole_number(self.stride, "stride")
        if self.edge not in EDGES:
            raise InputError(f"edge must be 'shift' or 'drop', not {self.edge!r}.")
        if not isinstance(self.encoder, str) or self.encoder not in available_encoders():
            raise InputError(f"Unknown encoder {self.encoder!r}; choose one of {available_encoders()}.")
        if isinstance(self.eds_weight, str):
            if self.eds_weight != "auto":
                raise InputError(f"eds_weight must be a number in [0, 1] or 'auto', not {self.eds_weight!r}.")
        else:
            self.eds_weight = _fraction(self.eds_weight, "eds_weight")
        if self.fusion not in FUSIONS:
            raise InputError(f"fusion must be 'early' or 'late', not {self.fusion!r}.")
        if self.metric not in METRICS:
            raise InputError(f"metric must be 'sqeuclidean' or 'cosine', not {self.metric!r}.")
        try:
            self.threshold = _fraction(self.threshold, "threshold")
        except InputError:
            msg = f"threshold is a normalised entropy in [0, 1]; got {self.threshold!r}."
            raise InputError(msg) from None
        self.eds_window = self._window(self.eds_window)
        self.eds_rebin = as_whole_number(self.eds_rebin, "eds_rebin", minimum=1)
        if self.eds_components is not None:
            self.eds_components = as_whole_number(self.eds_components, "eds_components", minimum=1)
        if isinstance(self.elements, str) or not isinstance(self.elements, (list, tuple)) or not all(
                isinstance(e, str) and e.strip() for e in self.elements):
            raise InputError(f"elements must be a list of element symbols such as ['Fe', 'O'], not "
                             f"{self.elements!r}.")
        self.elements = [e.strip() for e in self.elements]
        if not isinstance(self.pixel_maps, bool):
            raise InputError(f"pixel_maps must be True or False, not {self.pixel_maps!r}.")

    @staticmethod
    def _window(window: Any) -> list:
        msg = (f"eds_window must be [low, high] in keV (None for the first / last channel), "
               f"not {window!r}.")
        if isinstance(window, str) or not isinstance(window, (list, tuple)) or len(window) != 2:
            raise InputError(msg)
        out = []
        for v in window:
            if v is None:
                out.append(None)
                continue
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
                raise InputError(msg)
            out.append(float(v))
        if None not in out and out[1] <= out[0]:
            raise InputError(f"EDS window {window} is empty: the upper bound must exceed the lower.")
        return out


def settings_from_dict(values: dict, *, source: str = "the session file") -> Settings:
    """A validated :class:`Settings` from a saved dict (unknown keys are ignored).

    Raises
    ------
    InputError
        When a value is invalid (the message names ``source``).
    """
    if not isinstance(values, dict):
        raise InputError(f"The settings in {source} are not a JSON object.")
    known = {f.name for f in fields(Settings)}
    st = Settings(**{k: v for k, v in values.items() if k in known})
    try:
        st.validate()
    except InputError as err:
        raise InputError(f"{source}: {err}") from None
    return st


def make_grid(shape: tuple[int, int], st: Settings) -> ChipGrid:
    """The chip grid of an image of ``shape`` under ``st``."""
    h, w = shape
    return ChipGrid(h, w, st.chip_size, st.stride, st.edge)


def make_eds_encoder(st: Settings, **fitted: Any) -> EDSEncoder:
    """The EDS encoder ``st`` describes; ``fitted`` passes saved ``mean_`` / ``components_``."""
    return EDSEncoder(window=tuple(st.eds_window), rebin=st.eds_rebin,
                      n_components=st.eds_components, elements=tuple(st.elements), **fitted)
