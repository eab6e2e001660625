"""The Panel app: Panel widgets and Bokeh figures over one :class:`~stem_fsl_widgets.Session`.

Why native Bokeh and not the ipywidgets views inside Panel: Panel hosts ipywidgets through
ipywidgets_bokeh, which fetches third-party widget code (ipycanvas, bqplot) from a public CDN
at run time, so offline they do not render. Panel's own widgets and Bokeh figures are served
by the Panel server itself, so this app works on an instrument PC with no network.

The session is the single source of truth: a click calls ``session.toggle``, a slider calls
``session.configure``; every view is redrawn from the session in :meth:`PanelApp.refresh`,
which the session calls after each change. Nothing here classifies anything.

Run it with::

    panel serve stem_fsl_widgets/apps/panel_app.py --address 127.0.0.1 --port 5006

(``--args IMAGE_FILE [EDS_FILE]`` opens data files instead of the demo), or from Python::

    from stem_fsl_widgets.apps import serve
    serve(dataset, port=5006)
"""

from __future__ import annotations

import logging
import math
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.events import Tap
from bokeh.models import (
    ColumnDataSource,
    FactorRange,
    HoverTool,
    Label,
    LinearColorMapper,
    Range1d,
)
from bokeh.palettes import Greys256
from bokeh.plotting import figure

# Absolute imports: ``panel serve`` runs this file as a script, not as a package module.
from stem_fsl_widgets.classify import Result
from stem_fsl_widgets.dataset import Dataset
from stem_fsl_widgets.eds import class_mean_spectra
from stem_fsl_widgets.errors import InputError, NotEnoughSupportsError, SFWError
from stem_fsl_widgets.export import write_chip_csv, write_maps
from stem_fsl_widgets.scalebar import scale_bar
from stem_fsl_widgets.session import USER_ERRORS, Session

__all__ = [
    "PanelApp",
    "chip_columns",
    "class_mean_spectra",
    "create_app",
    "display_image",
    "serve",
]

_log = logging.getLogger(__name__)

TITLE = "STEM few-shot segmentation"
#: Opacity of a chip's predicted-class fill and of a support's fill over the image.
ALPHA_PREDICTED = 0.35
ALPHA_SUPPORT = 0.6
#: Hatch of uncertain chips: black lines one way, white lines the other (:data:`CROSS_HATCH`).
UNCERTAIN_HATCH = "right_diagonal_line"
CROSS_HATCH = "left_diagonal_line"
NO_HATCH = "blank"
MAX_FRAME = 600  # longest side of the image frame, screen px
MAX_DISPLAY_SIDE = 2048  # longer images are decimated for display only
CHIP_SIZES = (8, 12, 16, 24, 32, 48, 64, 96, 128)
_GEOMETRY = ("chip", "left", "right", "top", "bottom")


# ---------------------------------------------------------------------------------------
# View-model: pure functions from a session to what the figures draw (tested directly).


def display_image(image: np.ndarray, max_side: int = MAX_DISPLAY_SIDE) -> tuple[np.ndarray, float, float]:
    """Return the image to draw, decimated to at most ``max_side``, and its grey-scale limits.

    Parameters
    ----------
    image : ndarray, shape (H, W)
    max_side : int
        Longest side sent to the browser, px.

    Returns
    -------
    shown : ndarray, float32, shape (ceil(H / s), ceil(W / s))
        Every ``s``-th pixel, ``s = ceil(max(H, W) / max_side)``; drawn over the full extent.
    low, high : float
        1st and 99th percentiles: the grey scale's black and white.
    """
    step = max(1, math.ceil(max(image.shape) / max_side))
    shown = np.ascontiguousarray(image[::step, ::step], dtype=np.float32)
    low, high = (float(v) for v in np.percentile(shown, [1, 99]))
    if high <= low:
        high = low + 1.0
    return shown, low, high


