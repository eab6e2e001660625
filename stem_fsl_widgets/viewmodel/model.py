"""AppModel: the segmentation app's state, derivations and actions, with no widget toolkit.

The notebook widgets (:mod:`stem_fsl_widgets.widgets`) and the Panel app
(:mod:`stem_fsl_widgets.apps.panel_app`) are layouts bound to one :class:`AppModel`: a view
turns a gesture into an action here (``press``, ``add_class``, ``set_threshold``...), and
redraws the parts named in the topics the model announces (``overlay``, ``classes``,
``results``...) from the model's derivations (``overlay()``, ``fractions()``,
``spectrum_panel()``...). So both apps draw the same arrays from the same clicks.

The model listens to the session's typed events (:class:`~stem_fsl_widgets.session.SessionEvent`)
and never compares objects to guess what changed. Every action runs under one error policy
(:meth:`AppModel.action`): a failure becomes a readable message, the labels stay as they were.
"""

from __future__ import annotations

import io
import logging
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..classify import Result
from ..eds import DEFAULT_WINDOW
from ..errors import InputError, NotEnoughSupportsError
from ..session import PALETTE, Session, SessionEvent
from .drawing import (
    MAX_DISPLAY_SIDE,
    Overlay,
    chip_overlay,
    display_image,
    entropy_histogram,
    segmentation_rgba,
)
from .spectra import (
    LOG_FLOOR,
    SpectrumPanel,
    class_mean_spectra,
    element_markers,
    marker_levels,
    y_limits,
)
from .text import describe_chip, error_message
from .watch import Watchable

__all__ = [
    "AppModel",
    "CHIP_SIZES",
    "DEFAULT_CLASSES",
    "DOWNLOADS",
    "Download",
    "Layers",
    "Message",
    "TOPICS",
    "next_palette_colour",
]

_log = logging.getLogger(__name__)

#: Classes a fresh session starts with (renamable), so the first clicks already segment.
DEFAULT_CLASSES = ("class 1", "class 2")
#: Chip sizes offered in the apps (px), up to the image's shorter side.
CHIP_SIZES = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
MIN_CHIP = 4
#: The EDS weight slider's value before "auto" has resolved one (nothing labelled yet).
UNRESOLVED_EDS_WEIGHT = 0.5

#: What the model announces; a view redraws the parts it shows.
TOPICS = frozenset({
    "grid",       # new chip geometry (chip size / stride): boxes, cleared hover and suggestions
    "overlay",    # per-chip fill / outline / uncertainty / suggestion arrays
    "classes",    # class names, colours, counts, the active class
    "results",    # fractions, entropy histogram, summary, measurements
    "settings",   # control values (threshold, EDS weight, fusion, metric, chip size, ...)
    "spectrum",   # the spectrum panel (chip, class means, markers, window, log axis)
    "status",     # title and status line
    "message",    # the last action's message (error, warning, confirmation)
    "progress",   # a long step's progress
    "hover",      # hovered chip and its description
    "layers",     # visibility and opacity of the overlay layers
    "image",      # the display image (contrast)
    "autosave",   # autosave state and warning
    "focus",      # the suggestion being visited: views centre and zoom on it
})

_EVENT_TOPICS = {
    "grid": {"grid", "overlay", "spectrum", "hover", "settings", "results", "status"},
    "classes": {"classes", "overlay", "results", "spectrum", "status"},
    "supports": {"classes", "overlay", "status", "hover"},
    "settings": {"settings", "results", "spectrum", "status"},
    "result": {"overlay", "results", "spectrum", "status", "hover", "settings"},
    "progress": {"progress"},
}

#: Files offered as browser downloads: name suffix → (what, MIME type).
DOWNLOADS = {
    "labels.png": ("segmentation over the image, with a scale bar", "image/png"),
    "entropy.png": ("uncertainty (normalised entropy) map", "image/png"),
    "labels.tif": ("class index per pixel, calibrated TIFF", "image/tiff"),
    "entropy.tif": ("entropy per pixel, calibrated TIFF", "image/tiff"),
    "chips.csv": ("per-chip table", "text/csv"),
    "measurements.csv": ("per-class areas, particle counts and sizes", "text/csv"),
    "particles.csv": ("one row per particle", "text/csv"),
    "session.json": ("the session (labels and settings)", "application/json"),
    "all.zip": ("everything above in one zip", "application/zip"),
}


@dataclass(frozen=True)
class Message:
    """A message for the user. ``kind``: "info", "ok", "warning" or "error"."""

    text: str = ""
    kind: str = "info"


@dataclass(frozen=True)
class Download:
    """A file to hand to the browser: name, MIME type and content."""

    filename: str
    mime: str
    data: bytes


