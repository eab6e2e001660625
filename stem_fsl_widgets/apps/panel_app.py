"""The Panel app: Panel widgets and Bokeh figures bound to the same view-model as the notebook app.

Why native Bokeh and not the ipywidgets views inside Panel: Panel hosts ipywidgets through
ipywidgets_bokeh, which fetches third-party widget code (ipycanvas, bqplot) from a public CDN
at run time, so offline they do not render. Panel's own widgets and Bokeh figures are served
by the Panel server itself, so this app works on an instrument PC with no network.

Layout and bindings only: every gesture is an action of
:class:`~stem_fsl_widgets.viewmodel.AppModel` (the data's model) or
:class:`~stem_fsl_widgets.viewmodel.DashboardModel` (choosing data), and every figure draws the
model's derivations — the same arrays the notebook app draws.

Run it with ``stem-fsl serve [IMAGE [EDS]]``, or::

    panel serve stem_fsl_widgets/apps/panel_app.py --address 127.0.0.1 --args IMAGE [EDS]

or from Python: ``from stem_fsl_widgets.apps import serve; serve(dataset)``.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.events import MouseMove, Pan, PanEnd, PanStart, SelectionGeometry, Tap
from bokeh.models import (
    BoxAnnotation,
    BoxSelectTool,
    ColumnDataSource,
    FactorRange,
    HoverTool,
    Label,
    LinearColorMapper,
    PanTool,
    Range1d,
    Span,
    WheelZoomTool,
)
from bokeh.palettes import Greys256
from bokeh.plotting import figure

# Absolute imports: ``panel serve`` runs this file as a script, not as a package module.
from stem_fsl_widgets.apps.panel_batch import PanelBatch
from stem_fsl_widgets.dataset import Dataset
from stem_fsl_widgets.scalebar import scale_bar
from stem_fsl_widgets.session import Session
from stem_fsl_widgets.viewmodel import DOWNLOADS, AppModel, DashboardModel, Layers, Overlay
from stem_fsl_widgets.viewmodel.dashboard import EDS_TYPES, IMAGE_TYPES
from stem_fsl_widgets.viewmodel.drawing import MAX_DISPLAY_SIDE, focus_window
from stem_fsl_widgets.viewmodel.text import html_escape, measurement_table_html

__all__ = ["PanelApp", "PanelDashboard", "create_app", "overlay_columns", "serve"]

_log = logging.getLogger(__name__)

TITLE = "STEM few-shot segmentation"
#: Hatch of uncertain chips: black lines one way, white lines the other.
UNCERTAIN_HATCH = "right_diagonal_line"
CROSS_HATCH = "left_diagonal_line"
NO_HATCH = "blank"
MAX_FRAME = 600  # longest side of the image frame, screen px
_KIND = {"info": "light", "ok": "success", "warning": "warning", "error": "danger"}
_MESSAGE_HEIGHT = 64  # px: the message area never changes height, so the figure never moves


def _hex(rgba_row: np.ndarray) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgba_row[:3]))


def overlay_columns(grid: Any, ov: Overlay, layers: Layers | None = None) -> dict[str, Any]:
    """Columns of the chip quads from a model :class:`Overlay` (one row per chip).

    ``fill_color`` / ``fill_alpha`` (alpha 0 where no prediction, times the segmentation
    opacity), ``hatch_pattern`` (uncertain chips), ``line_color`` / ``line_alpha`` (support
    outlines, times their opacity), ``suggested`` (0/1), and the box as ``left, right``
    (x, px) and ``top, bottom`` (y, px, image rows).
    """
    lay = layers or Layers()
    b = grid.boxes
    fill_alpha = ov.fill[:, 3] / 255.0 * lay.segmentation_opacity
    return {
        "chip": np.arange(len(b)), "left": b[:, 1], "right": b[:, 3], "top": b[:, 0], "bottom": b[:, 2],
        "fill_color": [_hex(r) for r in ov.fill], "fill_alpha": fill_alpha,
        "hatch_pattern": [UNCERTAIN_HATCH if u else NO_HATCH for u in ov.uncertain],
        "line_color": [_hex(r) for r in ov.outline],
        "line_alpha": ov.outline[:, 3] / 255.0 * lay.supports_opacity,
        "suggested": ov.suggested.astype(float),
    }


def _update_source(source: ColumnDataSource, new: dict[str, Any]) -> int:
    """Send only the rows that changed (``patch``); replace everything when the grid changed.

    Returns the number of rows sent.
    """
    old = source.data
    n = len(new["chip"])
    geometry = ("chip", "left", "right", "top", "bottom")
    if set(old) != set(new) or len(old.get("chip", ())) != n or any(
            not np.array_equal(old[k], new[k]) for k in geometry):
        source.data = new
        return n
    changed = np.zeros(n, bool)
    for key, values in new.items():
        changed |= np.asarray(old[key]) != np.asarray(values)
    rows = np.flatnonzero(changed)
    if rows.size:
        source.patch({k: [(int(i), _py(v[i])) for i in rows] for k, v in new.items()
                      if k not in geometry})
    return int(rows.size)


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class KeyBridge(pn.custom.JSComponent):
    """Key presses on the page (outside text fields) and the browser's id, sent to Python."""

    browser_id = param.String(default="", doc="An id this browser keeps in its local storage.")

    _esm = """
    export function render({ model, el }) {
      try {
        let id = window.localStorage.getItem("sfw-browser-id");
        if (!id) {
          id = (crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Math.random()).slice(2);
          window.localStorage.setItem("sfw-browser-id", id);
        }
        model.browser_id = id;
      } catch (e) {}
      const onKey = (ev) => {
        const t = ev.target;
        const typing = t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
        if (typing) return;
        const ctrl = ev.ctrlKey || ev.metaKey;
        const key = /^Digit[1-9]$/.test(ev.code) ? ev.code.slice(5) : ev.key;
        const ours = /^[1-9]$/.test(key) || key === "Escape" || (ctrl && /^[zZyY]$/.test(key));
        if (!ours) return;
        ev.preventDefault();
        model.send_msg({ key: key, ctrl: ctrl, shift: ev.shiftKey });
      };
      document.addEventListener("keydown", onKey);
      model.on("remove", () => document.removeEventListener("keydown", onKey));
      el.style.display = "none";
    }
    """

    def __init__(self, on_key: Callable[[str, bool, bool], None] | None = None, **params: Any) -> None:
        super().__init__(**params)
        self._on_key = on_key

    def _handle_msg(self, msg: Any) -> None:
        if self._on_key is not None and isinstance(msg, dict):
            self._on_key(str(msg.get("key", "")), bool(msg.get("ctrl")), bool(msg.get("shift")))