def chip_columns(session: Session) -> dict[str, Any]:
    """Columns of the chip overlay: one quad per chip, coloured by the session's result.

    Parameters
    ----------
    session : Session

    Returns
    -------
    dict
        ``chip`` (N,), the box as ``left, right`` (x, px) and ``top, bottom`` (y, px, image
        rows), ``fill_color`` (class colour of the predicted label, or of the support before a
        result exists), ``fill_alpha`` (:data:`ALPHA_SUPPORT` for supports,
        :data:`ALPHA_PREDICTED` for predictions, 0 without either), ``hatch_pattern``
        (:data:`UNCERTAIN_HATCH` on uncertain chips), and for the hover ``cls``, ``p``
        (probability of the label) and ``entropy`` (normalised).
    """
    grid = session.grid
    boxes = grid.boxes
    n = grid.n_chips
    res = session.result
    colour = np.full(n, "#000000", dtype=object)
    alpha = np.zeros(n)
    hatch = np.full(n, NO_HATCH, dtype=object)
    cls = np.full(n, "", dtype=object)
    prob = np.full(n, np.nan)
    entropy = np.full(n, np.nan)
    if res is not None and res.labels.size == n:
        # Current colours from the session: set_colour does not reclassify.
        pairs = zip(res.classes, res.colours, strict=True)
        colours = np.array([session.classes.get(c, col) for c, col in pairs], dtype=object)
        colour = colours[res.labels]
        cls = np.array(res.classes, dtype=object)[res.labels]
        alpha = np.where(res.is_support, ALPHA_SUPPORT, ALPHA_PREDICTED)
        hatch = np.where(res.uncertain, UNCERTAIN_HATCH, NO_HATCH).astype(object)
        prob, entropy = res.confidence.astype(float), res.entropy.astype(float)
    else:
        for i, c in session.supports.items():  # before two classes exist: show the clicks
            colour[i], alpha[i], cls[i] = session.classes[c], ALPHA_SUPPORT, c
    return {
        "chip": np.arange(n), "left": boxes[:, 1], "right": boxes[:, 3],
        "top": boxes[:, 0], "bottom": boxes[:, 2],
        "fill_color": colour.tolist(), "fill_alpha": alpha.astype(float),
        "hatch_pattern": hatch.tolist(), "cls": cls.tolist(), "p": prob, "entropy": entropy,
    }


def _boxes_columns(grid: Any, chips: np.ndarray, **extra: list) -> dict[str, Any]:
    b = grid.boxes[np.asarray(chips, dtype=np.int64)] if len(chips) else np.zeros((0, 4), int)
    return {"left": b[:, 1], "right": b[:, 3], "top": b[:, 0], "bottom": b[:, 2], **extra}


def slug(name: str) -> str:
    """A file-name-safe version of ``name`` (``"demo: Ni / Co"`` → ``"demo_Ni_Co"``)."""
    return re.sub(r"[^\w.-]+", "_", name).strip("_.") or "image"


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _update_source(source: ColumnDataSource, new: dict[str, Any]) -> None:
    """Send only what changed (``patch``); replace the data when the grid changed.

    Columns where few chips changed (colours, hatches: the clicked chip and its neighbours)
    are patched cell by cell; columns where most changed (probability and entropy move a
    little everywhere on each click) are sent whole as one slice patch.
    """
    old = source.data
    n = len(new["chip"])
    same_shape = set(old) == set(new) and len(old.get("chip", ())) == n
    if not same_shape or any(not np.array_equal(old[k], new[k]) for k in _GEOMETRY):
        source.data = new
        return
    patches: dict[str, list] = {}
    for key, values in new.items():
        a, b = np.asarray(old[key]), np.asarray(values)
        if a.dtype.kind == "f" and b.dtype.kind == "f":
            changed = np.flatnonzero((a != b) & ~(np.isnan(a) & np.isnan(b)))
        else:
            changed = np.flatnonzero(a != b)
        if changed.size > n // 4:
            patches[key] = [(slice(0, n), values)]
        elif changed.size:
            patches[key] = [(int(i), _py(values[i])) for i in changed]
    if patches:
        source.patch(patches)


# ---------------------------------------------------------------------------------------