@dataclass(frozen=True)
class Layers:
    """Visibility and opacity of the image view's layers (a clean look by default).

    Attributes
    ----------
    grid : bool
        Thin chip grid lines.
    segmentation, segmentation_opacity : bool, float
        Predicted-class fill.
    uncertainty, uncertainty_opacity : bool, float
        Hatch on chips whose entropy is above the threshold.
    supports, supports_opacity : bool, float
        Outlines of the labelled chips (and of suggestions).
    pixels : bool
        Draw the segmentation as a pixel map (the result's ``label_map``) instead of chips.
    """

    grid: bool = True
    segmentation: bool = True
    segmentation_opacity: float = 0.35
    uncertainty: bool = True
    uncertainty_opacity: float = 0.5
    supports: bool = True
    supports_opacity: float = 1.0
    pixels: bool = False


@dataclass
class _Stroke:
    """A left-button press in progress: its class, the chips entered, the click's effect."""

    cls: str
    chips: list[int] = field(default_factory=list)
    clicked_changed: bool = False  # the press itself toggled the first chip (one undo step)


def next_palette_colour(current: str, used: set[str]) -> str:
    """The palette colour after ``current`` that no other class uses (cycling).

    Examples
    --------
    >>> next_palette_colour(PALETTE[0], {PALETTE[1]}) == PALETTE[2]
    True
    """
    cur = current.upper()
    taken = {c.upper() for c in used} - {cur}
    upper = [c.upper() for c in PALETTE]
    start = upper.index(cur) + 1 if cur in upper else 0
    for step in range(len(PALETTE)):
        colour = PALETTE[(start + step) % len(PALETTE)]
        if colour.upper() not in taken:
            return colour
    return PALETTE[start % len(PALETTE)]


