"""EDS spectra linked to the chip grid: the hovered chip, each class's mean, element lines.

The figure is built once; hovering, clicking or reclassifying assigns new arrays to its
marks. A brush on the energy axis sets the EDS window the classifier uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import bqplot
import ipywidgets as widgets
import numpy as np

from ..eds import DEFAULT_WINDOW
from ..eds import class_mean_spectra as _class_mean_spectra
from ..errors import InputError
from .overlay import FollowsSession, guard, html_escape

__all__ = ["SpectrumView", "class_mean_spectra", "element_markers"]

LOG_FLOOR = 0.1  # counts; zeros would be -inf on a log axis
MIN_LINE_WEIGHT = 0.5  # weaker lines (relative to their family's strongest) are not marked


def class_mean_spectra(spectra: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean spectrum of the chips predicted in each class; zeros for an empty class."""
    return _class_mean_spectra(spectra, labels, n_classes, empty=0.0)


def element_markers(elements: Sequence[str], energy_range: tuple[float, float],
                    min_weight: float = MIN_LINE_WEIGHT) -> list[tuple[str, float]]:
    """X-ray lines to mark: ``(label, keV)`` for each element's lines inside the energy range.

    Energies come from :func:`stem_fsl_widgets.elements.xray_lines` (exSpy's database).

    Raises
    ------
    InputError
        For an unknown element (the message suggests the right symbol).
    """
    from ..elements import xray_lines  # imports exSpy: only when elements are picked

    lo, hi = energy_range
    out = []
    for el in elements:
        for name, energy, _w in xray_lines(el, max_energy=hi, min_weight=min_weight):
            if energy >= lo:
                out.append((name.replace("_", " "), float(energy)))
    return out