class PanelApp(pn.viewable.Viewer):
    """Few-shot segmentation of one dataset in Panel: image, classes, results, spectra.

    Parameters
    ----------
    source : AppModel or Session
        The model (or a session to make one of) this app shows and edits.

    Attributes
    ----------
    model : AppModel
    session : Session
    figure : bokeh Figure
        The image with the chip overlay; taps and drags become model actions.
    chip_source : ColumnDataSource
        One quad per chip (see :func:`overlay_columns`).
    fraction_source, entropy_source, size_source : ColumnDataSource
    spectrum_source, class_spectra_source, line_source : ColumnDataSource
    class_select, class_name, add_button, rename_button, delete_button, colour_picker
    threshold, eds_weight, eds_auto, fusion, metric, chip_size, stride, encoder, apply_grid
    layer controls: show_fill, fill_opacity, show_uncertain, uncertain_opacity, show_supports,
        supports_opacity, show_grid, pixel_map, contrast, mode
    log_y, elements, reset_window
    download_select, download_button, zip_button : downloads (browser, nothing on the server)
    message : pn.pane.Alert
        Errors and confirmations; fixed height, so the figure never moves.
    status, fractions_text, hover_text, measurements : panes

    Examples
    --------
    >>> import numpy as np, stem_fsl_widgets as sfw
    >>> img = np.random.default_rng(0).normal(size=(64, 64))
    >>> app = PanelApp(sfw.Session(img, chip_size=16))
    >>> app.click(3.0, 3.0)  # image (x, y) in px → chip 0 labelled with the active class
    0
    >>> app.session.supports
    {0: 'class 1'}
    """

    def __init__(self, source: AppModel | Session, **params: Any) -> None:
        super().__init__(**params)
        self._owns_model = not isinstance(source, AppModel)
        self.model = m = AppModel.of(source)
        self.session = m.session
        self._syncing = False
        self._source_widget: Any = None
        doc = pn.state.curdoc
        # In a server session, redraws run as the document's next-tick callback: that holds the
        # document lock, which Bokeh needs when Python changes a figure's data from a widget
        # callback (else: "_pending_writes should be non-None ..."), and merges the topics of
        # one user action into one redraw.
        self._doc = doc if doc is not None and doc.session_context is not None else None
        if self._doc is not None and m.run_on_ui is None:
            # Bokeh's next-tick callback is the safe way back from a worker thread: pixel maps
            # are then computed in the background while the pixel layer is on.
            m.run_on_ui = self._doc.add_next_tick_callback
        self._pending: set[str] = set()
        self._skip_sources: set[Any] = set()
        self._build_image()
        self._build_classes()
        self._build_results()
        self._build_settings()
        self._build_spectrum()
        self._build_downloads()
        self._build_status()
        self._layout = self._build_layout()
        m.watch(self._on_topics)
        self._on_topics(frozenset({"overlay", "classes", "results", "settings", "spectrum", "status",
                                   "message", "layers", "autosave", "hover"}))

    # ------------------------------------------------------------------ building
    def _build_image(self) -> None:
        ds = self.session.dataset
        h, w = ds.shape
        scale = MAX_FRAME / max(h, w)
        self.pan_tool, self.zoom_tool = PanTool(), WheelZoomTool()
        self.figure = figure(
            x_range=Range1d(0, w, bounds=(0, w)), y_range=Range1d(h, 0, bounds=(0, h)),
            frame_width=max(1, round(w * scale)), frame_height=max(1, round(h * scale)),
            tools=[self.pan_tool, self.zoom_tool, "reset"], active_scroll=self.zoom_tool,
            active_drag=None, toolbar_location="above", min_border=0, outline_line_color=None,
            css_classes=["sfw-image"],
        )
        self.figure.axis.visible = False
        self.figure.grid.visible = False
        self.image_source = ColumnDataSource({"image": [self.model.display_image(MAX_DISPLAY_SIDE)]})
        # Rows run down the screen: the y range is reversed, so row 0 (y = 0) is at the top.
        self.figure.image(image="image", source=self.image_source, x=0, y=0, dw=w, dh=h,
                          color_mapper=LinearColorMapper(palette=Greys256, low=0, high=255))
        self.pixel_source = ColumnDataSource({"image": []})
        self.pixel_renderer = self.figure.image_rgba(image="image", source=self.pixel_source, x=0, y=0,
                                                     dw=w, dh=h, global_alpha=0.35, visible=False)
        self.chip_source = ColumnDataSource(overlay_columns(self.session.grid, self.model.overlay(),
                                                            self.model.layers))
        quad = dict(left="left", right="right", top="top", bottom="bottom", source=self.chip_source)
        self.fill_renderer = self.figure.quad(fill_color="fill_color", fill_alpha="fill_alpha",
                                              line_color=None, **quad)
        self.grid_renderer = self.figure.quad(fill_color=None, line_color="white", line_alpha=0.25,
                                              line_width=0.5, **quad)
        # Black and white hatches crossing: uncertainty shows on every colour, dark or bright.
        self.hatch_renderers = [
            self.figure.quad(fill_color=None, line_color=None, hatch_pattern="hatch_pattern",
                             hatch_color="black", hatch_alpha=0.5, hatch_weight=1.0, hatch_scale=12,
                             **quad),
            self.figure.quad(fill_color=None, line_color=None, hatch_pattern="hatch_pattern",
                             hatch_color="white", hatch_alpha=0.5, hatch_weight=1.0, hatch_scale=12,
                             hatch_extra={}, **quad),
        ]
        self.support_renderer = self.figure.quad(fill_color=None, line_color="line_color",
                                                 line_alpha="line_alpha", line_width=3, **quad)
        # Suggestions: dashed white boxes, unlike a support's solid coloured outline.
        self.suggest_renderers = [
            self.figure.quad(fill_color=None, line_color=colour, line_alpha="suggested",
                             line_width=width, line_dash=dash, **quad)
            for colour, width, dash in (("black", 3, "solid"), ("white", 2, "dashed"))]
        self.figure.add_tools(HoverTool(renderers=[self.fill_renderer], tooltips=None))
        self.figure.on_event(Tap, self._on_tap)
        self.figure.on_event(PanStart, self._on_pan_start)
        self.figure.on_event(Pan, self._on_pan)
        self.figure.on_event(PanEnd, self._on_pan_end)
        self.figure.on_event(MouseMove, self._on_move)
        self._add_scale_bar(w, h)  # last: drawn above the chip overlays

    def _add_scale_bar(self, w: int, h: int) -> None:
        """A round physical length at the bottom left, in image coordinates (zooms with it)."""
        ds = self.session.dataset
        bar = scale_bar(ds.pixel_size, ds.pixel_unit, w)
        if bar is None:
            return
        length, text = bar
        x0, y1, thick = w / 40, h - h / 40, max(3.0, h / 120)
        self.scale_bar = self.figure.quad(left=[x0], right=[x0 + length], top=[y1 - thick], bottom=[y1],
                                          fill_color="white", line_color="black", line_width=1)
        self.figure.add_layout(Label(x=x0, y=y1 - thick - 2, text=text, text_color="white",
                                     text_font_size="12px", border_line_color=None,
                                     background_fill_color="black", background_fill_alpha=0.5))

    def _build_classes(self) -> None:
        m = self.model
        self.class_select = pn.widgets.RadioBoxGroup(name="Active class", options={}, inline=False)
        self.class_select.param.watch(self._on_class_select, "value")
        self.legend = pn.pane.HTML("", margin=(0, 10))
        self.class_name = pn.widgets.TextInput(name="Class name", placeholder="e.g. matrix", width=160)
        self.add_button = pn.widgets.Button(name="Add", button_type="primary", width=70)
        self.rename_button = pn.widgets.Button(name="Rename", width=80)
        self.delete_button = pn.widgets.Button(name="Delete", button_type="danger", width=70)
        self.colour_picker = pn.widgets.ColorPicker(name="Colour", width=80)
        self.add_button.on_click(lambda e: self.add_class())
        self.rename_button.on_click(lambda e: self.rename_class())
        self.delete_button.on_click(lambda e: self.delete_class())
        if "enter_pressed" in self.class_name.param:  # Enter in the box adds, like the button
            self.class_name.param.watch(lambda e: self.add_class(), "enter_pressed")
        self.colour_picker.param.watch(
            lambda e: None if self._syncing or m.active_class is None
            else m.set_colour(m.active_class, e.new),
            "value")

    def _build_results(self) -> None:
        self.fraction_source = ColumnDataSource({"cls": [], "fraction": [], "colour": [], "text": []})
        self.fraction_figure = figure(
            x_range=FactorRange(factors=[" "]), y_range=Range1d(0, 1.15), height=230, width=340,
            tools="", toolbar_location=None, title="Area fractions", css_classes=["sfw-fractions"],
        )
        self.fraction_figure.vbar(x="cls", top="fraction", width=0.8, source=self.fraction_source,
                                  fill_color="colour", line_color="black")
        self.fraction_figure.text(x="cls", y="fraction", text="text", source=self.fraction_source,
                                  text_align="center", text_baseline="bottom", text_font_size="9pt")
        self.fraction_figure.xgrid.visible = False
        self.fraction_figure.xaxis.major_label_orientation = 0.6  # long names do not overlap
        # HTML panes with escaped text, never Markdown: a class name is not markup.
        self.fractions_text = pn.pane.HTML("", css_classes=["sfw-fractions-text"], margin=(0, 10))
        self.entropy_source = ColumnDataSource({"x": [], "count": []})
        self.entropy_figure = figure(height=200, width=340, x_range=Range1d(0, 1), tools="",
                                     toolbar_location=None, title="Chip entropy (dashed: threshold)",
                                     x_axis_label="normalised entropy", y_axis_label="chips",
                                     css_classes=["sfw-entropy"])
        self.entropy_figure.vbar(x="x", top="count", width=0.045, source=self.entropy_source,
                                 fill_color="#0072B2", line_color=None)
        self.threshold_span = Span(location=float(self.session.settings.threshold), dimension="height",
                                   line_color="#D55E00", line_dash="dashed", line_width=2)
        self.entropy_figure.add_layout(self.threshold_span)
        self.size_source = ColumnDataSource({"x": [], "count": [], "colour": [], "width": []})
        self.size_figure = figure(height=200, width=340, tools="", toolbar_location=None,
                                  title="Particle sizes", x_axis_label="equivalent diameter",
                                  y_axis_label="particles", css_classes=["sfw-sizes"])
        self.size_figure.vbar(x="x", top="count", width="width", source=self.size_source,
                              fill_color="colour", fill_alpha=0.6, line_color="colour")
        self.measurements = pn.pane.HTML("", css_classes=["sfw-measurements-pane"], margin=(0, 10))
        self.suggest_button = pn.widgets.Button(name="Suggest next chips", width=160)
        self.n_suggest = pn.widgets.IntInput(name="how many", value=5, start=1, end=100, width=80)
        self.suggest_button.on_click(lambda e: self.suggest(int(self.n_suggest.value)))
        self.next_button = pn.widgets.Button(name="Go to next (n)", width=130,
                                             description="centre and zoom on the next suggested "
                                                         "chip; then keys 1-9 label it")
        self.next_button.on_click(lambda e: self.model.next_suggestion())

    def _build_settings(self) -> None:
        m = self.model
        st = self.session.settings
        has_eds = m.has_eds
        self.threshold = pn.widgets.FloatSlider(name="Uncertainty threshold (normalised entropy)",
                                                start=0.0, end=1.0, step=0.01, value=float(st.threshold))
        value, auto, _note = m.eds_weight_control()
        self.eds_weight = pn.widgets.FloatSlider(name="EDS weight (0 = image only, 1 = EDS only)",
                                                 start=0.0, end=1.0, step=0.01, value=value,
                                                 disabled=not has_eds or auto)
        self.eds_auto = pn.widgets.Checkbox(name="automatic weight (from the labelled chips)",
                                            value=auto, disabled=not has_eds)
        self.fusion = pn.widgets.Select(name="Fusion", options=["early", "late"], value=st.fusion,
                                        disabled=not has_eds, width=110)
        self.metric = pn.widgets.Select(name="Distance", options={"Euclidean": "sqeuclidean",
                                                                  "cosine": "cosine"},
                                        value=st.metric, width=110)
        self.chip_size = pn.widgets.Select(name="Chip size (px)", options=m.chip_size_choices(),
                                           value=int(st.chip_size), width=110)
        self.stride = pn.widgets.IntInput(name="Stride (0 = no overlap)", value=int(st.stride or 0),
                                          start=0, end=m.chip_size_bounds()[1], width=110)
        self.encoder = pn.widgets.Select(name="Encoder", options=m.encoder_choices(), value=st.encoder,
                                         width=140)
        self.apply_grid = pn.widgets.Button(name="Re-encode", width=100)
        self.threshold.param.watch(lambda e: self._from(self.threshold, m.set_threshold, e.new),
                                   "value_throttled")
        self.eds_weight.param.watch(lambda e: self._from(self.eds_weight, m.set_eds_weight, e.new),
                                    "value_throttled")
        self.eds_auto.param.watch(lambda e: self._from(self.eds_auto, self._set_auto, e.new), "value")
        self.fusion.param.watch(lambda e: self._from(self.fusion, m.set_fusion, e.new), "value")
        self.metric.param.watch(lambda e: self._from(self.metric, m.set_metric, e.new), "value")
        self.apply_grid.on_click(lambda e: m.apply_grid(int(self.chip_size.value), int(self.stride.value),
                                                        self.encoder.value))
        # Layers and display.
        lay = m.layers
        self.mode = pn.widgets.RadioButtonGroup(name="Mouse", options=["paint", "erase", "pan"],
                                                value="paint", width=200)
        self.show_fill = pn.widgets.Checkbox(name="segmentation", value=lay.segmentation)
        self.fill_opacity = pn.widgets.FloatSlider(name="opacity", start=0, end=1, step=0.05,
                                                   value=lay.segmentation_opacity, width=120)
        self.show_uncertain = pn.widgets.Checkbox(name="uncertainty", value=lay.uncertainty)
        self.uncertain_opacity = pn.widgets.FloatSlider(name="opacity", start=0, end=1, step=0.05,
                                                        value=lay.uncertainty_opacity, width=120)
        self.show_supports = pn.widgets.Checkbox(name="labels", value=lay.supports)
        self.supports_opacity = pn.widgets.FloatSlider(name="opacity", start=0, end=1, step=0.05,
                                                       value=lay.supports_opacity, width=120)
        self.show_grid = pn.widgets.Checkbox(name="grid", value=lay.grid)
        self.pixel_map = pn.widgets.Checkbox(name="pixel map", value=lay.pixels)
        self.contrast = pn.widgets.RangeSlider(name="Contrast (percentiles)", start=0, end=100, step=0.5,
                                               value=m.contrast, width=240)
        for widget, name in ((self.show_fill, "segmentation"), (self.fill_opacity, "segmentation_opacity"),
                             (self.show_uncertain, "uncertainty"),
                             (self.uncertain_opacity, "uncertainty_opacity"),
                             (self.show_supports, "supports"), (self.supports_opacity, "supports_opacity"),
                             (self.show_grid, "grid"), (self.pixel_map, "pixels")):
            widget.param.watch(lambda e, n=name: None if self._syncing else m.set_layers(**{n: e.new}),
                               "value")
        self.contrast.param.watch(lambda e: None if self._syncing else m.set_contrast(*e.new),
                                  "value_throttled")
        self.mode.param.watch(self._on_mode, "value")

    def _build_spectrum(self) -> None:
        m = self.model
        self.spectrum_source = ColumnDataSource({"energy": [], "counts": []})
        self.class_spectra_source = ColumnDataSource({"xs": [], "ys": [], "colour": [], "name": []})
        self.line_source = ColumnDataSource({"x": [], "y0": [], "y1": [], "ylabel": [], "name": []})
        self.spectrum_figures = {}
        self.window_box = BoxAnnotation(fill_color="#56B4E9", fill_alpha=0.15)
        for kind in ("linear", "log"):
            f = figure(height=260, width=420, title="Hover or click a chip to see its spectrum",
                       x_axis_label="Energy (keV)", y_axis_label="Counts per chip", y_axis_type=kind,
                       y_range=Range1d(0.1 if kind == "log" else 0.0, 1.0),
                       tools=[BoxSelectTool(dimensions="width"), "reset"], toolbar_location="right",
                       css_classes=[f"sfw-spectrum-{kind}"], visible=kind == "linear")
            f.multi_line("xs", "ys", source=self.class_spectra_source, line_color="colour", line_width=2,
                         legend_field="name")
            f.line("energy", "counts", source=self.spectrum_source, line_color="black", line_width=1.2)
            f.segment(x0="x", y0="y0", x1="x", y1="y1", source=self.line_source, line_color="grey",
                      line_dash="dotted")
            f.text(x="x", y="ylabel", text="name", source=self.line_source, text_align="center",
                   text_baseline="bottom", text_font_size="8pt", text_color="#444444")
            f.add_layout(self.window_box)
            f.legend.location = "top_right"
            f.legend.label_text_font_size = "8pt"
            f.add_layout(f.legend[0], "below")  # below the plot: never over the curves
            f.on_event(SelectionGeometry, self._on_window)
            self.spectrum_figures[kind] = f
        self.spectrum_figure = self.spectrum_figures["linear"]
        self.log_y = pn.widgets.Checkbox(name="log y", value=m.log_y)
        self.log_y.param.watch(lambda e: m.set_log_y(e.new), "value")
        self.elements = pn.widgets.MultiChoice(name="Element lines (also used to classify)", options=[],
                                               value=list(self.session.settings.elements),
                                               visible=m.has_eds, width=380)
        if m.has_eds:
            from stem_fsl_widgets.elements import known_elements

            self.elements.options = known_elements()
        self.elements.param.watch(lambda e: self._from(self.elements, m.set_elements, list(e.new)), "value")
        self.window_text = pn.pane.Str("", margin=(0, 10))
        self.reset_window = pn.widgets.Button(name="Full energy window", width=150)
        self.reset_window.on_click(lambda e: m.reset_window())

    def _build_downloads(self) -> None:
        options = {f"{DOWNLOADS[k][0]} ({k})": k for k in DOWNLOADS if k != "all.zip"}
        self.download_select = pn.widgets.Select(name="File", options=options, value="labels.png",
                                                 width=340)
        self.download_button = pn.widgets.FileDownload(
            callback=lambda: self._download(self.download_select.value), filename="labels.png",
            label="Download", button_type="primary", width=150, embed=False)
        self.zip_button = pn.widgets.FileDownload(
            callback=lambda: self._download("all.zip"), filename=f"{self.model.file_stem}_all.zip",
            label="Download all (zip)", width=170, embed=False)
        self.download_select.param.watch(
            lambda e: setattr(self.download_button, "filename", f"{self.model.file_stem}_{e.new}"), "value")
        self.download_button.filename = f"{self.model.file_stem}_labels.png"

    def _build_status(self) -> None:
        self.title = pn.pane.HTML("", css_classes=["sfw-title"], margin=(0, 10))
        self.status = pn.pane.HTML("", css_classes=["sfw-status"], margin=(0, 10), height=48)
        self.message = pn.pane.Alert("", alert_type="light", css_classes=["sfw-message"],
                                     height=_MESSAGE_HEIGHT, margin=(0, 10))
        self.hover_text = pn.pane.Str("", css_classes=["sfw-hover"], height=22, margin=(0, 10))
        self.autosave_text = pn.pane.HTML("", css_classes=["sfw-autosave"], margin=(0, 10))
        self.undo_button = pn.widgets.Button(name="↶ Undo", width=90)
        self.redo_button = pn.widgets.Button(name="↷ Redo", width=90)
        self.undo_button.on_click(lambda e: self.undo())
        self.redo_button.on_click(lambda e: self.redo())
        self.progress = pn.indicators.Progress(value=0, max=100, width=200, visible=True, height=20)
        self.progress_text = pn.pane.Str("", width=220, height=20)
        self.keys = KeyBridge(on_key=lambda k, c, s: self.model.key(k, ctrl=c, shift=s))

    def _build_layout(self) -> pn.viewable.Viewable:
        classes = pn.Card(
            self.legend, self.class_select,
            pn.Row(self.class_name, self.colour_picker),
            pn.Row(self.add_button, self.rename_button, self.delete_button),
            title="Classes (keys 1–9)", collapsible=False, width=380,
        )
        results = pn.Card(self.fractions_text, self.fraction_figure, self.entropy_figure,
                          pn.Row(self.n_suggest, self.suggest_button, self.next_button),
                          title="Segmentation", collapsible=False, width=380)
        settings = pn.Card(self.threshold, self.eds_auto, self.eds_weight,
                           pn.Row(self.fusion, self.metric),
                           pn.Row(self.chip_size, self.stride), pn.Row(self.encoder, self.apply_grid),
                           title="Settings", width=380)
        spectrum = pn.Card(self.spectrum_figures["linear"], self.spectrum_figures["log"],
                           pn.Row(self.log_y, self.reset_window), self.window_text, self.elements,
                           title="Spectrum (drag: energy window)", width=440, visible=self.model.has_eds)
        measure = pn.Card(self.measurements, self.size_figure, title="Measurements", width=440)
        downloads = pn.Card(self.download_select, pn.Row(self.download_button, self.zip_button),
                            title="Download", width=440)
        layers = pn.Column(
            pn.Row(self.show_fill, self.fill_opacity, self.show_uncertain, self.uncertain_opacity),
            pn.Row(self.show_supports, self.supports_opacity, self.show_grid, self.pixel_map),
            self.contrast)
        left = pn.Column(
            self.title, self.status, self.message,
            pn.Row(self.mode, self.undo_button, self.redo_button, self.progress, self.progress_text),
            self.figure, self.hover_text, layers, self.autosave_text, self.keys,
        )
        return pn.Row(left, pn.Column(classes, results, settings),
                      pn.Column(spectrum, measure, downloads))

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    @property
    def active_class(self) -> str | None:
        """The class a click labels (the model's); setting it selects that class."""
        return self.model.active_class

    @active_class.setter
    def active_class(self, name: str) -> None:
        self.model.select_class(name)

    # ------------------------------------------------------------------ actions
    @contextmanager
    def _sync(self):
        was, self._syncing = self._syncing, True
        try:
            yield
        finally:
            self._syncing = was

    def _from(self, widget: Any, action: Callable[[Any], Any], value: Any) -> None:
        """Run ``action(value)`` for a widget's change.

        That widget is not written back while the model redraws, so a slider moved by arrow
        keys keeps the value the user gave.
        """
        if self._syncing:
            return
        self._source_widget = widget
        try:
            ok = action(value)
        finally:
            self._source_widget = None
        if ok is not False and self._doc is not None:
            self._skip_sources.add(widget)  # the deferred redraw leaves this widget alone too

    def _set_auto(self, auto: bool) -> None:
        self.model.set_eds_weight(float(self.eds_weight.value), auto=bool(auto))

    def show_message(self, text: str, kind: str = "error") -> None:
        """Show ``text`` in the message area (kind: info, ok, warning, error)."""
        self.model.say(text, kind)

    def click(self, x: float, y: float, *, remove: bool = False) -> int | None:
        """Label (or un-label) the chip under image pixel ``(x, y)`` with the active class.

        Returns the chip clicked; None outside the image.
        """
        return self.model.click(x, y, remove=remove)

    def _on_tap(self, event: Tap) -> None:
        if self.mode.value == "pan":
            return
        shift = bool(getattr(event, "modifiers", None) and event.modifiers.get("shift"))
        self.model.click(event.x, event.y, remove=shift or self.mode.value == "erase")

    def _on_pan_start(self, event: PanStart) -> None:
        if self.mode.value == "paint":
            self.model.press(event.x, event.y)
        elif self.mode.value == "erase":
            self.model.press(event.x, event.y, remove=True)

    def _on_pan(self, event: Pan) -> None:
        if self.mode.value == "paint":
            self.model.drag(event.x, event.y)
        elif self.mode.value == "erase":
            chip = self.model.chip_at(event.x, event.y)
            if chip is not None and chip in self.session.supports:
                self.model.press(event.x, event.y, remove=True)

    def _on_pan_end(self, event: PanEnd) -> None:
        if self.mode.value == "paint":
            self.model.release()

    def _on_move(self, event: MouseMove) -> None:
        self.model.hover(event.x, event.y)

    def _on_mode(self, event: Any) -> None:
        # Paint/erase: drags reach Python as Pan events; pan: the pan tool moves the view.
        self.figure.toolbar.active_drag = self.pan_tool if event.new == "pan" else None

    def add_class(self, name: str | None = None) -> None:
        """Add a class named ``name`` (default: the text typed in the name box)."""
        typed = self.class_name.value_input if name is None else name
        typed = typed if typed is not None else self.class_name.value
        if self.model.add_class(typed) is not None:
            self._clear_name()

    def _clear_name(self) -> None:
        # Not inside this event's own write to the same text box: the box is cleared on the
        # next tick, when Bokeh has applied the browser's edit (else Panel raises a
        # "_pending_writes" error on Add without Enter).
        def clear() -> None:
            with self._sync():
                self.class_name.param.update(value="", value_input="")

        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            doc.add_next_tick_callback(clear)
        else:
            clear()

    def rename_class(self, new: str | None = None) -> None:
        """Rename the active class to ``new`` (default: the name box)."""
        typed = self.class_name.value_input if new is None else new
        typed = typed if typed is not None else self.class_name.value
        old = self.model.active_class
        if old is None:
            self.model.say("There is no class to rename.", "error")
            return
        self.model.rename_class(old, typed or "")
        if self.model.active_class != old:
            self._clear_name()

    def delete_class(self) -> None:
        """Delete the active class and its labelled chips (undo brings them back)."""
        if self.model.active_class is not None:
            self.model.remove_class(self.model.active_class)

    def undo(self) -> None:
        """Revert the session's last change."""
        self.model.undo()

    def redo(self) -> None:
        """Re-apply the last undone change."""
        self.model.redo()

    def suggest(self, n: int = 5) -> np.ndarray:
        """Mark the ``n`` most uncertain unlabelled chips on the image; return their indices."""
        return np.array(self.model.suggest(n), dtype=np.int64)

    def _download(self, kind: str) -> io.BytesIO | None:
        d = self.model.download(kind)
        if d is None:
            return None
        self.model.say(f"Downloading {d.filename} ({len(d.data) / 1e3:.0f} kB).", "ok")
        return io.BytesIO(d.data)

    def _on_class_select(self, event: Any) -> None:
        if not self._syncing and event.new is not None:
            self.model.select_class(event.new)

    def _on_window(self, event: SelectionGeometry) -> None:
        geo = event.geometry or {}
        if event.final and geo.get("type") == "rect":
            self.model.set_window(float(geo["x0"]), float(geo["x1"]))

    def close(self) -> None:
        """Stop following the model (the session and its labels are left as they are)."""
        self.model.watch(self._on_topics, remove=True)
        if self._owns_model:
            self.model.close()

    # ------------------------------------------------------------------ redraw from the model
    def refresh(self) -> None:
        """Redraw everything from the model."""
        self._on_topics(frozenset({"grid", "overlay", "classes", "results", "settings", "spectrum",
                                   "status", "message", "layers", "image", "autosave", "hover"}))

    def _on_topics(self, topics: frozenset) -> None:
        if self._doc is None:
            self._redraw(topics)
            return
        first = not self._pending
        self._pending |= topics
        if first:
            self._doc.add_next_tick_callback(self._flush)

    def _flush(self) -> None:
        topics, self._pending = frozenset(self._pending), set()
        skip, self._skip_sources = self._skip_sources, set()
        try:
            self._redraw(topics, skip)
        except Exception as err:  # noqa: BLE001 - a redraw must not kill the session
            _log.debug("redraw failed", exc_info=True)
            self.model.say(f"Could not redraw the view: {err}", "error")

    def _redraw(self, topics: frozenset, skip: set | frozenset = frozenset()) -> None:
        self._skip = skip
        with self._sync():
            if topics & {"overlay", "grid", "classes", "layers"}:
                self._update_overlay()
            if topics & {"layers", "overlay", "grid"}:
                self._update_layers()
            if "image" in topics:
                self.image_source.data = {"image": [self.model.display_image(MAX_DISPLAY_SIDE)]}
            if "classes" in topics:
                self._update_classes()
            if topics & {"results", "classes"}:
                self._update_results()
            if topics & {"settings", "results"}:
                self._update_settings()
            if topics & {"spectrum", "settings"}:
                self._update_spectrum()
            if topics & {"status", "classes"}:
                self._update_status()
            if "hover" in topics:
                self.hover_text.object = self.model.hover_text()
            if "focus" in topics:
                self.show_focus()
            if "message" in topics:
                msg = self.model.message
                self.message.param.update(object=html_escape(msg.text) or "&nbsp;",
                                          alert_type=_KIND.get(msg.kind, "light"))
            if "progress" in topics:
                what, frac = self.model.progress
                self.progress.value = int(100 * frac)
                self.progress_text.object = f"{what} {100 * frac:.0f} %" if frac < 1 else ""
            if topics & {"autosave", "status"}:
                warning = self.model.autosave_warning
                self.autosave_text.object = (
                    f"<div class='sfw-autosave-warning' style='color:#8a5300;font-weight:bold'>⚠ "
                    f"{html_escape(warning)}</div>" if warning else
                    f"<small>{html_escape(self.model.autosave_text)}</small>")

    def show_focus(self) -> None:
        """Centre and zoom the figure on the suggestion being visited (nothing without one)."""
        box = self.model.focus_box()
        if box is None:
            return
        x0, x1, y0, y1 = focus_window(box, self.session.dataset.shape)
        self.figure.x_range.update(start=x0, end=x1)
        self.figure.y_range.update(start=y1, end=y0)  # rows run down the screen

    def _update_overlay(self) -> None:
        self.last_update = _update_source(self.chip_source, overlay_columns(
            self.session.grid, self.model.overlay(), self.model.layers))

    def _update_layers(self) -> None:
        lay = self.model.layers
        pixels = lay.pixels and self.session.result is not None
        self.fill_renderer.visible = lay.segmentation and not pixels
        self.pixel_renderer.visible = lay.segmentation and pixels
        if pixels:
            rgba = self.model.segmentation_rgba(MAX_DISPLAY_SIDE)
            self.pixel_source.data = {"image": [rgba.view(np.uint32)[..., 0]]}
            self.pixel_renderer.glyph.global_alpha = lay.segmentation_opacity
        for r in self.hatch_renderers:
            r.visible = lay.uncertainty
            r.glyph.hatch_alpha = lay.uncertainty_opacity
        self.support_renderer.visible = lay.supports
        for r in self.suggest_renderers:
            r.visible = lay.supports
        self.grid_renderer.visible = lay.grid
        for widget, value in ((self.show_fill, lay.segmentation),
                              (self.fill_opacity, lay.segmentation_opacity),
                              (self.show_uncertain, lay.uncertainty),
                              (self.uncertain_opacity, lay.uncertainty_opacity),
                              (self.show_supports, lay.supports),
                              (self.supports_opacity, lay.supports_opacity),
                              (self.show_grid, lay.grid), (self.pixel_map, lay.pixels)):
            if widget.value != value:
                widget.value = value

    def _update_classes(self) -> None:
        m = self.model
        rows = m.class_rows()
        self.class_select.param.update(options={f"{c} ({n} labelled)": c for c, _col, n in rows},
                                       value=m.active_class)
        self.legend.object = "".join(
            f'<div style="margin:2px 0"><span style="display:inline-block;width:14px;height:14px;'
            f'background:{html_escape(col)};border:1px solid #000;vertical-align:middle"></span> '
            f'{html_escape(c)}</div>' for c, col, _n in rows)
        if m.active_class is not None:
            self.colour_picker.value = self.session.classes[m.active_class]
        for b in (self.rename_button, self.delete_button, self.colour_picker):
            b.disabled = m.active_class is None

    def _update_results(self) -> None:
        m = self.model
        names, values, colours = m.fraction_bars()
        if names:
            parts = " · ".join(f"{html_escape(c)}: <b>{100 * f:.1f} %</b>" for c, f in m.fractions().items())
            r = self.session.result
            text = (f"<p>Area: {parts}<br>Uncertain chips: <b>{100 * r.uncertain_fraction:.1f} %</b> "
                    f"(entropy &gt; {r.threshold:.2f})</p>")
        else:
            text = "<p>No segmentation yet: label at least one chip in each of two classes.</p>"
        self.fraction_figure.x_range.factors = names or [" "]
        self.fraction_source.data = {"cls": names, "fraction": [float(v) for v in values],
                                     "colour": colours, "text": [f"{100 * v:.1f} %" for v in values]}
        self.fractions_text.object = text
        centres, counts = m.entropy_histogram()
        self.entropy_source.data = {"x": centres, "count": counts}
        self.threshold_span.location = float(self.session.settings.threshold)
        meas = m.measurements()
        self.measurements.object = measurement_table_html(meas)
        self._update_sizes(meas)

    def _update_sizes(self, meas: Any) -> None:
        from stem_fsl_widgets.measure import size_histogram

        if meas is None or not any(c.n_particles for c in meas.classes):
            self.size_source.data = {"x": [], "count": [], "colour": [], "width": []}
            return
        edges, counts = size_histogram(meas, bins=15)
        width = float(edges[1] - edges[0]) / max(1, len(counts))
        xs, ys, cs = [], [], []
        for k, (name, c) in enumerate(counts.items()):
            xs += list(edges[:-1] + width * (k + 0.5))
            ys += [int(v) for v in c]
            cs += [self.session.classes.get(name, "#999999")] * len(c)
        self.size_source.data = {"x": xs, "count": ys, "colour": cs, "width": [width * 0.9] * len(xs)}
        self.size_figure.xaxis.axis_label = f"equivalent diameter ({meas.length_unit})"

    def _set(self, widget: Any, **values: Any) -> None:
        """Show the model's value in a widget, unless the user is changing that very widget."""
        if widget is self._source_widget or widget in getattr(self, "_skip", ()):
            return
        if isinstance(widget, pn.widgets.FloatSlider) and "value" in values:
            with param.edit_constant(widget):
                widget.param.update(value_throttled=values["value"], **values)
        else:
            widget.param.update(**values)

    def _update_settings(self) -> None:
        m = self.model
        st = self.session.settings
        self._set(self.threshold, value=float(st.threshold))
        if m.has_eds:
            value, auto, note = m.eds_weight_control()
            self._set(self.eds_auto, value=auto)
            self._set(self.eds_weight, value=round(value, 2), disabled=auto)
            self.eds_weight.name = f"EDS weight ({note})"
        self._set(self.fusion, value=st.fusion)
        self._set(self.metric, value=st.metric)
        self._set(self.chip_size, options=m.chip_size_choices(), value=int(st.chip_size))
        self._set(self.stride, value=int(st.stride or 0))
        self._set(self.encoder, options=m.encoder_choices(), value=st.encoder)
        self._set(self.elements, value=list(st.elements))

    def _update_spectrum(self) -> None:
        p = self.model.spectrum_panel()
        if p is None:
            return
        for kind, f in self.spectrum_figures.items():
            f.visible = (kind == "log") == p.log_y
        f = self.spectrum_figures["log" if p.log_y else "linear"]
        lo, hi = p.y_range
        f.y_range.start, f.y_range.end = float(lo), float(hi)  # finite: never a NaN axis
        f.x_range.start, f.x_range.end = float(p.energy[0]), float(p.energy[-1])
        self.class_spectra_source.data = {
            "xs": [p.energy] * len(p.class_names), "ys": list(p.class_means),
            "colour": list(p.class_colours), "name": [f"{n} (mean)" for n in p.class_names]}
        if p.chip_counts is not None:
            self.spectrum_source.data = {"energy": p.energy, "counts": p.chip_counts}
            f.title.text = f"Black: {p.chip_label}"
        else:
            self.spectrum_source.data = {"energy": [], "counts": []}
        xs = [e for _n, e in p.markers]
        if p.log_y:  # fractions of the plot height on a log axis
            heights = [lo * (hi / lo) ** h for h in p.marker_heights]
        else:
            heights = [lo + (hi - lo) * h for h in p.marker_heights]
        self.line_source.data = {"x": xs, "y0": [lo] * len(xs),
                                 "y1": [h * (0.97 if p.log_y else 1.0) - (0 if p.log_y else 0.03 * (hi - lo))
                                        for h in heights],
                                 "ylabel": heights, "name": [n for n, _e in p.markers]}
        w0, w1 = p.window
        self.window_box.left, self.window_box.right = w0, w1
        self.window_text.object = f"EDS window used to classify: {w0:.2f}–{w1:.2f} keV"
        if self.log_y.value != p.log_y:
            self.log_y.value = p.log_y

    def _update_status(self) -> None:
        m = self.model
        self.title.object = f"<h3 style='margin:0'>{html_escape(TITLE)}: {html_escape(m.title)}</h3>"
        self.status.object = html_escape(m.status())
        self.undo_button.disabled = not self.session.can_undo
        self.redo_button.disabled = not self.session.can_redo