class PanelApp(pn.viewable.Viewer):
    """Few-shot segmentation of one session in Panel: image, classes, results, spectra.

    Parameters
    ----------
    session : Session
        The state this app shows and edits (shared with any other view of it).

    Attributes
    ----------
    figure : bokeh Figure
        The image with the chip overlay; taps call :meth:`click`.
    chip_source, support_source, uncertain_source, suggest_source : ColumnDataSource
        What the image overlay draws (see :func:`chip_columns`).
    fraction_source : ColumnDataSource
        Bars of the area fractions (``cls``, ``fraction``, ``colour``, ``text``).
    spectrum_source, class_spectra_source, line_source : ColumnDataSource
        The clicked chip's spectrum, the class means, and element line markers.
    class_select, class_name, add_button, rename_button, delete_button, colour_picker
        The class panel.
    threshold, eds_weight, eds_auto, fusion, chip_size, elements
        Settings widgets; each calls ``session.configure``.
    undo_button, redo_button, suggest_button
    export_prefix, maps_button, csv_button, save_button
        Exports, written next to ``export_prefix``.
    message : pn.pane.Alert
        Errors (and export confirmations) as readable text; hidden when empty.
    status, fractions_text : pn.pane.Markdown

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

    active_class = param.String(default=None, allow_None=True, doc="Class a click labels.")
    selected_chip = param.Integer(default=None, allow_None=True, doc="Chip shown in the spectrum view.")

    def __init__(self, session: Session, **params: Any) -> None:
        super().__init__(**params)
        self.session = session
        self._syncing = False
        if not session.classes:
            # A fresh session starts with two classes so the first clicks already segment.
            session.add_class("class 1")
            session.add_class("class 2")
        self.active_class = next(iter(session.classes))
        self._build_image()
        self._build_classes()
        self._build_results()
        self._build_settings()
        self._build_spectrum()
        self._build_export()
        self._build_status()
        self._layout = self._build_layout()
        self._previous_progress = session.progress
        session.progress = self._on_progress
        session.on_change(self.refresh)
        self.param.watch(lambda e: self._update_spectrum(), "selected_chip")
        self.refresh()

    # ------------------------------------------------------------------ building
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

    def _build_image(self) -> None:
        ds = self.session.dataset
        h, w = ds.shape
        scale = MAX_FRAME / max(h, w)
        self.figure = figure(
            x_range=Range1d(0, w, bounds=(0, w)), y_range=Range1d(h, 0, bounds=(0, h)),
            frame_width=max(1, round(w * scale)), frame_height=max(1, round(h * scale)),
            tools="pan,wheel_zoom,reset", active_scroll="wheel_zoom", toolbar_location="above",
            min_border=0, outline_line_color=None, css_classes=["sfw-image"],
        )
        self.figure.axis.visible = False
        self.figure.grid.visible = False
        shown, low, high = display_image(ds.image)
        mapper = LinearColorMapper(palette=Greys256, low=low, high=high)
        # Rows run down the screen: the y range is reversed, so row 0 (y = 0) is at the top.
        self.figure.image(image=[shown], x=0, y=0, dw=w, dh=h, color_mapper=mapper)
        self.chip_source = ColumnDataSource(chip_columns(self.session))
        chips = self.figure.quad(
            left="left", right="right", top="top", bottom="bottom", source=self.chip_source,
            fill_color="fill_color", fill_alpha="fill_alpha", line_color="white",
            line_alpha=0.25, line_width=0.5, hatch_pattern="hatch_pattern",
            hatch_color="black", hatch_alpha=0.5, hatch_weight=1.0, hatch_scale=12,
        )
        quad_lines = dict(left="left", right="right", top="top", bottom="bottom", fill_color=None)
        # White hatch crossing the black one: uncertainty shows on every colour, dark or bright.
        self.uncertain_source = ColumnDataSource(_boxes_columns(self.session.grid, []))
        self.figure.quad(source=self.uncertain_source, line_color=None, hatch_pattern=CROSS_HATCH,
                         hatch_color="white", hatch_alpha=0.5, hatch_weight=1.0, hatch_scale=12,
                         **quad_lines)
        self.support_source = ColumnDataSource(_boxes_columns(self.session.grid, [], colour=[]))
        self.figure.quad(source=self.support_source, line_color="black", line_width=5, **quad_lines)
        self.figure.quad(source=self.support_source, line_color="colour", line_width=3, **quad_lines)
        self.suggest_source = ColumnDataSource({"x": [], "y": []})
        for colour, width in (("black", 5), ("white", 2)):
            self.figure.scatter("x", "y", source=self.suggest_source, marker="circle", size=20,
                                fill_color=None, line_color=colour, line_width=width)
        self.figure.add_tools(HoverTool(renderers=[chips], tooltips=[
            ("chip", "@chip"), ("class", "@cls"), ("p", "@p{0.00}"), ("entropy", "@entropy{0.00}")]))
        self.figure.on_event(Tap, self._on_tap)
        self._add_scale_bar(w, h)  # last: drawn above the chip overlays

    def _build_classes(self) -> None:
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
        self.colour_picker.param.watch(self._on_colour, "value")

    def _build_results(self) -> None:
        self.fraction_source = ColumnDataSource({"cls": [], "fraction": [], "colour": [], "text": []})
        self.fraction_figure = figure(
            x_range=FactorRange(factors=[" "]), y_range=Range1d(0, 1.15), height=200, width=340,
            tools="", toolbar_location=None, title="Area fractions", css_classes=["sfw-fractions"],
        )
        self.fraction_figure.vbar(x="cls", top="fraction", width=0.8, source=self.fraction_source,
                                  fill_color="colour", line_color="black")
        self.fraction_figure.text(x="cls", y="fraction", text="text", source=self.fraction_source,
                                  text_align="center", text_baseline="bottom", text_font_size="9pt")
        self.fraction_figure.xgrid.visible = False
        self.fraction_figure.xaxis.major_label_orientation = 0.4
        self.fractions_text = pn.pane.Markdown("", css_classes=["sfw-fractions-text"], margin=(0, 10))
        self.suggest_button = pn.widgets.Button(name="Suggest next chips", width=160)
        self.suggest_button.on_click(lambda e: self.suggest())

    def _build_settings(self) -> None:
        st = self.session.settings
        has_eds = self.session.dataset.has_eds
        self.threshold = pn.widgets.FloatSlider(name="Uncertainty threshold (normalised entropy)",
                                                start=0.0, end=1.0, step=0.01, value=float(st.threshold))
        self.eds_weight = pn.widgets.FloatSlider(name="EDS weight (0 = image only, 1 = EDS only)",
                                                 start=0.0, end=1.0, step=0.01, value=0.5,
                                                 disabled=not has_eds)
        self.eds_auto = pn.widgets.Checkbox(name="auto weight (from the labelled chips)",
                                            value=st.eds_weight == "auto", disabled=not has_eds)
        self.fusion = pn.widgets.Select(name="Fusion", options=["early", "late"], value=st.fusion,
                                        disabled=not has_eds, width=120)
        h, w = self.session.dataset.shape
        sizes = sorted({s for s in CHIP_SIZES if s <= min(h, w)} | {int(st.chip_size)})
        self.chip_size = pn.widgets.Select(name="Chip size (px)", options=sizes,
                                           value=int(st.chip_size), width=120)
        self.elements = pn.widgets.MultiChoice(name="Elements (EDS lines)", options=[],
                                               value=list(st.elements), visible=has_eds)
        if has_eds:
            from stem_fsl_widgets.elements import known_elements

            self.elements.options = known_elements()
        self.threshold.param.watch(lambda e: self._configure(threshold=float(e.new)), "value_throttled")
        self.eds_weight.param.watch(self._on_eds_weight, "value_throttled")
        self.eds_auto.param.watch(self._on_eds_weight, "value")
        self.fusion.param.watch(lambda e: self._configure(fusion=e.new), "value")
        self.chip_size.param.watch(lambda e: self._configure(chip_size=int(e.new)), "value")
        self.elements.param.watch(lambda e: self._configure(elements=list(e.new)), "value")

    def _build_spectrum(self) -> None:
        self.spectrum_source = ColumnDataSource({"energy": [], "counts": []})
        self.class_spectra_source = ColumnDataSource({"xs": [], "ys": [], "colour": [], "name": []})
        self.line_source = ColumnDataSource({"x": [], "y0": [], "y1": [], "name": []})
        self.spectrum_figure = figure(
            height=240, width=380, title="Click a chip to see its spectrum",
            x_axis_label="Energy (keV)", y_axis_label="Counts per chip",
            tools="pan,wheel_zoom,box_zoom,reset", toolbar_location="right",
            css_classes=["sfw-spectrum"],
        )
        f = self.spectrum_figure
        f.multi_line("xs", "ys", source=self.class_spectra_source, line_color="colour", line_width=2)
        f.line("energy", "counts", source=self.spectrum_source, line_color="black", line_width=1.2)
        f.segment(x0="x", y0="y0", x1="x", y1="y1", source=self.line_source, line_color="grey",
                  line_dash="dotted")
        f.text(x="x", y="y1", text="name", source=self.line_source, angle=math.pi / 2,
               text_align="right", text_baseline="bottom", text_font_size="8pt", text_color="grey")

    def _build_export(self) -> None:
        default = Path.cwd() / "sfw_output" / slug(self.session.dataset.name)
        self.export_prefix = pn.widgets.TextInput(name="Output prefix (folder/name)", value=str(default))
        self.maps_button = pn.widgets.Button(name="Maps (PNG + TIFF)", width=150)
        self.csv_button = pn.widgets.Button(name="Chip table (CSV)", width=150)
        self.save_button = pn.widgets.Button(name="Save session", width=150)
        self.maps_button.on_click(lambda e: self.export_maps())
        self.csv_button.on_click(lambda e: self.export_csv())
        self.save_button.on_click(lambda e: self.save_session())

    def _build_status(self) -> None:
        self.status = pn.pane.Markdown("", css_classes=["sfw-status"], margin=(0, 10))
        self.message = pn.pane.Alert("", alert_type="danger", visible=False,
                                     css_classes=["sfw-message"])
        self.undo_button = pn.widgets.Button(name="↶ Undo", width=90)
        self.redo_button = pn.widgets.Button(name="↷ Redo", width=90)
        self.undo_button.on_click(lambda e: self.undo())
        self.redo_button.on_click(lambda e: self.redo())
        self.progress = pn.indicators.Progress(value=0, max=100, width=200, visible=False)
        self.progress_text = pn.pane.Str("", visible=False)

    def _build_layout(self) -> pn.viewable.Viewable:
        classes = pn.Card(
            self.legend, self.class_select,
            pn.Row(self.class_name, self.colour_picker),
            pn.Row(self.add_button, self.rename_button, self.delete_button),
            title="Classes", collapsible=False, width=380,
        )
        results = pn.Card(self.fractions_text, self.fraction_figure, self.suggest_button,
                          title="Segmentation", collapsible=False, width=380)
        settings = pn.Card(self.threshold, self.eds_auto, self.eds_weight,
                           pn.Row(self.fusion, self.chip_size), self.elements,
                           title="Settings", width=380)
        spectrum = pn.Card(pn.pane.Bokeh(self.spectrum_figure), title="Spectrum", width=400,
                           visible=self.session.dataset.has_eds)
        export = pn.Card(self.export_prefix,
                         pn.Row(self.maps_button, self.csv_button), self.save_button,
                         title="Export", width=380)
        left = pn.Column(
            pn.pane.Markdown(f"### {TITLE}: {self.session.dataset.name}", margin=(0, 10)),
            self.status, self.message,
            pn.Row(self.undo_button, self.redo_button, self.progress, self.progress_text),
            pn.pane.Bokeh(self.figure),
        )
        return pn.Row(left, pn.Column(classes, results, settings),
                      pn.Column(spectrum, export))

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # ------------------------------------------------------------------ actions
    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Run a user action; show what went wrong as a message, never a traceback."""
        self._hide_message()
        try:
            yield
        except (*USER_ERRORS, SFWError) as err:
            self.show_message(str(err))
        except OSError as err:
            self.show_message(f"Could not {action}: {err}")
        except Exception as err:  # noqa: BLE001 - a GUI callback must not die on a bug
            _log.exception("unexpected error while trying to %s", action)
            self.show_message(f"Unexpected error while trying to {action} ({type(err).__name__}: "
                              f"{err}). Your labels are unchanged.")

    def show_message(self, text: str, kind: str = "danger") -> None:
        """Show ``text`` in the message pane (``kind``: "danger", "warning", "success", ...)."""
        self.message.param.update(object=text, alert_type=kind, visible=True)

    def _hide_message(self) -> None:
        self.message.param.update(object="", visible=False)

    def _on_tap(self, event: Tap) -> None:
        self.click(event.x, event.y)

    def click(self, x: float, y: float) -> int | None:
        """Label (or un-label) the chip under image pixel ``(x, y)`` with the active class.

        Parameters
        ----------
        x, y : float
            Image coordinates in px (x along columns, y along rows from the top).

        Returns
        -------
        int or None
            The chip clicked; None outside the image.
        """
        if x is None or y is None:
            return None
        chip = int(self.session.grid.chip_at(y, x))
        if chip < 0:
            return None
        self.selected_chip = chip
        with self._guard("label the chip"):
            if self.active_class is None:
                raise InputError("Add a class first (Classes panel), then click chips to label them.")
            self.session.toggle(chip, self.active_class)
        return chip

    def add_class(self, name: str | None = None) -> None:
        """Add a class named ``name`` (default: the name box) and make it the active one."""
        with self._guard("add the class"):
            name = self.session.add_class(self.class_name.value if name is None else name)
            self.active_class = name
            self.class_name.value = ""
            self.refresh()

    def rename_class(self, new: str | None = None) -> None:
        """Rename the active class to ``new`` (default: the name box)."""
        with self._guard("rename the class"):
            if self.active_class is None:
                raise InputError("There is no class to rename.")
            new = (self.class_name.value if new is None else new).strip()
            old, self.active_class = self.active_class, new
            try:
                self.session.rename_class(old, new)
            except BaseException:
                self.active_class = old
                raise
            self.class_name.value = ""

    def delete_class(self) -> None:
        """Delete the active class and its labelled chips (undo brings them back)."""
        with self._guard("delete the class"):
            if self.active_class is None:
                raise InputError("There is no class to delete.")
            self.session.remove_class(self.active_class)

    def undo(self) -> None:
        """Revert the session's last change."""
        with self._guard("undo"):
            self.session.undo()

    def redo(self) -> None:
        """Re-apply the last undone change."""
        with self._guard("redo"):
            self.session.redo()

    def suggest(self, n: int = 5) -> np.ndarray:
        """Mark the ``n`` most uncertain unlabelled chips on the image; return their indices."""
        chips = np.array([], dtype=np.int64)
        with self._guard("suggest chips"):
            self._require_result("suggest chips")
            chips = self.session.suggest(n)
            b = self.session.grid.boxes[chips]
            self.suggest_source.data = {"x": (b[:, 1] + b[:, 3]) / 2.0, "y": (b[:, 0] + b[:, 2]) / 2.0}
            self.show_message(f"Label these chips next (most uncertain): {', '.join(map(str, chips))}.",
                              "info")
        return chips

    def _require_result(self, action: str) -> Result:
        if self.session.result is None:
            raise NotEnoughSupportsError(
                f"Label at least one chip in each of two classes before you {action}.")
        return self.session.result

    def _prefix(self) -> Path:
        text = self.export_prefix.value.strip()
        if not text:
            raise InputError("Give an output prefix (a folder and a file name start) to export to.")
        return Path(text).expanduser()

    def export_maps(self) -> list[Path]:
        """Write the label and entropy maps (PNG, TIFF) to the output prefix."""
        paths: list[Path] = []
        with self._guard("write the maps"):
            res = self._require_result("export maps")
            paths = write_maps(res, self.session.dataset, self._prefix(), formats=("png", "tif"))
            self.show_message(f"Wrote {', '.join(p.name for p in paths)} in {paths[0].parent}.",
                              "success")
        return paths

    def export_csv(self) -> Path | None:
        """Write the per-chip table (class, probabilities, entropy) as CSV."""
        path = None
        with self._guard("write the chip table"):
            res = self._require_result("export the chip table")
            prefix = self._prefix()
            path = write_chip_csv(prefix.with_name(prefix.name + "_chips.csv"), res)
            self.show_message(f"Wrote {path}.", "success")
        return path

    def save_session(self) -> Path | None:
        """Save the session (JSON, plus .npz reference arrays) next to the output prefix."""
        path = None
        with self._guard("save the session"):
            prefix = self._prefix()
            path = self.session.save(prefix.with_name(prefix.name + "_session.json"), arrays=True)
            self.show_message(f"Saved the session to {path}.", "success")
        return path

    # ------------------------------------------------------------------ widget callbacks
    def _configure(self, **changes: Any) -> None:
        if self._syncing:
            return
        with self._guard("change the settings"):
            self.session.configure(**changes)
        if self.message.visible and self.message.alert_type == "danger":
            self.refresh()  # put the widget back to the value in use

    def _on_eds_weight(self, event: param.parameterized.Event) -> None:
        if self._syncing:
            return
        self._configure(eds_weight="auto" if self.eds_auto.value else float(self.eds_weight.value))

    def _on_class_select(self, event: param.parameterized.Event) -> None:
        if not self._syncing and event.new is not None:
            self.active_class = event.new
            self.refresh()

    def _on_colour(self, event: param.parameterized.Event) -> None:
        if self._syncing or self.active_class is None:
            return
        with self._guard("change the colour"):
            self.session.set_colour(self.active_class, event.new)

    def _on_progress(self, what: str, fraction: float) -> None:
        self.progress.param.update(value=int(100 * fraction), visible=fraction < 1)
        self.progress_text.param.update(object=what, visible=fraction < 1)
        if self._previous_progress is not None:
            self._previous_progress(what, fraction)

    def close(self) -> None:
        """Stop listening to the session (the session itself is left as it is)."""
        self.session.on_change(self.refresh, remove=True)
        self.session.progress = self._previous_progress

    # ------------------------------------------------------------------ redraw from the session
    def refresh(self, session: Session | None = None) -> None:
        """Redraw every view from the session (the session calls this after each change)."""
        self._syncing = True
        try:
            if self.active_class not in self.session.classes:
                self.active_class = next(iter(self.session.classes), None)
            self._update_overlay()
            self._update_classes()
            self._update_settings()
            self._update_fractions()
            self._update_spectrum()
            self._update_status()
        finally:
            self._syncing = False

    def _update_overlay(self) -> None:
        s = self.session
        _update_source(self.chip_source, chip_columns(s))
        chips = np.array(sorted(s.supports), dtype=np.int64)
        self.support_source.data = _boxes_columns(
            s.grid, chips, colour=[s.classes[s.supports[int(i)]] for i in chips])
        uncertain = np.flatnonzero(s.result.uncertain) if s.result is not None else []
        self.uncertain_source.data = _boxes_columns(s.grid, uncertain)
        self.suggest_source.data = {"x": [], "y": []}  # suggestions are for the last state only

    def _update_classes(self) -> None:
        counts = self.session.support_counts()
        self.class_select.param.update(
            options={f"{c} ({n} labelled)": c for c, n in counts.items()}, value=self.active_class)
        swatches = "".join(
            f'<div style="margin:2px 0"><span style="display:inline-block;width:14px;height:14px;'
            f'background:{col};border:1px solid #000;vertical-align:middle"></span> {c}</div>'
            for c, col in self.session.classes.items())
        self.legend.object = swatches
        if self.active_class is not None:
            self.colour_picker.value = self.session.classes[self.active_class]
        for b in (self.rename_button, self.delete_button, self.colour_picker):
            b.disabled = self.active_class is None

    def _update_settings(self) -> None:
        st = self.session.settings
        with param.edit_constant(self.threshold):
            self.threshold.param.update(value=float(st.threshold), value_throttled=float(st.threshold))
        if self.session.dataset.has_eds:
            auto = st.eds_weight == "auto"
            weight = self.session.resolved_eds_weight() if not auto or self.session.result is None \
                else self.session.result.eds_weight
            weight = 0.5 if weight is None else float(weight)
            self.eds_auto.value = auto
            with param.edit_constant(self.eds_weight):
                self.eds_weight.param.update(value=round(weight, 2), value_throttled=round(weight, 2),
                                             disabled=auto)
            self.eds_weight.name = ("EDS weight in use (auto)" if auto
                                    else "EDS weight (0 = image only, 1 = EDS only)")
        self.fusion.value = st.fusion
        self.chip_size.value = int(st.chip_size)
        self.elements.value = list(st.elements)

    def _update_fractions(self) -> None:
        res = self.session.result
        names = list(self.session.classes)
        if res is None:
            fr = {c: 0.0 for c in names}
            text = "No segmentation yet: label at least one chip in each of two classes."
        else:
            fr = res.fractions
            parts = " · ".join(f"{c}: **{100 * f:.1f} %**" for c, f in fr.items())
            text = (f"Area: {parts}  \nUncertain chips: **{100 * res.uncertain_fraction:.1f} %** "
                    f"(entropy > {res.threshold:.2f})")
        factors = list(fr) or [" "]
        self.fraction_figure.x_range.factors = factors
        self.fraction_source.data = {
            "cls": list(fr), "fraction": [float(v) for v in fr.values()],
            "colour": [self.session.classes.get(c, "#999999") for c in fr],
            "text": [f"{100 * v:.1f} %" for v in fr.values()],
        }
        self.fractions_text.object = text

    def _update_spectrum(self) -> None:
        s = self.session
        spectra = s.chip_spectra()
        if spectra is None:
            return
        energy = np.asarray(s.dataset.energy_axis, dtype=float)
        top = 0.0
        res = s.result
        if res is not None:
            means = class_mean_spectra(spectra, res.labels, res.n_classes)
            keep = [k for k in range(res.n_classes) if np.isfinite(means[k]).all()]
            self.class_spectra_source.data = {
                "xs": [energy] * len(keep), "ys": [means[k] for k in keep],
                "colour": [s.classes.get(res.classes[k], res.colours[k]) for k in keep],
                "name": [res.classes[k] for k in keep],
            }
            top = max([top, *(float(means[k].max()) for k in keep)])
        else:
            self.class_spectra_source.data = {"xs": [], "ys": [], "colour": [], "name": []}
        chip = self.selected_chip
        if chip is not None and 0 <= chip < s.n_chips:
            counts = spectra[chip].astype(float)
            self.spectrum_source.data = {"energy": energy, "counts": counts}
            top = max(top, float(counts.max()))
            what = s.supports.get(chip)
            label = (f"labelled {what}" if what else
                     f"predicted {res.classes[res.labels[chip]]}" if res is not None else "unlabelled")
            self.spectrum_figure.title.text = f"Chip {chip} ({label}) and class means"
        else:
            self.spectrum_source.data = {"energy": [], "counts": []}
        self._update_lines(energy, top * 1.05 or 1.0)

    def _update_lines(self, energy: np.ndarray, top: float) -> None:
        from stem_fsl_widgets.elements import xray_lines

        xs, names = [], []
        for el in self.session.settings.elements:
            for name, e, _ in xray_lines(el, max_energy=float(energy[-1]), min_weight=0.1):
                if e >= energy[0]:
                    xs.append(e)
                    names.append(name)
        self.line_source.data = {"x": xs, "y0": [0.0] * len(xs), "y1": [top] * len(xs), "name": names}

    def _update_status(self) -> None:
        s = self.session
        active = f" Clicks label **{self.active_class}** (click a labelled chip again to remove it)." \
            if self.active_class else ""
        weight = ""
        if s.result is not None and s.result.eds_weight is not None:
            weight = f" EDS weight in use: {s.result.eds_weight:.2f}."
        self.status.object = f"{s.status()}{weight}{active}"
        self.undo_button.disabled = not s.can_undo
        self.redo_button.disabled = not s.can_redo


