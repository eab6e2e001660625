"""Results and settings: fractions, entropy and threshold, suggestions, fusion, encoding, measurements.

Figures are built once; when the model announces "results" or "settings", their marks get
new arrays and the controls new values. Every control calls a model action.
"""

from __future__ import annotations

import bqplot
import ipywidgets as widgets
import numpy as np

from ..session import Session
from ..viewmodel import AppModel
from ..viewmodel.drawing import sparse_ticks
from ..viewmodel.text import measurement_table_html
from .base import ModelView, html_escape

__all__ = ["ResultsPanel"]

_FIG_LAYOUT = {"width": "360px", "height": "240px"}
_FIG_MARGIN = {"top": 30, "bottom": 60, "left": 50, "right": 10}


class ResultsPanel(ModelView, widgets.VBox):
    """Area fractions, entropy histogram with the threshold, settings and measurements.

    Parameters
    ----------
    model : AppModel or Session
    n_bins : int
        Bins of the entropy histogram.

    Attributes
    ----------
    fraction_bars, entropy_bars, threshold_line, size_bars : bqplot marks
    threshold : ipywidgets.FloatSlider
    suggest_button, n_suggest : ipywidgets.Button, ipywidgets.BoundedIntText
    eds_weight, eds_auto, fusion, metric : ipywidgets controls
    chip_size, stride, encoder, apply_grid : ipywidgets controls (stride 0 = no overlap)
    progress : ipywidgets.FloatProgress
    measurements : ipywidgets.HTML
        Per-class area, particle count and median equivalent diameter.
    """

    SHOWS = frozenset({"results", "settings", "progress", "classes"})

    def __init__(self, model: AppModel | Session, *, n_bins: int = 20) -> None:
        m = self._bind(model)
        self.n_bins = int(n_bins)
        self._syncing = False

        # ---- fractions figure (names rotated: long class names do not overlap)
        xs, ys = bqplot.OrdinalScale(), bqplot.LinearScale(min=0.0, max=1.0)
        self.fraction_bars = bqplot.Bars(x=np.array(["-"]), y=np.zeros(1), scales={"x": xs, "y": ys},
                                         color_mode="group", colors=["#555555"], padding=0.2)
        self.fraction_figure = bqplot.Figure(
            marks=[self.fraction_bars], title="area fraction",
            axes=[bqplot.Axis(scale=xs, tick_rotate=-25, tick_style={"font-size": "10px"}),
                  bqplot.Axis(scale=ys, orientation="vertical", tick_format=".0%")],
            layout=widgets.Layout(**_FIG_LAYOUT), fig_margin=_FIG_MARGIN)

        # ---- entropy histogram + threshold
        # Every scale gets explicit finite limits: an all-zero histogram would otherwise give
        # a [0, 0] domain and NaN positions in the SVG.
        hx, hy = bqplot.LinearScale(min=0.0, max=1.0), bqplot.LinearScale(min=0.0, max=1.0)
        self._entropy_y = hy
        unit = bqplot.LinearScale(min=0.0, max=1.0)
        centres, counts = m.entropy_histogram(self.n_bins)
        self.entropy_bars = bqplot.Bars(x=centres, y=counts, scales={"x": hx, "y": hy},
                                        colors=["#0072B2"], padding=0.05)
        t = float(m.session.settings.threshold)
        self.threshold_line = bqplot.Lines(x=[t, t], y=[0.0, 1.0], scales={"x": hx, "y": unit},
                                           colors=["#D55E00"], stroke_width=2, line_style="dashed")
        self.entropy_figure = bqplot.Figure(
            marks=[self.entropy_bars, self.threshold_line], title="chip entropy (dashed: threshold)",
            axes=[bqplot.Axis(scale=hx, label="normalised entropy"),
                  bqplot.Axis(scale=hy, orientation="vertical", label="chips", tick_format="d",
                              num_ticks=5)],
            layout=widgets.Layout(**_FIG_LAYOUT), fig_margin=_FIG_MARGIN)

        # ---- particle sizes
        # Bins as categories (their centres as text): one group of bars per bin, one colour per
        # class (the class colours, named in the table beside it).
        sx, sy = bqplot.OrdinalScale(), bqplot.LinearScale(min=0.0, max=1.0)
        self._size_scales = sx, sy
        self.size_bars = bqplot.Bars(x=np.array(["-"]), y=np.zeros((1, 1)), scales={"x": sx, "y": sy},
                                     type="grouped", colors=["#999999"], padding=0.1, visible=False)
        self.size_x_axis = bqplot.Axis(scale=sx, label="equivalent diameter", tick_rotate=-45,
                                       tick_style={"font-size": "9px"})
        self.size_figure = bqplot.Figure(
            marks=[self.size_bars], title="particle sizes",
            axes=[self.size_x_axis,
                  bqplot.Axis(scale=sy, orientation="vertical", label="particles", tick_format="d",
                              num_ticks=4)],
            layout=widgets.Layout(**_FIG_LAYOUT), fig_margin=_FIG_MARGIN)
        self.measurements = widgets.HTML("")

        # ---- controls
        self.threshold = widgets.FloatSlider(t, min=0.0, max=1.0, step=0.01, description="threshold",
                                             continuous_update=False)
        self.summary = widgets.HTML("")
        self.n_suggest = widgets.BoundedIntText(5, min=1, max=100, description="n",
                                                style={"description_width": "20px"},
                                                layout=widgets.Layout(width="90px"))
        self.suggest_button = widgets.Button(description="suggest next", icon="lightbulb-o",
                                             tooltip="outline the most uncertain unlabelled chips")
        self.next_button = widgets.Button(description="go to next (n)", icon="crosshairs",
                                          tooltip="centre and zoom on the next suggested chip; "
                                                  "then keys 1-9 label it")
        has_eds = m.has_eds
        value, auto, _note = m.eds_weight_control()
        self.eds_auto = widgets.Checkbox(auto, description="auto", indent=False,
                                         disabled=not has_eds, layout=widgets.Layout(width="70px"))
        self.eds_weight = widgets.FloatSlider(value, min=0.0, max=1.0, step=0.05, description="EDS weight",
                                              continuous_update=False, disabled=not has_eds or auto)
        self.eds_weight_note = widgets.Label("")
        self.fusion = widgets.ToggleButtons(options=["early", "late"], value=m.session.settings.fusion,
                                            disabled=not has_eds, description="fusion",
                                            style={"button_width": "60px"})
        self.metric = widgets.Dropdown(options=[("Euclidean", "sqeuclidean"), ("cosine", "cosine")],
                                       value=m.session.settings.metric,
                                       description="distance", layout=widgets.Layout(width="230px"))
        st = m.session.settings
        lo, hi = m.chip_size_bounds()
        self.chip_size = widgets.BoundedIntText(st.chip_size, min=lo, max=hi,
                                                description="chip px", layout=widgets.Layout(width="160px"))
        self.stride = widgets.BoundedIntText(st.stride or 0, min=0, max=hi,
                                             description="stride", tooltip="0 = chip size (no overlap)",
                                             layout=widgets.Layout(width="160px"))
        self.encoder = widgets.Dropdown(options=m.encoder_choices(), value=st.encoder,
                                        description="encoder", layout=widgets.Layout(width="230px"))
        self.apply_grid = widgets.Button(description="re-encode", icon="refresh",
                                         tooltip="apply chip size, stride and encoder")
        self.progress = widgets.FloatProgress(0.0, min=0.0, max=1.0, layout=widgets.Layout(width="200px"))
        self.progress_label = widgets.Label("")

        self.threshold.observe(lambda ch: self._act(m.set_threshold, ch["new"]), names="value")
        self.eds_weight.observe(self._on_weight, names="value")
        self.eds_auto.observe(self._on_weight, names="value")
        self.fusion.observe(lambda ch: self._act(m.set_fusion, ch["new"]), names="value")
        self.metric.observe(lambda ch: self._act(m.set_metric, ch["new"]), names="value")
        self.suggest_button.on_click(lambda _b: self.suggest())
        self.next_button.on_click(lambda _b: self.model.next_suggestion())
        self.apply_grid.on_click(lambda _b: self.apply_encoding())

        figures = widgets.HBox([self.fraction_figure, self.entropy_figure],
                               layout=widgets.Layout(flex_flow="row wrap"))
        uncertainty = widgets.HBox([self.threshold, self.n_suggest, self.suggest_button, self.next_button],
                                   layout=widgets.Layout(flex_flow="row wrap"))
        fusion = widgets.HBox([self.eds_weight, self.eds_auto, self.eds_weight_note, self.fusion,
                               self.metric],
                              layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        grid = widgets.HBox([self.chip_size, self.stride, self.encoder, self.apply_grid,
                             self.progress, self.progress_label],
                            layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        measure = widgets.HBox([self.size_figure, self.measurements],
                               layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start"))
        super().__init__([figures, self.summary, uncertainty, fusion, grid,
                          widgets.HTML("<b>Measurements</b>"), measure])
        self.refresh(frozenset({"results", "settings"}))

    def close(self) -> None:
        """Stop following the model; close the figures and the controls."""
        self._close_figures(getattr(self, "fraction_figure", None), getattr(self, "entropy_figure", None),
                            getattr(self, "size_figure", None))
        super().close()

    # ------------------------------------------------------------------ actions
    def _act(self, action, *args) -> None:
        if not self._syncing:
            action(*args)

    def suggest(self, n: int | None = None) -> tuple[int, ...]:
        """Outline the ``n`` most uncertain unlabelled chips (default: the ``n`` box)."""
        return self.model.suggest(int(self.n_suggest.value if n is None else n))

    @property
    def suggested(self) -> tuple[int, ...]:
        """The chips suggested last."""
        return self.model.suggested

    def apply_encoding(self) -> None:
        """Apply chip size, stride and encoder (re-encodes; progress in :attr:`progress`)."""
        self.model.apply_grid(int(self.chip_size.value), int(self.stride.value), self.encoder.value)

    def _on_weight(self, _change: dict) -> None:
        if not self._syncing:
            self.model.set_eds_weight(float(self.eds_weight.value), auto=bool(self.eds_auto.value))

    # ------------------------------------------------------------------ drawing
    def refresh(self, topics: frozenset = frozenset({"results", "settings"})) -> None:
        """Redraw figures and controls from the model (new arrays into existing marks)."""
        m = self.model
        if "progress" in topics:
            what, frac = m.progress
            self.progress.value = min(max(float(frac), 0.0), 1.0)
            self.progress_label.value = f"{what} {100 * self.progress.value:.0f} %" if frac < 1 else ""
        if topics & {"results", "classes"}:
            self._draw_results()
        if "settings" in topics or "results" in topics:
            self._sync_controls()

    def _draw_results(self) -> None:
        m = self.model
        names, values, colours = m.fraction_bars()
        with self.fraction_bars.hold_sync():
            self.fraction_bars.x = np.array(names or ["-"])
            self.fraction_bars.y = np.array(values or [0.0])
            self.fraction_bars.colors = colours or ["#555555"]
        centres, counts = m.entropy_histogram(self.n_bins)
        with self.entropy_bars.hold_sync():
            self.entropy_bars.x = centres
            self.entropy_bars.y = counts
        self._entropy_y.max = float(max(1, int(np.max(counts)) if len(counts) else 1))
        t = float(m.session.settings.threshold)
        self.threshold_line.x = [t, t]
        self.summary.value = html_escape(m.summary())
        meas = m.measurements()
        self.measurements.value = measurement_table_html(meas)
        self._draw_sizes(meas)

    def _draw_sizes(self, meas) -> None:
        from ..measure import size_histogram

        if meas is None or not any(c.n_particles for c in meas.classes):
            self.size_bars.visible = False
            return
        edges, counts = size_histogram(meas, bins=15)
        names = list(counts)
        _sx, sy = self._size_scales
        sy.max = float(max(1, max(int(c.max()) for c in counts.values())))
        colours = {c: col for c, col in self.session.classes.items()}
        centres = (edges[:-1] + edges[1:]) / 2
        ticks = [f"{c:.3g}" for c in centres]
        self.size_x_axis.tick_values = np.array(sparse_ticks(ticks))
        with self.size_bars.hold_sync():
            self.size_bars.x = np.array(ticks)
            self.size_bars.y = np.array([counts[n] for n in names])
            self.size_bars.colors = [colours.get(n, "#999999") for n in names]
            self.size_bars.visible = True
        self.size_x_axis.label = f"equivalent diameter ({meas.length_unit})"

    def _sync_controls(self) -> None:
        # Show the settings in use without the observers writing them back.
        m = self.model
        st = m.session.settings
        self._syncing = True
        try:
            self.threshold.value = float(st.threshold)
            value, auto, note = m.eds_weight_control()
            self.eds_auto.value = auto
            self.eds_weight.value = value
            self.eds_weight.disabled = auto or not m.has_eds
            self.eds_weight_note.value = note
            self.fusion.value = st.fusion
            self.metric.value = st.metric
            self.chip_size.value = int(st.chip_size)
            self.stride.value = int(st.stride or 0)
            choices = m.encoder_choices()
            if list(self.encoder.options) != choices:
                self.encoder.options = choices
            self.encoder.value = st.encoder
        finally:
            self._syncing = False

    def show_progress(self, what: str, fraction: float) -> None:
        """Show a long step's progress (also fed by the session's progress events)."""
        self.progress.value = min(max(float(fraction), 0.0), 1.0)
        self.progress_label.value = f"{what} {100 * self.progress.value:.0f} %"