# ---------------------------------------------------------------------------------------


class PanelDashboard(pn.viewable.Viewer):
    """Choose the data (demo or uploads) and segment it: the Panel twin of the Voilà dashboard.

    Parameters
    ----------
    model : DashboardModel, optional
    dataset : Dataset, optional
        Data to open at once.

    Attributes
    ----------
    model : DashboardModel
    app : PanelApp or None
    demo_button, image_input, eds_input, clear_button, files, pixel_size, pixel_unit,
    pixel_button, start_over, message
    batch : PanelBatch
        Applies the open image's labels to other uploaded images (shown with an open image).
    """

    def __init__(self, model: DashboardModel | None = None, *, dataset: Dataset | None = None,
                 **params: Any) -> None:
        super().__init__(**params)
        self.model = model or DashboardModel()
        self.app: PanelApp | None = None
        self.demo_button = pn.widgets.Button(name="Use demo data", button_type="primary", width=140)
        self.image_input = pn.widgets.FileInput(accept=",".join(IMAGE_TYPES), name="Image file",
                                                width=220, css_classes=["sfw-image-input"])
        self.eds_input = pn.widgets.FileInput(accept=",".join(EDS_TYPES), name="EDS file (optional)",
                                              width=220, css_classes=["sfw-eds-input"])
        self.clear_button = pn.widgets.Button(name="Clear files", width=100)
        self.files = pn.pane.HTML("", css_classes=["sfw-files"], height=24, margin=(0, 10))
        self.pixel_size = pn.widgets.FloatInput(name="Pixel size", value=0.1, start=1e-6, width=110)
        self.pixel_unit = pn.widgets.Select(name="Unit", options=["pm", "Å", "nm", "µm"], value="nm",
                                            width=80)
        self.pixel_button = pn.widgets.Button(name="Set pixel size", width=120)
        self.calibration = pn.Row(self.pixel_size, self.pixel_unit, self.pixel_button, visible=False)
        self.start_over = pn.widgets.Button(name="Start over", width=110, visible=False)
        self.message = pn.pane.Alert("", alert_type="light", css_classes=["sfw-dash-message"],
                                     height=_MESSAGE_HEIGHT, margin=(0, 10))
        self.body = pn.Column()
        self.batch = PanelBatch(self.model.batch, lambda: self.model.app)
        self.batch_area = pn.Column(self.batch, visible=False)  # shown with an open image
        self.demo_button.on_click(lambda e: self.model.open_demo())
        self.image_input.param.watch(self._on_image, "value")
        self.eds_input.param.watch(self._on_eds, "value")
        self.clear_button.on_click(lambda e: self.model.clear_uploads())
        self.pixel_button.on_click(lambda e: self.model.set_pixel_size(self.pixel_size.value,
                                                                       self.pixel_unit.value))
        self.start_over.on_click(lambda e: self.model.start_over())
        self.model.watch(self._on_topics)
        self._layout = pn.Column(
            pn.pane.HTML(f"<h2 style='margin:4px 0'>{html_escape(TITLE)}</h2>"),
            pn.Row(self.demo_button, self.image_input, self.eds_input, self.clear_button),
            self.files, self.calibration, pn.Row(self.message, self.start_over), self.body,
            self.batch_area)
        self._on_topics(frozenset({"message", "uploads"}))
        if dataset is not None:
            self.model.open_dataset(dataset)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _on_image(self, event: Any) -> None:
        if event.new:
            self.model.upload_image(self.image_input.filename or "image", event.new)

    def _on_eds(self, event: Any) -> None:
        if event.new:
            self.model.upload_eds(self.eds_input.filename or "eds", event.new)

    def _on_topics(self, topics: frozenset) -> None:
        m = self.model
        if "message" in topics:
            self.message.param.update(object=html_escape(m.message.text) or "&nbsp;",
                                      alert_type=_KIND.get(m.message.kind, "light"))
        if "uploads" in topics:
            names = [f"image: <b>{html_escape(m.image.label)}</b>"] if m.image else []
            names += [f"EDS: <b>{html_escape(m.eds.label)}</b>"] if m.eds else []
            self.files.object = " · ".join(names) or "&nbsp;"
            self.clear_button.disabled = not names
        if "app" in topics:
            old, self.app = self.app, None
            if m.app is not None:
                self.app = PanelApp(m.app)
                self.body.objects = [self.app]
                if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
                    browser = self.app.keys
                    browser.param.watch(lambda e: self.model.set_user(e.new), "browser_id")
            else:
                self.body.objects = []
            self.start_over.visible = self.batch_area.visible = self.app is not None
            if old is not None:
                old.close()
        if topics & {"calibration", "app"}:
            self.calibration.visible = m.needs_pixel_size

    def close(self) -> None:
        """Stop following the models."""
        self.model.watch(self._on_topics, remove=True)
        self.batch.close()
        if self.app is not None:
            self.app.close()