# ---------------------------------------------------------------------------------------


def _load(args: list[str]) -> Dataset:
    """``--args IMAGE_FILE [EDS_FILE]`` of ``panel serve`` → a Dataset (see ``sfw.load``)."""
    import stem_fsl_widgets as sfw

    return sfw.load(args[0], eds_path=args[1] if len(args) > 1 else None)


def create_app(dataset: Dataset | None = None, session: Session | None = None,
               **session_kwargs: Any) -> PanelApp:
    """Build the app on ``session``, or on a new session of ``dataset`` (default: the demo).

    Parameters
    ----------
    dataset : Dataset, optional
        Data to segment; :func:`stem_fsl_widgets.datasets.demo` when neither it nor
        ``session`` is given.
    session : Session, optional
        An existing session to show (its labels and settings are kept).
    **session_kwargs
        Passed to :class:`Session` (chip_size, encoder, eds_weight, ...).

    Returns
    -------
    PanelApp
    """
    if session is None:
        if dataset is None:
            from stem_fsl_widgets.datasets import demo

            dataset = demo()
        session = Session(dataset, **session_kwargs)
        session.encode()  # before the page shows: a first click should answer at once
    app = PanelApp(session)
    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        # A closed browser tab stops listening, so a shared session does not keep dead views.
        pn.state.on_session_destroyed(lambda context: app.close())
    return app


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
        Passed to :class:`Session`.

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
    except (SFWError, ImportError, OSError, ValueError) as _err:  # a page that says why
        pn.pane.Alert(f"Could not open {_args[0] if _args else 'the demo'}: {_err}",
                      alert_type="danger").servable(title=TITLE)
    else:
        _app.servable(title=TITLE)
