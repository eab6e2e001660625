"""EDS spectra linked to the chip grid: the hovered chip, each class's mean, element lines.

The figure is built once; it redraws from the model's :class:`SpectrumPanel` when the model
announces "spectrum". A brush on the energy axis sets the EDS window the classifier uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import bqplot
import ipywidgets as widgets
import numpy as np

from ..errors import InputError
from ..session import Session
from ..viewmodel import AppModel
from .base import ModelView, html_escape

__all__ = ["SpectrumView"]


class SpectrumView(ModelView, widgets.VBox):
    """Summed spectrum of one chip, mean spectrum of each predicted class, element lines.

    Parameters
    ----------
    model : AppModel or Session
        Its dataset must carry an EDS cube.

    Attributes
    ----------
    figure : bqplot.Figure
    chip_line : bqplot.Lines
        Counts of the shown chip (or, before any, the mean of all chips).
    class_lines : bqplot.Lines
        One row per class with chips, coloured like the class.
    marker_lines, marker_labels : bqplot marks
        The picked elements' X-ray lines, labels staggered so they neither overlap nor clip.
    legend : ipywidgets.HTML
        Below the plot, so it never covers the curves.
    brush : bqplot.interacts.BrushIntervalSelector
        Drag on the energy axis to set the EDS window (keV).
    log_y : ipywidgets.Checkbox
    elements : ipywidgets.TagsInput
    chip : int
        Chip shown (-1 = none).
    """

    SHOWS = frozenset({"spectrum", "settings"})

    def __init__(self, model: AppModel | Session) -> None:
        m = self._bind(model)
        if not m.has_eds:
            raise InputError("The spectrum view needs data with an EDS spectrum image.")
        self.energy = np.asarray(m.session.dataset.energy_axis, dtype=np.float64)
        self.chip = -1
        self._syncing = False
        e = self.energy
        self.x_scale = bqplot.LinearScale(min=float(e[0]), max=float(e[-1]))
        self.y_linear = bqplot.LinearScale(min=0.0, max=1.0)
        self.y_log = bqplot.LogScale(min=0.1, max=10.0)
        unit = bqplot.LinearScale(min=0.0, max=1.0)  # marker heights, independent of log/linear
        sc = {"x": self.x_scale, "y": self.y_linear}
        self.class_lines = bqplot.Lines(x=e, y=np.ones((1, e.size)), scales=dict(sc), colors=["#999999"],
                                        visible=False, stroke_width=1.5)
        self.chip_line = bqplot.Lines(x=e, y=np.ones(e.size), scales=dict(sc), colors=["black"],
                                      visible=False, stroke_width=1)
        self.marker_lines = bqplot.Lines(x=np.zeros((1, 2)), y=np.array([[0.0, 0.85]]),
                                         scales={"x": self.x_scale, "y": unit}, colors=["#444444"],
                                         line_style="dashed", stroke_width=1, visible=False)
        self.marker_labels = bqplot.Label(x=np.zeros(1), y=np.array([0.9]), text=[""],
                                          scales={"x": self.x_scale, "y": unit}, colors=["#444444"],
                                          default_size=11, align="middle", visible=False)
        self.y_axis = bqplot.Axis(scale=self.y_linear, orientation="vertical", label="counts",
                                  tick_format=".2s")
        self.brush = bqplot.interacts.BrushIntervalSelector(scale=self.x_scale, marks=[self.chip_line],
                                                            color="#56B4E9")
        self.figure = bqplot.Figure(
            marks=[self.class_lines, self.chip_line, self.marker_lines, self.marker_labels],
            axes=[bqplot.Axis(scale=self.x_scale, label="energy (keV)"), self.y_axis],
            interaction=self.brush, title="EDS (drag: energy window)",
            layout=widgets.Layout(width="520px", height="300px"),
            fig_margin={"top": 30, "bottom": 40, "left": 60, "right": 10})
        self.legend = widgets.HTML("")
        self.log_y = widgets.Checkbox(False, description="log y", indent=False,
                                      layout=widgets.Layout(width="70px"))
        self.elements = widgets.TagsInput(value=list(m.session.settings.elements), allow_duplicates=False,
                                          placeholder="add element (e.g. Ni)")
        self.elements_note = widgets.HTML(
            "<small>Marked elements are also used to classify the chips.</small>")
        self.window_label = widgets.Label("")
        self.reset_window = widgets.Button(description="full window", icon="arrows-h",
                                           tooltip="use the default energy window",
                                           layout=widgets.Layout(width="120px"))
        self.log_y.observe(lambda ch: m.set_log_y(ch["new"]), names="value")
        self.elements.observe(self._on_elements, names="value")
        self.brush.observe(self._on_brush, names=["selected", "brushing"])
        self.reset_window.on_click(lambda _b: m.reset_window())

        centred = widgets.Layout(align_items="center")
        controls = widgets.HBox([self.log_y, self.elements], layout=centred)
        window = widgets.HBox([self.window_label, self.reset_window], layout=centred)
        super().__init__([self.figure, self.legend, controls, self.elements_note, window])
        self.refresh()

    def close(self) -> None:
        """Stop following the model; close the figure."""
        self._close_figures(getattr(self, "figure", None))
        super().close()

    # ------------------------------------------------------------------ public
    def show_chip(self, chip: int) -> None:
        """Show the summed spectrum of ``chip`` (-1: back to the hovered or clicked chip)."""
        self.model.selected_chip = int(chip)
        self.model.hovered_chip = -1
        self.refresh()

    def set_window(self, low: float | None, high: float | None) -> None:
        """Classify with EDS channels in ``[low, high]`` keV only (None = open end)."""
        self.model.set_window(low, high)

    def set_elements(self, elements: Sequence[str]) -> None:
        """Mark ``elements``' X-ray lines and add them to the EDS features."""
        self.model.set_elements(elements)

    # ------------------------------------------------------------------ drawing
    def refresh(self, topics: frozenset = frozenset({"spectrum", "settings"})) -> None:
        """Redraw from the model's spectrum panel."""
        p = self.model.spectrum_panel()
        if p is None:
            return
        y = self.y_log if p.log_y else self.y_linear
        lo, hi = p.y_range
        with y.hold_sync():
            y.min, y.max = float(lo), float(hi)  # finite limits: never a NaN transform
        scales = {"x": self.x_scale, "y": y}
        self.chip = p.chip
        # New values and a new scale go in one message per mark: zeros on a log scale for a
        # moment would draw NaN paths.
        with self.chip_line.hold_sync():
            if p.chip_counts is not None:
                self.chip_line.y = p.chip_counts
            if self.chip_line.scales["y"] is not y:
                self.chip_line.scales = scales
            self.chip_line.visible = p.chip_counts is not None
        with self.class_lines.hold_sync():
            if len(p.class_names):
                self.class_lines.y = p.class_means
                self.class_lines.colors = list(p.class_colours)
            elif self.class_lines.scales["y"] is not y:
                self.class_lines.y = np.ones((1, self.energy.size))  # hidden, but valid on a log axis
            if self.class_lines.scales["y"] is not y:
                self.class_lines.scales = scales
            self.class_lines.visible = bool(len(p.class_names))
        if self.y_axis.scale is not y:
            self.y_axis.scale = y
        items = [("black", p.chip_label)] if p.chip_counts is not None else []
        items += [(c, f"{n} (mean)") for n, c in zip(p.class_names, p.class_colours, strict=True)]
        self.legend.value = "".join(
            f"<span style='margin-right:10px;white-space:nowrap'><span style='display:inline-block;"
            f"width:14px;height:3px;vertical-align:middle;background:{html_escape(c)}'></span> "
            f"{html_escape(t)}</span>" for c, t in items)
        if p.markers:
            x = np.array([e for _n, e in p.markers])
            with self.marker_lines.hold_sync(), self.marker_labels.hold_sync():
                self.marker_lines.x = np.stack([x, x], axis=1)
                self.marker_lines.y = np.stack([np.zeros(len(x)), p.marker_heights - 0.04], axis=1)
                self.marker_labels.x = x
                self.marker_labels.y = p.marker_heights
                self.marker_labels.text = [n for n, _e in p.markers]
                self.marker_lines.visible = self.marker_labels.visible = True
        else:
            self.marker_lines.visible = self.marker_labels.visible = False
        self._syncing = True
        try:
            elements = list(self.model.session.settings.elements)
            if list(self.elements.value) != elements:
                self.elements.value = elements
            if self.log_y.value != p.log_y:
                self.log_y.value = p.log_y
            lo_w, hi_w = p.window
            self.window_label.value = f"EDS window {lo_w:.2f}–{hi_w:.2f} keV"
            if not self.brush.brushing:
                # The default window is not drawn: a brush over the whole plot would only tint it.
                from ..eds import DEFAULT_WINDOW

                default = list(self.model.session.settings.eds_window) == list(DEFAULT_WINDOW)
                self.brush.selected = None if default else np.array([lo_w, hi_w])
        finally:
            self._syncing = False

    # ------------------------------------------------------------------ events
    def _on_elements(self, change: dict) -> None:
        if not self._syncing:
            self.model.set_elements(list(change["new"]))

    def _on_brush(self, _change: dict) -> None:
        sel = self.brush.selected
        if self._syncing or self.brush.brushing or sel is None or len(sel) != 2:
            return
        lo, hi = sorted(float(v) for v in sel)
        if hi - lo > 0:
            self.model.set_window(lo, hi)