def _load(args: list[str]) -> Dataset:
    """``IMAGE_FILE [EDS_FILE]`` → a Dataset (see :func:`stem_fsl_widgets.load`)."""
    import stem_fsl_widgets as sfw

    return sfw.load(args[0], eds_path=args[1] if len(args) > 1 else None)


def create_app(dataset: Dataset | None = None, session: Session | None = None, *,
               uploads: bool = True, **session_kwargs: Any) -> PanelApp | PanelDashboard:
    """Build the app on ``session``, or on ``dataset`` (default: the demo).

    Parameters
    ----------
    dataset : Dataset, optional
        Data to segment; :func:`stem_fsl_widgets.datasets.demo` when neither it nor
        ``session`` is given.
    session : Session, optional
        An existing session to show (its labels and settings are kept): returns a
        :class:`PanelApp` on it.
    uploads : bool
        With a dataset: the full :class:`PanelDashboard` (uploads, per-user autosave) opened
        on it; False gives a bare :class:`PanelApp` on a new session of it.
    **session_kwargs
        Passed to :class:`Session` (chip_size, encoder, eds_weight, ...) for a bare app.
    """
    if session is None and (session_kwargs or not uploads):
        if dataset is None:
            from stem_fsl_widgets.datasets import demo

            dataset = demo()
        session = Session(dataset, **session_kwargs)
        session.encode()  # before the page shows: a first click should answer at once
    if session is not None:
        view: Any = PanelApp(session)
    else:
        if dataset is None:
            from stem_fsl_widgets.datasets import demo

            dataset = demo()
        view = PanelDashboard(dataset=dataset)
        if view.model.app is not None:
            view.model.app.session.encode()
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        # A closed browser tab stops listening, so a shared session does not keep dead views.
        pn.state.on_session_destroyed(lambda context: view.close())
    return view