class AppModel(Watchable):
    """State, derivations and actions of the segmentation app over one :class:`Session`.

    Parameters
    ----------
    session : Session
        The single source of truth; the model only adds UI state (active class, hovered
        chip, suggestions, message, progress, layers, contrast, log axis).
    default_classes : sequence of str
        Classes added to a session that has none: the dataset's own class names when it has
        them (the demo's phases), else these.

    Attributes
    ----------
    session : Session
    active_class : str or None
    hovered_chip, selected_chip : int
        -1 for none.
    suggested : tuple of int
        Chips suggested as the next to label (cleared on a new grid; labelled ones drop out).
    focus : int or None
        The suggested chip being visited (:meth:`next_suggestion`); the views centre on it.
    message : Message
    progress : (str, float)
    layers : Layers
    contrast : (float, float)
        Display percentiles of the image.
    log_y : bool
        Log axis of the spectrum view.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.concatenate([np.zeros((64, 32)), np.ones((64, 32))], 1)
    >>> img += np.random.default_rng(0).normal(0, 0.1, img.shape)
    >>> m = AppModel(Session(img, chip_size=16))
    >>> m.press(4.0, 4.0); m.release()   # x, y in image px: chip 0 → "class 1"
    0
    >>> _ = m.select_class("class 2"); _ = m.press(60.0, 4.0); m.release()
    >>> m.fractions()["class 2"] > 0.4
    True
    """

    def __init__(self, session: Session, *, default_classes: Sequence[str] = DEFAULT_CLASSES) -> None:
        self.session = session
        Watchable.__init__(self)
        self.active_class: str | None = None
        self.hovered_chip = -1
        self.selected_chip = -1
        self.suggested: tuple[int, ...] = ()
        self.focus: int | None = None
        self.message = Message()
        self.progress: tuple[str, float] = ("", 1.0)
        self.layers = Layers()
        self.contrast: tuple[float, float] = (1.0, 99.0)
        self.log_y = False
        self.n_suggest = 5
        #: Runs a callable on the UI's own thread (its event loop). A UI that sets it gets the
        #: pixel map of each new result computed in the background while the pixel layer is on;
        #: without it the pixel map is computed only on request (:meth:`refine`).
        self.run_on_ui: Callable[[Callable[[], None]], None] | None = None
        self._refining = False
        self._stroke: _Stroke | None = None
        self._autosave_warned: str | None = None
        if not session.classes:
            for name in (session.dataset.truth_classes or default_classes):
                session.add_class(name)
        self.active_class = next(iter(session.classes), None)
        session.on_event(self._on_session_event)

    @classmethod
    def of(cls, session_or_model: Session | AppModel) -> AppModel:
        """The model itself, or a new one over a session."""
        if isinstance(session_or_model, AppModel):
            return session_or_model
        return cls(session_or_model)

    def close(self) -> None:
        """Stop listening to the session (the session and its labels are left as they are)."""
        self.session.on_event(self._on_session_event, remove=True)
        self._watchers = []

    # ------------------------------------------------------------------ announcements
    def _announce(self, *topics: str) -> None:
        todo = frozenset(topics)
        for cb in list(self._watchers):
            try:
                cb(todo)
            except Exception as err:  # noqa: BLE001 - a view that fails must not stop the others
                _log.debug("view failed to redraw", exc_info=True)
                self._set_message(f"Could not redraw the view: {error_message(err)}", "error")

    def _on_session_event(self, event: SessionEvent) -> None:
        if event.kinds == {"progress"}:
            self.progress = (event.what, float(event.fraction))
            self._announce("progress")
            return
        topics: set[str] = set()
        for kind in event.kinds:
            topics |= _EVENT_TOPICS.get(kind, set())
        s = self.session
        if "grid" in event.kinds:  # chip indices now mean other places
            self.suggested, self.focus = (), None
            self.hovered_chip = self.selected_chip = -1
            self._stroke = None
        elif self.suggested and "supports" in event.kinds:
            self.suggested = tuple(c for c in self.suggested if c not in s.supports)
        if self.active_class not in s.classes:
            self.active_class = next(iter(s.classes), None)
            topics.add("classes")
        if self._check_autosave():
            topics.add("autosave")
        if topics:
            self._announce(*topics)
        if "result" in event.kinds:
            self.refine_in_background()

    def refine_in_background(self) -> bool:
        """Start computing the current result's pixel map off the UI thread, if it is wanted.

        Only with :attr:`run_on_ui` set and the pixel layer on, one job at a time: when a job
        ends, the views redraw if its result is still current, and a newer result gets a job of
        its own. Returns whether a job was started.
        """
        r = self.session.result
        if (self.run_on_ui is None or r is None or not self.layers.pixels or self.pixels_ready
                or self._refining):
            return False
        self._refining = True

        def work() -> None:
            try:
                _ = r.label_map  # cached on the result; numpy and the forests release the GIL
            except Exception:  # noqa: BLE001 - shown by refine() when the user asks again
                _log.debug("background pixel map failed", exc_info=True)
            self.run_on_ui(done)

        def done() -> None:
            self._refining = False
            if r is self.session.result:
                self._announce("results", "overlay", "layers", "status")  # status: the map's notes
            else:
                self.refine_in_background()

        threading.Thread(target=work, name="sfw-pixel-map", daemon=True).start()
        return True

    # ------------------------------------------------------------------ error policy
    @contextmanager
    def action(self, what: str) -> Iterator[None]:
        """Run one user action under the app's error policy.

        The last message goes; on failure a readable message says what went wrong, and the
        labels stay as they were.
        """
        self.clear_message()
        try:
            yield
        except Exception as err:  # noqa: BLE001 - nothing escapes to the user as a traceback
            _log.debug("action %r failed", what, exc_info=True)
            self._set_message(f"Could not {what}: {error_message(err)}", "error")

    def _set_message(self, text: str, kind: str = "info") -> None:
        self.message = Message(text, kind)
        self._announce("message")

    def say(self, text: str, kind: str = "info") -> None:
        """Show ``text`` as a message (``kind``: info, ok, warning, error)."""
        self._set_message(text, kind)

    def clear_message(self) -> None:
        """Hide the message (the status line stays)."""
        if self.message.text:
            self._set_message("", "info")

    # ------------------------------------------------------------------ autosave
    def _check_autosave(self) -> bool:
        """Follow ``session.autosave_error``: True when the autosave warning changed."""
        err = getattr(self.session, "autosave_error", None)
        text = None if err is None else str(err)
        if text == self._autosave_warned:
            return False
        self._autosave_warned = text
        return True

    @property
    def autosave_warning(self) -> str:
        """Why autosave is off or paused (the session's sentence), "" while it works."""
        return self._autosave_warned or ""

    @property
    def autosave_text(self) -> str:
        """Where the session autosaves (file name only: server folders are not shown)."""
        path = self.session.autosave
        if path is None:
            return "Autosave is off."
        return f"Labels are saved automatically after every change ({Path(path).name})."

    # ------------------------------------------------------------------ derivations
    @property
    def has_eds(self) -> bool:
        """Whether the dataset carries an EDS spectrum image."""
        return self.session.dataset.has_eds

    @property
    def title(self) -> str:
        """Dataset name and grid (plain text; views escape it)."""
        s = self.session
        return f"{s.dataset.name} — {s.n_chips} chips of {s.settings.chip_size} px"

    def overlay(self) -> Overlay:
        """Per-chip fill, outline, uncertainty and suggestion arrays (plus a drag preview)."""
        s = self.session
        ov = chip_overlay(s.n_chips, s.classes, s.supports, s.result, self.suggested)
        stroke = self._stroke
        if stroke is not None and len(stroke.chips) > 1 and stroke.cls in s.classes:
            from .drawing import rgba

            outline = ov.outline.copy()
            outline[np.asarray(stroke.chips[1:], np.int64)] = rgba(s.classes[stroke.cls])
            ov = replace(ov, outline=outline)
        return ov

    @property
    def pixels_ready(self) -> bool:
        """Whether the current result's pixel-resolution map is computed (True without a result)."""
        r = self.session.result
        return r is None or bool(getattr(r, "pixel_maps_ready", True))

    def label_map(self) -> np.ndarray | None:
        """The segmentation per pixel: the pixel-resolution map once computed, else the chip map.

        Never computes the refinement itself, so it is safe on the click path.
        """
        r = self.session.result
        if r is None:
            return None
        if self.pixels_ready or not hasattr(r, "chip_label_map"):
            return r.label_map
        return r.chip_label_map

    def refine(self) -> bool:
        """Compute the pixel-resolution map of the current result now, then redraw.

        Off the click path: a user's request (pixel layer, downloads) or a background job.
        """
        r = self.session.result
        if r is None or self.pixels_ready:
            return r is not None
        ok = False
        with self.action("compute the pixel map"):
            _ = r.label_map  # cached on the result
            ok = True
        if ok and r is self.session.result:
            self._announce("results", "overlay", "layers")
        return ok

    def segmentation_rgba(self, max_side: int | None = MAX_DISPLAY_SIDE) -> np.ndarray | None:
        """The segmentation as an RGBA image (for the "pixels" layer); None before a result.

        The pixel-resolution map when it is ready (see :meth:`refine`), else the chip map.
        """
        r = self.session.result
        if r is None:
            return None
        colours = [self.session.classes.get(c, col) for c, col in zip(r.classes, r.colours, strict=True)]
        return segmentation_rgba(self.label_map(), colours, max_side=max_side)

    def display_image(self, max_side: int | None = None) -> np.ndarray:
        """The image stretched to uint8 between the :attr:`contrast` percentiles."""
        return display_image(self.session.dataset.image, self.contrast, max_side=max_side)

    def fractions(self) -> dict[str, float]:
        """Area fraction per class with labels (empty before a result)."""
        r = self.session.result
        return {} if r is None else dict(r.fractions)

    def fraction_bars(self) -> tuple[list[str], list[float], list[str]]:
        """Bars of the fractions figure: names (classes, then "uncertain"), values, colours."""
        s, r = self.session, self.session.result
        if r is None:
            return [], [], []
        names = list(r.fractions)
        colours = [s.classes.get(c, col) for c, col in zip(r.classes, r.colours, strict=True)]
        return (names + ["uncertain"], [r.fractions[c] for c in names] + [r.uncertain_fraction],
                colours + [UNCERTAIN_COLOUR])

    def entropy_histogram(self, n_bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """Chips per normalised-entropy bin (zeros before a result)."""
        r = self.session.result
        return entropy_histogram(np.zeros(0) if r is None else r.entropy, n_bins)

    def summary(self) -> str:
        """"12.5 % of chips uncertain (entropy > 0.50); matrix 60.1 %, ..." or what is missing."""
        s, r = self.session, self.session.result
        if r is None:
            return s.status()
        return (f"{100 * r.uncertain_fraction:.1f} % of chips uncertain (entropy > {r.threshold:.2f}); "
                + ", ".join(f"{c} {100 * f:.1f} %" for c, f in r.fractions.items()))

    def status(self) -> str:
        """What the session needs next, or what the segmentation says (plain text)."""
        s, r = self.session, self.session.result
        text = s.status()
        if r is not None:
            text += f" {100 * r.uncertain_fraction:.0f} % of chips uncertain."
            # The session's sentence already names classes without labels.
            text += "".join(f" {n}." for n in r.notes if not n.startswith("Classes without labels"))
            if r.eds_weight is not None:
                text += f" EDS weight in use: {r.eds_weight:.2f}."
        if self.active_class is not None:
            text += f" Clicks label {self.active_class}."
        if self.suggested:
            text += " Suggested next: chips " + ", ".join(map(str, self.suggested)) + "."
        return text

    def hover_text(self) -> str:
        """One line about the hovered chip ("" when none)."""
        s = self.session
        if self.hovered_chip < 0:
            return ""
        return describe_chip(self.hovered_chip, s.grid, s.supports, s.result)

    def class_rows(self) -> list[tuple[str, str, int]]:
        """(name, colour, labelled chips) per class, in order (keys 1–9 pick them)."""
        counts = self.session.support_counts()
        return [(c, col, counts.get(c, 0)) for c, col in self.session.classes.items()]

    def eds_weight_control(self) -> tuple[float, bool, str]:
        """The EDS weight slider and "auto" box as one control: (value shown, auto, note).

        With "auto" the slider shows the weight the supports chose (read-only); without EDS
        the note says so.
        """
        s, r = self.session, self.session.result
        if not self.has_eds:
            return UNRESOLVED_EDS_WEIGHT, False, "no EDS data"
        w = s.settings.eds_weight
        auto = w == "auto"
        if not auto:
            return float(w), False, f"set: {float(w):.2f}"
        if r is not None and r.eds_weight is not None:
            return round(float(r.eds_weight), 2), True, f"auto: {r.eds_weight:.2f}"
        return UNRESOLVED_EDS_WEIGHT, True, "auto (chosen once two classes are labelled)"

    def chip_size_bounds(self) -> tuple[int, int]:
        """Smallest and largest chip size for this image, px."""
        return MIN_CHIP, max(MIN_CHIP, min(self.session.dataset.shape))

    def chip_size_choices(self) -> list[int]:
        """:data:`CHIP_SIZES` that fit the image, plus the current size."""
        lo, hi = self.chip_size_bounds()
        return sorted({c for c in CHIP_SIZES if lo <= c <= hi} | {int(self.session.settings.chip_size)})

    def encoder_choices(self) -> list[str]:
        """Registered image encoders (plus the one in use)."""
        from ..encoders import available_encoders

        return sorted(set(available_encoders()) | {self.session.settings.encoder})

    def energy_range(self) -> tuple[float, float]:
        """First and last channel energy, keV ((0, 0) without EDS)."""
        e = self.session.dataset.energy_axis
        return (0.0, 0.0) if e is None else (float(e[0]), float(e[-1]))

    def eds_window(self) -> tuple[float, float]:
        """The EDS energy window in use, keV, with open ends resolved to the axis."""
        lo, hi = self.session.settings.eds_window
        e0, e1 = self.energy_range()
        return (e0 if lo is None else float(lo)), (e1 if hi is None else float(hi))

    def spectrum_panel(self) -> SpectrumPanel | None:
        """What the spectrum view draws (None without EDS)."""
        s, r = self.session, self.session.result
        spectra = s.chip_spectra()
        if spectra is None:
            return None
        energy = np.asarray(s.dataset.energy_axis, dtype=np.float64)
        floor = (lambda y: np.maximum(y, LOG_FLOOR)) if self.log_y else (lambda y: y)
        panel = SpectrumPanel(energy=energy, log_y=self.log_y, window=self.eds_window())
        curves = []
        if r is not None and len(r.labels) == len(spectra):
            means = class_mean_spectra(spectra, r.labels, r.n_classes)
            keep = [k for k in range(r.n_classes) if np.isfinite(means[k]).all()]
            panel.class_names = [r.classes[k] for k in keep]
            panel.class_colours = [s.classes.get(r.classes[k], r.colours[k]) for k in keep]
            panel.class_means = floor(means[keep]) if keep else np.zeros((0, energy.size))
            curves += list(panel.class_means)
        else:
            panel.class_means = np.zeros((0, energy.size))
        chip = self.hovered_chip if self.hovered_chip >= 0 else self.selected_chip
        if 0 <= chip < len(spectra):
            panel.chip = int(chip)
            panel.chip_counts = floor(np.asarray(spectra[chip], dtype=np.float64))
            what = s.supports.get(chip)
            state = (f"labelled {what}" if what else
                     f"predicted {r.classes[r.labels[chip]]}" if r is not None else "unlabelled")
            panel.chip_label = f"chip {chip} ({state})"
            curves.append(panel.chip_counts)
        elif not curves:
            # Nothing labelled or hovered yet: the mean of all chips, so the plot is never blank.
            panel.chip_counts = floor(spectra.mean(axis=0, dtype=np.float64))
            panel.chip_label = "all chips (mean)"
            curves.append(panel.chip_counts)
        if s.settings.elements:
            try:  # a derivation: it reports a problem but never clears the last message
                panel.markers = sorted(element_markers(s.settings.elements, self.energy_range()),
                                       key=lambda m: m[1])
            except Exception as err:  # noqa: BLE001 - shown as a message, drawn without markers
                self._set_message(f"Could not mark the element lines: {error_message(err)}", "error")
        span = max(float(energy[-1] - energy[0]), 1e-9)
        panel.marker_heights = marker_levels([m[1] for m in panel.markers], span)
        panel.y_range = y_limits(curves, log=self.log_y)
        return panel

    def measurements(self) -> Any | None:
        """Per-class areas, particle counts and sizes of :meth:`label_map`; None before a result.

        See :mod:`stem_fsl_widgets.measure`.
        """
        r = self.session.result
        if r is None:
            return None
        from ..measure import measure_labels

        ds = self.session.dataset
        key = (id(r), self.pixels_ready, ds.pixel_size, ds.pixel_unit)
        cached = getattr(self, "_measured", None)
        if cached is not None and cached[0] == key and cached[1] is r:
            return cached[2]  # every view of this model shows the same table: measure once
        kw = dict(pixel_size=ds.pixel_size, unit=ds.pixel_unit)
        if self.pixels_ready or not hasattr(r, "chip_label_cells"):
            meas = measure_labels(self.label_map(), list(r.classes), **kw)
        else:  # the chip map on its cells: the same figures, cheap enough for every click
            cells, heights, widths = r.chip_label_cells
            meas = measure_labels(cells, list(r.classes), cell_sizes=(heights, widths), **kw)
        if not self.pixels_ready:
            meas.notes.append("Measured on the chip map; the pixel-resolution map gives finer "
                              "particle outlines (switch on 'pixel map').")
        self._measured = (key, r, meas)
        return meas

    # ------------------------------------------------------------------ pointer actions
    def chip_at(self, x: float, y: float) -> int | None:
        """Chip under image pixel ``(x, y)`` (x along columns), None outside the image."""
        if x is None or y is None or not (np.isfinite(x) and np.isfinite(y)):
            return None
        chip = int(self.session.grid.chip_at(float(y), float(x)))
        return chip if chip >= 0 else None

    def _require_class(self) -> str:
        if self.active_class is None or self.active_class not in self.session.classes:
            raise InputError("Add a class first (Classes panel), then click chips to label them.")
        return self.active_class

    def press(self, x: float, y: float, *, remove: bool = False) -> int | None:
        """A press at image pixel ``(x, y)``: label the chip there with the active class.

        A second press on a chip of that class removes it; ``remove`` (right button or Shift)
        removes the label whatever its class.

        Returns
        -------
        int or None
            The chip pressed; None outside the image.
        """
        self._stroke = None
        chip = self.chip_at(x, y)
        if chip is None:
            return None
        self.selected_chip = chip
        with self.action("change the label"):
            self.clear_message()
            if remove:
                self.session.unlabel(chip)
                return chip
            cls = self._require_class()
            before = self.session.supports.get(chip)
            self.session.toggle(chip, cls)
            self._stroke = _Stroke(cls, [chip], self.session.supports.get(chip) != before)
        return chip

    def drag(self, x: float, y: float) -> int | None:
        """The pointer moved with the button down: the chip entered joins the stroke (preview).

        Returns the chip newly added to the stroke, else None. The session changes once, on
        :meth:`release` (one undo step per stroke).
        """
        stroke = self._stroke
        chip = self.chip_at(x, y)
        if stroke is None or chip is None or chip in stroke.chips:
            return None
        stroke.chips.append(chip)
        self._announce("overlay")
        return chip

    def release(self) -> None:
        """End a press: a stroke over several chips labels them all (one undo step)."""
        stroke, self._stroke = self._stroke, None
        if stroke is None or len(stroke.chips) < 2:
            return
        with self.action("paint"):
            if stroke.clicked_changed:
                self.session.undo()  # fold the press's toggle into the stroke's single step
            self.session.label_many(stroke.chips, stroke.cls)
        self._announce("overlay")  # clears previews even when the stroke changed nothing

    def click(self, x: float, y: float, *, remove: bool = False) -> int | None:
        """Press and release at one point (a tap)."""
        chip = self.press(x, y, remove=remove)
        self.release()
        return chip

    def hover(self, x: float | None, y: float | None) -> None:
        """The pointer is over image pixel ``(x, y)`` (None: it left the image)."""
        chip = self.chip_at(x, y) if x is not None else None
        chip = -1 if chip is None else chip
        if chip != self.hovered_chip:
            self.hovered_chip = chip
            self._announce("hover", "spectrum")

    def key(self, key: str, *, ctrl: bool = False, shift: bool = False) -> None:
        """Keyboard shortcuts.

        1–9 pick a class (while a suggestion is visited: label it with that class and go on
        to the next), N visits the next suggestion, Ctrl+Z undo, Ctrl+Shift+Z / Ctrl+Y redo,
        Escape clears the suggestions and any stroke.
        """
        k = str(key).lower()
        with self.action(f"handle the key {key}"):
            if len(k) == 1 and k in "123456789" and not ctrl:
                names = list(self.session.classes)
                if int(k) - 1 < len(names):
                    if self.focus is not None and self.focus not in self.session.supports:
                        self._label_focus(names[int(k) - 1])
                    else:
                        self.select_class(names[int(k) - 1])
            elif k == "n" and not ctrl:
                self.next_suggestion()
            elif ctrl and (k == "y" or (k == "z" and shift)):
                self.redo()
            elif ctrl and k == "z":
                self.undo()
            elif k == "escape":
                self._stroke = None
                self.clear_suggestions()

    # ------------------------------------------------------------------ class actions
    def select_class(self, name: str) -> str | None:
        """Make ``name`` the class a click labels."""
        with self.action("select the class"):
            if name not in self.session.classes:
                raise InputError(f"There is no class named {name!r}.")
            if name != self.active_class:
                self.active_class = name
                self._announce("classes", "status")
        return self.active_class

    def add_class(self, name: str) -> str | None:
        """Add a class (next palette colour) and make it the active one; returns its name."""
        out = None
        with self.action("add the class"):
            name = str(name).strip()
            if not name:
                raise InputError("Type a name for the new class first.")
            out = self.session.add_class(name)
            self.active_class = out
            self.clear_message()
            self._announce("classes", "status")
        return out

    def rename_class(self, old: str, new: str) -> None:
        """Rename a class; its labels and colour follow."""
        with self.action("rename the class"):
            was_active = self.active_class == old
            self.session.rename_class(old, new)
            if was_active:
                self.active_class = str(new).strip()
                self._announce("classes", "status")

    def remove_class(self, name: str) -> None:
        """Delete a class and its labels (undo brings both back)."""
        with self.action("delete the class"):
            n = self.session.support_counts().get(name, 0)
            self.session.remove_class(name)
            self._set_message(f"Deleted {name} and its {n} label{'s' if n != 1 else ''}; "
                              "Undo brings them back.", "info")

    def set_colour(self, name: str, colour: str) -> None:
        """Give a class a colour (hex like #E69F00 or a CSS colour name)."""
        with self.action("change the colour"):
            self.session.set_colour(name, colour)

    def cycle_colour(self, name: str) -> None:
        """Give a class the next Okabe–Ito colour no other class uses."""
        with self.action("change the colour"):
            if name not in self.session.classes:
                raise InputError(f"There is no class named {name!r}.")
            used = set(self.session.classes.values())
            self.session.set_colour(name, next_palette_colour(self.session.classes[name], used))

    # ------------------------------------------------------------------ history
    def undo(self) -> None:
        """Undo the last change (labels, classes or settings)."""
        with self.action("undo"):
            self.session.undo()

    def redo(self) -> None:
        """Redo the last undone change."""
        with self.action("redo"):
            self.session.redo()

    # ------------------------------------------------------------------ settings actions
    def configure(self, what: str = "change the settings", **changes: Any) -> bool:
        """Change session settings; a refused change leaves them (and the controls) as they were.

        Returns True when the change was applied.
        """
        ok = False
        with self.action(what):
            self.session.configure(**changes)
            ok = True
        if not ok:
            self._announce("settings")  # put the controls back to the values in use
        return ok

    def set_threshold(self, value: float) -> bool:
        """Normalised entropy above which a chip counts as uncertain."""
        return self.configure("set the threshold", threshold=float(value))

    def set_eds_weight(self, value: float | None = None, *, auto: bool = False) -> bool:
        """0 = image only, 1 = EDS only; ``auto`` lets the labelled chips choose."""
        if auto:
            return self.configure("set the EDS weight", eds_weight="auto")
        if value is None:
            value = self.eds_weight_control()[0]
        return self.configure("set the EDS weight", eds_weight=float(value))

    def set_fusion(self, fusion: str) -> bool:
        """"early" or "late" fusion of image and EDS."""
        return self.configure("change the fusion", fusion=fusion)

    def set_metric(self, metric: str) -> bool:
        """"sqeuclidean" or "cosine" distance to the class prototypes."""
        return self.configure("change the distance", metric=metric)

    def apply_grid(self, chip_size: int | None = None, stride: int | None = None,
                   encoder: str | None = None) -> bool:
        """Chip size, stride (0 or None = no overlap) and encoder; re-encodes with progress."""
        st = self.session.settings
        changes = {"chip_size": int(chip_size if chip_size is not None else st.chip_size),
                   "stride": (int(stride) or None) if stride is not None else st.stride,
                   "encoder": encoder or st.encoder}
        lo, hi = self.chip_size_bounds()
        if not lo <= changes["chip_size"] <= hi:
            self._set_message(f"Could not change the chip size: it must be between {lo} and {hi} "
                              "px for this image.", "error")
            self._announce("settings")
            return False
        return self.configure("change the chip size, stride or encoder", **changes)

    def set_window(self, low: float | None, high: float | None) -> bool:
        """Classify with EDS channels in ``[low, high]`` keV only (None = open end)."""
        if low is not None and high is not None and not float(high) > float(low):
            self._set_message("Could not set the energy window: its end must be above its start.",
                              "error")
            return False
        return self.configure("set the energy window",
                              eds_window=[None if low is None else float(low),
                                          None if high is None else float(high)])

    def reset_window(self) -> bool:
        """Back to the default energy window."""
        return self.set_window(*DEFAULT_WINDOW)

    def set_elements(self, elements: Sequence[str]) -> bool:
        """Mark these elements' X-ray lines and add their intensities to the EDS features.

        This changes the classification; the message says so.
        """
        ok = False
        with self.action("use these elements"):
            elements = [str(e).strip() for e in elements if str(e).strip()]
            element_markers(elements, self.energy_range())  # an unknown symbol fails here
            before = list(self.session.settings.elements)
            self.session.configure(elements=elements)
            ok = True
            if elements != before:
                self._set_message(
                    "Element lines are marked in the spectrum and their intensities are now also "
                    "used to classify the chips." if elements else
                    "Element lines removed: the chips are classified from the spectra alone.", "info")
        if not ok:
            self._announce("settings", "spectrum")
        return ok

    def set_log_y(self, on: bool) -> None:
        """Log axis for the spectrum (counts floored at :data:`LOG_FLOOR`)."""
        if bool(on) != self.log_y:
            self.log_y = bool(on)
            self._announce("spectrum")

    def set_layers(self, **changes: Any) -> None:
        """Change layer visibility or opacity (see :class:`Layers`)."""
        new = replace(self.layers, **changes)
        for name in ("segmentation_opacity", "uncertainty_opacity", "supports_opacity"):
            if not 0.0 <= float(getattr(new, name)) <= 1.0:
                raise InputError(f"{name.replace('_', ' ')} must be between 0 and 1.")
        if new != self.layers:
            self.layers = new
            if new.pixels:
                self.refine()  # the user asked for the pixel map: compute it now (once per result)
            self._announce("layers")

    def set_contrast(self, low: float, high: float) -> None:
        """Show the image stretched between its ``low`` and ``high`` percentiles."""
        with self.action("change the contrast"):
            low, high = float(low), float(high)
            if not 0.0 <= low < high <= 100.0:
                raise InputError("The contrast range must satisfy 0 ≤ low < high ≤ 100 (percentiles).")
            if (low, high) != self.contrast:
                self.contrast = (low, high)
                self._announce("image")

    # ------------------------------------------------------------------ suggestions
    def next_suggestion(self) -> int | None:
        """Visit the next suggested chip: the views centre and zoom on it.

        Asks for suggestions first when there are none left. While a chip is visited, keys
        1–9 label it with that class and move on to the next one (see :meth:`key`).
        Returns the chip, or None (and a message) before a segmentation exists.
        """
        chip = None
        with self.action("go to the next suggestion"):
            left = self._unlabelled_suggestions()
            if not left:
                self.focus = None
                self.suggest()
                left = list(self.suggested)
                if not left:
                    return None
            if self.focus in left:
                chip = left[(left.index(self.focus) + 1) % len(left)]
            else:
                chip = left[0]
            self.focus = chip
            self._announce("focus", "overlay", "status")
        return chip

    def _unlabelled_suggestions(self) -> list[int]:
        return [c for c in self.suggested if c not in self.session.supports]

    def focus_box(self) -> tuple[int, int, int, int] | None:
        """``(y0, x0, y1, x1)`` of the visited suggestion, or None."""
        if self.focus is None or not 0 <= self.focus < self.session.n_chips:
            return None
        return tuple(int(v) for v in self.session.grid.box(self.focus))

    def _label_focus(self, name: str) -> None:
        chip = self.focus
        self.select_class(name)
        self.session.label(int(chip), name)  # announces through the session's events
        if self._unlabelled_suggestions():
            self.next_suggestion()
        else:
            self.focus = None
            self.say(f"Labelled chip {chip} as {name}; no suggestions left. Press n for new ones.", "ok")
            self._announce("focus", "overlay", "status")

    def suggest(self, n: int | None = None) -> tuple[int, ...]:
        """Mark the ``n`` most uncertain unlabelled chips as the next to label."""
        with self.action("suggest chips"):
            if self.session.result is None:
                raise NotEnoughSupportsError(
                    "Label at least one chip in each of two classes first; then the most "
                    "uncertain chips can be suggested.")
            n = int(self.n_suggest if n is None else n)
            if n < 1:
                raise InputError("Ask for at least one suggestion.")
            self.n_suggest = n
            self.suggested = tuple(int(c) for c in self.session.suggest(n))
            self._announce("overlay", "status")
        return self.suggested

    def clear_suggestions(self) -> None:
        """Remove the suggestion marks (and stop visiting them)."""
        if self.suggested or self.focus is not None:
            self.suggested, self.focus = (), None
            self._announce("overlay", "status", "focus")

    # ------------------------------------------------------------------ downloads
    @property
    def file_stem(self) -> str:
        """File-name-safe stem of the downloads (the dataset's name)."""
        from ..paths import safe_name

        return safe_name(self.session.dataset.name)

    def _require_result(self, what: str) -> Result:
        if self.session.result is None:
            raise NotEnoughSupportsError(
                f"Nothing to {what} yet: label at least one chip in each of two classes.")
        return self.session.result

    def download(self, kind: str) -> Download | None:
        """The file ``kind`` (a key of :data:`DOWNLOADS`) as bytes for the browser.

        None (and a message) when it cannot be made yet.
        """
        out = None
        with self.action("prepare the download"):
            if kind not in DOWNLOADS:
                raise InputError(f"Unknown download {kind!r}; choose one of {', '.join(DOWNLOADS)}.")
            if kind in ("measurements.csv", "particles.csv", "all.zip"):
                self.refine()  # exported measurements match the exported pixel map
            if kind == "all.zip":
                data = self._zip()
            else:
                data = self._file(kind)
            out = Download(f"{self.file_stem}_{kind}", DOWNLOADS[kind][1], data)
        return out

    def _file(self, kind: str) -> bytes:
        """One download's bytes; nothing is written on the server.

        Maps, tables and the session come from :mod:`stem_fsl_widgets.export`, measurements
        from :mod:`stem_fsl_widgets.measure`.
        """
        from .. import export

        s = self.session
        if kind in ("measurements.csv", "particles.csv"):
            self._require_result("download")
            meas = self.measurements()
            rows = meas.rows() if kind == "measurements.csv" else meas.particle_rows()
            return export._csv_bytes(rows)  # the package's CSV cells (formula-safe)
        if kind != "session.json":
            self._require_result("download")
        return export.export_bytes(s.result, s, kind)[1]

    def _zip(self) -> bytes:
        """Every download in one zip (only the session before a segmentation exists)."""
        kinds = [k for k in DOWNLOADS if k != "all.zip"]
        if self.session.result is None:
            kinds = ["session.json"]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for kind in kinds:
                packed = not kind.endswith(".png")  # PNGs are compressed already
                z.writestr(f"{self.file_stem}_{kind}", self._file(kind),
                           compress_type=zipfile.ZIP_DEFLATED if packed else zipfile.ZIP_STORED)
        return buf.getvalue()

    # ------------------------------------------------------------------ misc
    def __repr__(self) -> str:
        return (f"AppModel({self.session!r}, active={self.active_class!r}, "
                f"suggested={list(self.suggested)})")


#: Colour of the "uncertain" bar in the fractions figure.
UNCERTAIN_COLOUR = "#555555"


def stamp() -> str:
    """Local time as HH:MM (for "saved at" messages)."""
    return time.strftime("%H:%M")
