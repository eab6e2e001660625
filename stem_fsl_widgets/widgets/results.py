"""Results and settings: fractions, entropy and threshold, suggestions, fusion, encoding.

Class area fractions, the entropy histogram with its threshold, "suggest next", the fusion
weight and mode, chip size / stride / encoder (re-encoding with a progress bar).

Every control calls :meth:`Session.configure` (or :meth:`Session.suggest`); the figures are
built once and their marks get new arrays when the session changes.
"""

from __future__ import annotations

from collections.abc import Callable

import bqplot
import ipywidgets as widgets
import numpy as np
import traitlets

from ..encoders import available_encoders
from ..errors import NotEnoughSupportsError
from .overlay import FollowsSession, guard, html_escape

__all__ = ["ResultsPanel", "entropy_histogram"]

UNCERTAIN_COLOUR = "#555555"
_FIG_LAYOUT = {"width": "360px", "height": "230px"}
_FIG_MARGIN = {"top": 30, "bottom": 40, "left": 50, "right": 10}


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


class ResultsPanel(FollowsSession, widgets.VBox):
    """Area fractions, entropy histogram with the uncertainty threshold, and the settings.

    Parameters
    ----------
    session : Session
    report : callable(str), optional
        Where error messages go; default this panel's note line.
    n_bins : int
        Bins of the entropy histogram.

    Attributes
    ----------
    fraction_bars, entropy_bars, threshold_line : bqplot marks
        Class area fractions (+ "uncertain" chip fraction); chips per entropy bin; the threshold.
    threshold : ipywidgets.FloatSlider
    suggest_button, n_suggest : ipywidgets.Button, ipywidgets.BoundedIntText
    eds_weight, eds_auto, fusion, metric : ipywidgets controls
    chip_size, stride, encoder, apply_grid : ipywidgets controls (stride 0 = no overlap)
    progress : ipywidgets.FloatProgress
        Encoding progress (the app routes ``session.progress`` here).
    suggested : tuple of int
        Chips suggested by the last "suggest next" (observe it to highlight them).
    """

    suggested = traitlets.Tuple()
    """Chips suggested as the next to label, most uncertain first."""

    def __init__(self, session, *, report: Callable[[str], None] | None = None, n_bins: int = 20) -> None:
        self.session = session
        self.report = report or self._report_here
        self.n_bins = int(n_bins)
        self._syncing = False
        self.note = widgets.HTML("")

        # ---- fractions figure
        xs, ys = bqplot.OrdinalScale(), bqplot.LinearScale(min=0.0, max=1.0)
        self.fraction_bars = bqplot.Bars(x=np.array(["-"]), y=np.zeros(1), scales={"x": xs, "y": ys},
                                         color_mode="group", colors=[UNCERTAIN_COLOUR], padding=0.2)
        self.fraction_figure = bqplot.Figure(
            marks=[self.fraction_bars], title="area fraction",
            axes=[bqplot.Axis(scale=xs), bqplot.Axis(scale=ys, orientation="vertical", tick_format=".0%")],
            layout=widgets.Layout(**_FIG_LAYOUT), fig_margin=_FIG_MARGIN)

        # ---- entropy histogram + threshold
        hx, hy = bqplot.LinearScale(min=0.0, max=1.0), bqplot.LinearScale(min=0.0)
        unit = bqplot.LinearScale(min=0.0, max=1.0)
        centres, counts = entropy_histogram(np.zeros(0), self.n_bins)
        self.entropy_bars = bqplot.Bars(x=centres, y=counts, scales={"x": hx, "y": hy},
                                        colors=["#0072B2"], padding=0.05)
        t = float(session.settings.threshold)
        self.threshold_line = bqplot.Lines(x=[t, t], y=[0.0, 1.0], scales={"x": hx, "y": unit},
                                           colors=["#D55E00"], stroke_width=2, line_style="dashed")
        self.entropy_figure = bqplot.Figure(
            marks=[self.entropy_bars, self.threshold_line], title="chip entropy (dashed: threshold)",
            axes=[bqplot.Axis(scale=hx, label="normalised entropy"),
                  bqplot.Axis(scale=hy, orientation="vertical", label="chips", tick_format="d")],
            layout=widgets.Layout(**_FIG_LAYOUT), fig_margin=_FIG_MARGIN)

        # ---- controls
        self.threshold = widgets.FloatSlider(t, min=0.0, max=1.0, step=0.01, description="threshold",
                                             continuous_update=False)
        self.summary = widgets.HTML("")
        self.n_suggest = widgets.BoundedIntText(5, min=1, max=100, description="n",
                                                style={"description_width": "20px"},
                                                layout=widgets.Layout(width="90px"))
        self.suggest_button = widgets.Button(description="suggest next", icon="lightbulb-o",
                                             tooltip="outline the most uncertain unlabelled chips")
        has_eds = session.dataset.has_eds
        w = session.settings.eds_weight
        self.eds_auto = widgets.Checkbox(w == "auto", description="auto", indent=False,
                                         disabled=not has_eds, layout=widgets.Layout(width="70px"))
        self.eds_weight = widgets.FloatSlider(0.5 if w == "auto" else float(w), min=0.0, max=1.0,
                                              step=0.05, description="EDS weight",
                                              continuous_update=False, disabled=not has_eds or w == "auto")
        self.eds_weight_note = widgets.HTML("")
        self.fusion = widgets.ToggleButtons(options=["early", "late"], value=session.settings.fusion,
                                            disabled=not has_eds, description="fusion",
                                            style={"button_width": "60px"})
        self.metric = widgets.Dropdown(options=["sqeuclidean", "cosine"], value=session.settings.metric,
                                       description="distance", layout=widgets.Layout(width="230px"))
        st = session.settings
        self.chip_size = widgets.BoundedIntText(st.chip_size, min=4, max=max(4, min(session.dataset.shape)),
                                                description="chip px", layout=widgets.Layout(width="160px"))
        self.stride = widgets.BoundedIntText(st.stride or 0, min=0, max=max(4, min(session.dataset.shape)),
                                             description="stride", tooltip="0 = chip size (no overlap)",
                                             layout=widgets.Layout(width="160px"))
        encoders = available_encoders()
        self.encoder = widgets.Dropdown(options=sorted(set(encoders) | {st.encoder}), value=st.encoder,
                                        description="encoder", layout=widgets.Layout(width="230px"))
        self.apply_grid = widgets.Button(description="re-encode", icon="refresh",
                                         tooltip="apply chip size, stride and encoder")
        self.progress = widgets.FloatProgress(0.0, min=0.0, max=1.0, layout=widgets.Layout(width="200px"))
        self.progress_label = widgets.HTML("")

        self.threshold.observe(self._on_threshold, names="value")
        self.eds_weight.observe(self._on_weight, names="value")
        self.eds_auto.observe(self._on_weight, names="value")
        self.fusion.observe(lambda ch: self._configure("change the fusion", fusion=ch["new"]),
                            names="value")
        self.metric.observe(lambda ch: self._configure("change the distance", metric=ch["new"]),
                            names="value")
        self.suggest_button.on_click(lambda _b: self.suggest())
        self.apply_grid.on_click(lambda _b: self.apply_encoding())

        figures = widgets.HBox([self.fraction_figure, self.entropy_figure],
                               layout=widgets.Layout(flex_flow="row wrap"))
        uncertainty = widgets.HBox([self.threshold, self.n_suggest, self.suggest_button],
                                   layout=widgets.Layout(flex_flow="row wrap"))
        fusion = widgets.HBox([self.eds_weight, self.eds_auto, self.eds_weight_note, self.fusion,
                               self.metric],
                              layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        grid = widgets.HBox([self.chip_size, self.stride, self.encoder, self.apply_grid,
                             self.progress, self.progress_label],
                            layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        super().__init__([figures, self.summary, uncertainty, fusion, grid, self.note])
        self._follow(session)
        self.refresh()

    # ------------------------------------------------------------------ actions
    def suggest(self, n: int | None = None) -> tuple[int, ...]:
        """Ask the session for the ``n`` most uncertain unlabelled chips; sets :attr:`suggested`."""
        chips: tuple[int, ...] = ()
        with guard(self.report, "suggest chips"):
            if self.session.result is None:
                raise NotEnoughSupportsError(self.session.status())
            n = int(self.n_suggest.value if n is None else n)
            chips = tuple(int(c) for c in self.session.suggest(n))
            self.suggested = chips
            self.note.value = html_escape("Label next: chips " + ", ".join(map(str, chips)))
        return chips

    def apply_encoding(self) -> None:
        """Apply chip size, stride and encoder (re-encodes; progress in :attr:`progress`)."""
        stride = int(self.stride.value) or None
        self._configure("change chip size / stride / encoder", chip_size=int(self.chip_size.value),
                        stride=stride, encoder=self.encoder.value)

    def show_progress(self, what: str, fraction: float) -> None:
        """``session.progress`` callback: show a long step's progress."""
        self.progress.value = min(max(float(fraction), 0.0), 1.0)
        self.progress_label.value = html_escape(f"{what} {100 * self.progress.value:.0f} %")

    def _configure(self, action: str, **changes) -> None:
        if self._syncing:
            return
        with guard(self.report, action):
            self.session.configure(**changes)
        self._sync_controls()  # a refused change puts the control back to the session's value

    def _on_threshold(self, change: dict) -> None:
        self._configure("set the threshold", threshold=float(change["new"]))

    def _on_weight(self, _change: dict) -> None:
        self.eds_weight.disabled = self.eds_auto.value or not self.session.dataset.has_eds
        value = "auto" if self.eds_auto.value else float(self.eds_weight.value)
        self._configure("set the EDS weight", eds_weight=value)

    # ------------------------------------------------------------------ drawing
    def refresh(self) -> None:
        """Redraw figures and controls from the session's state (new arrays into existing marks)."""
        s, r = self.session, self.session.result
        if r is None:
            names, fracs, colours = [], [], []
            centres, counts = entropy_histogram(np.zeros(0), self.n_bins)
            self.summary.value = html_escape(s.status())
        else:
            names = list(r.fractions)
            fracs = [r.fractions[c] for c in names]
            colours = [s.classes.get(c, col) for c, col in zip(r.classes, r.colours, strict=True)]
            centres, counts = entropy_histogram(r.entropy, self.n_bins)
            self.summary.value = html_escape(
                f"{100 * r.uncertain_fraction:.1f} % of chips uncertain (entropy > {r.threshold:.2f}); "
                + ", ".join(f"{c} {100 * f:.1f} %" for c, f in zip(names, fracs, strict=True)))
        with self.fraction_bars.hold_sync():
            self.fraction_bars.x = np.array(names + ["uncertain"])
            self.fraction_bars.y = np.array(fracs + [0.0 if r is None else r.uncertain_fraction])
            self.fraction_bars.colors = colours + [UNCERTAIN_COLOUR]
        with self.entropy_bars.hold_sync():
            self.entropy_bars.x = centres
            self.entropy_bars.y = counts
        t = float(s.settings.threshold)
        self.threshold_line.x = [t, t]
        if r is not None and r.eds_weight is not None:
            mode = "auto" if s.settings.eds_weight == "auto" else "set"
            self.eds_weight_note.value = html_escape(f"{mode}: {r.eds_weight:.2f}")
        else:
            self.eds_weight_note.value = "" if s.dataset.has_eds else "no EDS"
        self._sync_controls()

    def _sync_controls(self) -> None:
        # Show the session's settings without the observers writing them back.
        st = self.session.settings
        self._syncing = True
        try:
            self.threshold.value = float(st.threshold)
            auto = st.eds_weight == "auto"
            self.eds_auto.value = auto
            if not auto:
                self.eds_weight.value = float(st.eds_weight)
            elif self.session.result is not None and self.session.result.eds_weight is not None:
                self.eds_weight.value = round(float(self.session.result.eds_weight), 2)
            self.eds_weight.disabled = auto or not self.session.dataset.has_eds
            self.fusion.value = st.fusion
            self.metric.value = st.metric
            self.chip_size.value = int(st.chip_size)
            self.stride.value = int(st.stride or 0)
            if st.encoder not in self.encoder.options:  # registered after the panel was built
                self.encoder.options = sorted(set(available_encoders()) | {st.encoder})
            self.encoder.value = st.encoder
        finally:
            self._syncing = False

    def _on_session_change(self, _session) -> None:
        with guard(self.report, "update the results"):
            self.refresh()

    def _report_here(self, message: str) -> None:
        self.note.value = f"<span style='color:#b00020'>{html_escape(message)}</span>"