def serve(dataset: Dataset | None = None, *, port: int = 5006, address: str = "127.0.0.1",
          show: bool = False, threaded: bool = False, **session_kwargs: Any) -> Any:
    """Serve the app; every browser tab gets its own session of ``dataset``.

    Parameters
    ----------
    dataset : Dataset, optional
        Data to segment (default: the demo, generated once).
    port : int
        TCP port.
    address : str
        Interface to listen on; the default keeps the app on this computer.
    show : bool
        Open a browser tab.
    threaded : bool
        Run the server in a thread and return it (``.stop()`` ends it); otherwise block.
    **session_kwargs
        Passed to :class:`Session` (then each tab gets a bare app without uploads).

    Returns
    -------
    The Bokeh server, or the server thread when ``threaded``.
    """
    if dataset is None:
        from stem_fsl_widgets.datasets import demo

        dataset = demo()
    return pn.serve(lambda: create_app(dataset, **session_kwargs), port=port, address=address,
                    show=show, threaded=threaded, title=TITLE,
                    websocket_origin=[f"{address}:{port}", f"localhost:{port}"])


if __name__.startswith("bokeh"):  # `panel serve .../panel_app.py [--args IMAGE [EDS]]`
    _args = [a for a in sys.argv[1:] if a]
    try:
        _app = create_app(_load(_args) if _args else None)
    except Exception as _err:  # noqa: BLE001 - a page that says why, never a traceback
        from stem_fsl_widgets.viewmodel.text import error_message

        pn.pane.Alert(html_escape(f"Could not open {_args[0] if _args else 'the demo'}: "
                                  f"{error_message(_err)}"),
                      alert_type="danger").servable(title=TITLE)
    else:
        _app.servable(title=TITLE)