class SpectrumView(FollowsSession, widgets.VBox):
    """Summed spectrum of one chip, mean spectrum of each predicted class, element lines.

    Parameters
    ----------
    session : Session
        Its dataset must carry an EDS cube.
    report : callable(str), optional
        Where error messages go; default this view's note line.

    Attributes
    ----------
    figure : bqplot.Figure
    chip_line : bqplot.Lines
        Counts of the shown chip, shape (E,) over ``energy`` (keV).
    class_lines : bqplot.Lines
        One row per class, shape (K, E), coloured like the class.
    marker_lines, marker_labels : bqplot marks
        Vertical lines and labels of the picked elements' X-ray lines.
    brush : bqplot.interacts.BrushIntervalSelector
        Drag on the energy axis to set the EDS window (keV).
    log_y : ipywidgets.Checkbox
    elements : ipywidgets.TagsInput
        Elements to mark (also added to the EDS features: ``Settings.elements``).
    chip : int
        Chip shown (-1 = none).
    """

    def __init__(self, session, *, report: Callable[[str], None] | None = None) -> None:
        if not session.dataset.has_eds:
            raise InputError("SpectrumView needs a dataset with an EDS spectrum image.")
        self.session = session
        self.report = report or self._report_here
        self.energy = np.asarray(session.dataset.energy_axis, dtype=np.float64)
        self.chip = -1
        self._syncing = False
        self._marked: tuple[str, ...] | None = None  # elements whose markers are drawn
        self._grid = session.grid
        e = self.energy
        self.note = widgets.HTML("")

        self.x_scale = bqplot.LinearScale(min=float(e[0]), max=float(e[-1]))
        self.y_linear = bqplot.LinearScale(min=0.0)
        self.y_log = bqplot.LogScale()
        unit = bqplot.LinearScale(min=0.0, max=1.0)  # marker heights, independent of log/linear
        sc = {"x": self.x_scale, "y": self.y_linear}
        self.class_lines = bqplot.Lines(x=e, y=np.zeros((1, e.size)), scales=dict(sc), colors=["#999999"],
                                        labels=["class"], display_legend=True, visible=False,
                                        stroke_width=1.5)
        self.chip_line = bqplot.Lines(x=e, y=np.zeros(e.size), scales=dict(sc), colors=["black"],
                                      labels=["chip"], display_legend=True, visible=False, stroke_width=1)
        self.marker_lines = bqplot.Lines(x=np.zeros((1, 2)), y=np.array([[0.0, 0.92]]),
                                         scales={"x": self.x_scale, "y": unit}, colors=["#444444"],
                                         line_style="dashed", stroke_width=1, visible=False)
        self.marker_labels = bqplot.Label(x=np.zeros(1), y=np.array([0.93]), text=[""],
                                          scales={"x": self.x_scale, "y": unit}, colors=["#444444"],
                                          rotate_angle=-90, default_size=11, align="start",
                                          visible=False)
        self.y_axis = bqplot.Axis(scale=self.y_linear, orientation="vertical", label="counts",
                                  tick_format=".2s")
        self.brush = bqplot.interacts.BrushIntervalSelector(scale=self.x_scale, marks=[self.chip_line],
                                                            color="#56B4E9")
        self.figure = bqplot.Figure(
            marks=[self.class_lines, self.chip_line, self.marker_lines, self.marker_labels],
            axes=[bqplot.Axis(scale=self.x_scale, label="energy (keV)"), self.y_axis],
            interaction=self.brush, legend_location="top", title="EDS (drag: energy window)",
            layout=widgets.Layout(width="520px", height="300px"),
            fig_margin={"top": 30, "bottom": 40, "left": 60, "right": 10})

        self.log_y = widgets.Checkbox(False, description="log y", indent=False,
                                      layout=widgets.Layout(width="70px"))
        self.elements = widgets.TagsInput(value=list(session.settings.elements), allow_duplicates=False,
                                          placeholder="add element (e.g. Ni)")
        self.window_label = widgets.HTML("")
        self.reset_window = widgets.Button(description="full window", icon="arrows-h",
                                           tooltip="use the default energy window",
                                           layout=widgets.Layout(width="120px"))
        self.log_y.observe(self._on_log, names="value")
        self.elements.observe(self._on_elements, names="value")
        self.brush.observe(self._on_brush, names=["selected", "brushing"])
        self.reset_window.on_click(lambda _b: self.set_window(*DEFAULT_WINDOW))

        centred = widgets.Layout(align_items="center")
        controls = widgets.HBox([self.log_y, self.elements], layout=centred)
        window = widgets.HBox([self.window_label, self.reset_window], layout=centred)
        super().__init__([self.figure, controls, window, self.note])
        self._follow(session)
        self.refresh()

    # ------------------------------------------------------------------ public
    def show_chip(self, chip: int) -> None:
        """Show the summed spectrum of ``chip`` (-1 hides it)."""
        with guard(self.report, "show the chip's spectrum"):
            spectra = self.session.chip_spectra()
            chip = int(chip)
            if spectra is None or not 0 <= chip < len(spectra):
                self.chip = -1
                self.chip_line.visible = False
                return
            self.chip = chip
            with self.chip_line.hold_sync():
                self.chip_line.y = self._for_axis(spectra[chip])
                self.chip_line.labels = [f"chip {chip}"]
                self.chip_line.visible = True

    def set_window(self, low: float | None, high: float | None) -> None:
        """Classify with EDS channels in ``[low, high]`` keV only (None = open end)."""
        with guard(self.report, "set the energy window"):
            self.session.configure(eds_window=[None if low is None else float(low),
                                               None if high is None else float(high)])
        self._show_window()

    def set_elements(self, elements: Sequence[str]) -> None:
        """Mark ``elements``' X-ray lines and add them to the EDS features."""
        with guard(self.report, "use these elements"):
            elements = [str(e).strip() for e in elements if str(e).strip()]
            element_markers(elements, (float(self.energy[0]), float(self.energy[-1])))  # validate
            self.session.configure(elements=elements)
        self._sync_elements()

    # ------------------------------------------------------------------ drawing
    def refresh(self) -> None:
        """Follow the session: class means, chip line, markers, window."""
        s, r = self.session, self.session.result
        spectra = s.chip_spectra()
        if s.grid is not self._grid:  # new chips: the shown index means another area now
            self._grid = s.grid
            self.show_chip(-1)
        if r is None or spectra is None or len(r.labels) != len(spectra):
            self.class_lines.visible = False
        else:
            means = class_mean_spectra(spectra, r.labels, r.n_classes)
            with self.class_lines.hold_sync():
                self.class_lines.y = self._for_axis(means)
                self.class_lines.colors = [s.classes.get(c, col) for c, col in zip(r.classes, r.colours,
                                                                                  strict=True)]
                self.class_lines.labels = [f"{c} (mean)" for c in r.classes]
                self.class_lines.visible = True
        self._sync_elements()
        self._show_window()

    def _for_axis(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        return np.maximum(y, LOG_FLOOR) if self.log_y.value else y

    def _sync_elements(self) -> None:
        elements = list(self.session.settings.elements)
        self._syncing = True
        try:
            if list(self.elements.value) != elements:
                self.elements.value = elements
        finally:
            self._syncing = False
        if tuple(elements) == self._marked:
            return
        marks = element_markers(elements, (float(self.energy[0]), float(self.energy[-1]))) if elements else []
        self._marked = tuple(elements)
        if not marks:
            self.marker_lines.visible = self.marker_labels.visible = False
            return
        x = np.array([m[1] for m in marks])
        with self.marker_lines.hold_sync(), self.marker_labels.hold_sync():
            self.marker_lines.x = np.stack([x, x], axis=1)
            self.marker_lines.y = np.tile([0.0, 0.92], (len(x), 1))
            self.marker_labels.x = x
            self.marker_labels.y = np.full(len(x), 0.93)
            self.marker_labels.text = [m[0] for m in marks]
            self.marker_lines.visible = self.marker_labels.visible = True

    def _show_window(self) -> None:
        lo, hi = self.session.settings.eds_window
        lo_v = float(self.energy[0]) if lo is None else float(lo)
        hi_v = float(self.energy[-1]) if hi is None else float(hi)
        self.window_label.value = html_escape(f"EDS window {lo_v:.2f}–{hi_v:.2f} keV")
        # The default window is not drawn: a brush over the whole plot would only tint it.
        default = [lo, hi] == list(DEFAULT_WINDOW)
        self._syncing = True
        try:
            if not self.brush.brushing:
                self.brush.selected = None if default else np.array([lo_v, hi_v])
        finally:
            self._syncing = False

    # ------------------------------------------------------------------ events
    def _on_log(self, change: dict) -> None:
        with guard(self.report, "switch the y axis"):
            y = self.y_log if change["new"] else self.y_linear
            for mark in (self.class_lines, self.chip_line):
                mark.scales = {"x": self.x_scale, "y": y}
            self.y_axis.scale = y
            self.show_chip(self.chip)  # values floored for the log axis (or not)
            self.refresh()

    def _on_elements(self, change: dict) -> None:
        if not self._syncing:
            self.set_elements(list(change["new"]))

    def _on_brush(self, _change: dict) -> None:
        sel = self.brush.selected
        if self._syncing or self.brush.brushing or sel is None or len(sel) != 2:
            return
        lo, hi = sorted(float(v) for v in sel)
        if hi - lo <= 0:
            return
        self.set_window(lo, hi)

    def _on_session_change(self, _session) -> None:
        with guard(self.report, "update the spectra"):
            self.refresh()

    def _report_here(self, message: str) -> None:
        self.note.value = f"<span style='color:#b00020'>{html_escape(message)}</span>"
