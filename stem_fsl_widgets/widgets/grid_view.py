"""The image and its chip grid: canvas gestures become model actions, the overlays follow.

A layout over a :class:`~stem_fsl_widgets.widgets.canvas.ChipCanvas` bound to an
:class:`~stem_fsl_widgets.viewmodel.AppModel`: the canvas draws, the model decides; this view
sends the model's overlay arrays to the canvas, only the chips whose drawing changed.
"""

from __future__ import annotations

from contextlib import suppress

import ipywidgets as widgets
import numpy as np

from ..session import Session
from ..viewmodel import AppModel, Overlay, changed_rows
from ..viewmodel.drawing import MAX_DISPLAY_SIDE, focus_window
from .base import ModelView, html_escape
from .canvas import ChipCanvas, Modifiers

__all__ = ["ChipGridView"]

LEFT, RIGHT = 0, 2
_ZOOM_STEP = 1.25


class ChipGridView(ModelView, widgets.VBox):
    """The image with its chip grid; click to label, drag to paint, hover to inspect.

    Gestures (through the canvas, or its ``handle_*`` methods in tests): left click makes
    the chip a support of the active class (a second click removes it); a left drag paints
    every chip it crosses (one undo step); right click or Shift+click removes a support;
    keys 1–9 pick the class, Ctrl+Z / Ctrl+Shift+Z (or Ctrl+Y) undo / redo, Escape clears
    the suggestions. The wheel zooms, the middle button (or "pan" mode) pans.

    Parameters
    ----------
    model : AppModel or Session
    max_view_size : int
        Longest side of the canvas on screen, CSS px.

    Attributes
    ----------
    canvas : ChipCanvas
    contrast : ipywidgets.FloatRangeSlider
        Display percentiles of the image.
    show_grid, show_fill, show_uncertain, show_outline : ipywidgets.Checkbox
        Layer visibility; ``opacity``, ``uncertain_opacity``, ``outline_opacity`` their opacity.
    status : ipywidgets.HTML
        The hover line: chip index, prediction, confidence, entropy.
    last_update : ndarray of int
        Chips redrawn by the latest refresh (for tests and benchmarks).
    """

    SHOWS = frozenset({"grid", "overlay", "hover", "layers", "image", "classes", "focus"})

    def __init__(self, model: AppModel | Session, *, max_view_size: int = 640) -> None:
        m = self._bind(model)
        self.last_update = np.zeros(0, np.int64)
        ds = m.session.dataset
        lay = m.layers
        self.canvas = ChipCanvas(m.display_image(), m.session.grid.boxes,
                                 max_view_size=max_view_size, pixel_size=ds.pixel_size or 0.0,
                                 pixel_unit=ds.pixel_unit if ds.pixel_size else "")
        self.status = widgets.HTML("", layout=widgets.Layout(min_height="1.6em"))
        self.contrast = widgets.FloatRangeSlider(
            value=m.contrast, min=0.0, max=100.0, step=0.1, description="contrast %",
            continuous_update=False, readout_format=".1f", layout=widgets.Layout(width="320px"))
        fit_width = widgets.Layout(width="auto")

        def box(value: bool, text: str) -> widgets.Checkbox:
            return widgets.Checkbox(value, description=text, indent=False, layout=fit_width)

        def slider(value: float, text: str) -> widgets.FloatSlider:
            return widgets.FloatSlider(value=value, min=0.0, max=1.0, step=0.05, description=text,
                                       readout=False, layout=widgets.Layout(width="190px"),
                                       style={"description_width": "70px"})

        self.show_grid = box(lay.grid, "grid")
        self.show_fill = box(lay.segmentation, "segmentation")
        self.opacity = slider(lay.segmentation_opacity, "opacity")
        self.show_uncertain = box(lay.uncertainty, "uncertainty")
        self.uncertain_opacity = slider(lay.uncertainty_opacity, "opacity")
        self.show_outline = box(lay.supports, "labels")
        self.outline_opacity = slider(lay.supports_opacity, "opacity")
        self.show_pixels = box(lay.pixels, "pixel map")
        self.show_pixels.tooltip = ("the segmentation at pixel resolution (computed after each "
                                    "click, shown when ready); off: the chip map")
        self._seg_key: tuple | None = None
        self.mode = widgets.ToggleButtons(options=["paint", "pan"], value="paint",
                                          tooltips=["click/drag labels chips", "drag moves the view"],
                                          style={"button_width": "56px"})
        self.undo_button = widgets.Button(description="undo", icon="undo", tooltip="Ctrl+Z",
                                          layout=widgets.Layout(width="80px"))
        self.redo_button = widgets.Button(description="redo", icon="repeat", tooltip="Ctrl+Shift+Z",
                                          layout=widgets.Layout(width="80px"))
        small = widgets.Layout(width="36px")
        zoom_in = widgets.Button(icon="search-plus", tooltip="zoom in", layout=small)
        zoom_out = widgets.Button(icon="search-minus", tooltip="zoom out", layout=small)
        fit = widgets.Button(description="fit", tooltip="show the whole image (Home)",
                             layout=widgets.Layout(width="48px"))

        self._links = [widgets.link((self.mode, "value"), (self.canvas, "mode"))]
        layer_controls = {self.show_grid: "grid", self.show_fill: "segmentation",
                          self.opacity: "segmentation_opacity", self.show_uncertain: "uncertainty",
                          self.uncertain_opacity: "uncertainty_opacity",
                          self.show_outline: "supports", self.outline_opacity: "supports_opacity",
                          self.show_pixels: "pixels"}
        for control, name in layer_controls.items():
            control.observe(lambda ch, n=name: self.model.set_layers(**{n: ch["new"]}), names="value")
        self.contrast.observe(lambda ch: self.model.set_contrast(*ch["new"]), names="value")
        self.undo_button.on_click(lambda _b: self.model.undo())
        self.redo_button.on_click(lambda _b: self.model.redo())
        zoom_in.on_click(lambda _b: self.zoom_by(_ZOOM_STEP))
        zoom_out.on_click(lambda _b: self.zoom_by(1 / _ZOOM_STEP))
        fit.on_click(lambda _b: self.canvas.fit_view())

        self.canvas.on_click(self._on_click)
        self.canvas.on_drag(self._on_drag)
        self.canvas.on_release(self._on_release)
        self.canvas.on_hover(self._on_hover)
        self.canvas.on_key(self._on_key)

        # Controls wrap under the canvas instead of widening the view beside the side panels.
        width = f"{self.canvas.view_width + 8}px"
        toolbar = widgets.HBox([self.mode, self.undo_button, self.redo_button, zoom_out, zoom_in, fit],
                               layout=widgets.Layout(flex_flow="row wrap", max_width=width))
        row = widgets.Layout(flex_flow="row wrap", align_items="center", max_width=width,
                             grid_gap="2px 10px")
        layers = widgets.HBox([self.show_fill, self.opacity, self.show_uncertain, self.uncertain_opacity,
                               self.show_outline, self.outline_opacity, self.show_grid, self.show_pixels,
                               self.contrast],
                              layout=row)
        self.status.layout.max_width = width
        super().__init__([toolbar, self.canvas, self.status, layers])
        self.refresh(frozenset({"layers", "overlay", "hover"}))

    def close(self) -> None:
        """Stop following the model and close the widget and its canvas."""
        links, self._links = getattr(self, "_links", []), []
        for link in links:
            with suppress(ValueError):  # already gone (second close, interpreter exit)
                link.unlink()
        if getattr(self, "canvas", None) is not None:
            self.canvas.close()
        super().close()

    # ------------------------------------------------------------------ drawing
    def refresh(self, topics: frozenset = frozenset({"overlay"})) -> np.ndarray:
        """Redraw what ``topics`` name from the model; overlay: only the chips that changed.

        Returns
        -------
        ndarray of int
            The chips sent to the canvas.
        """
        m, c = self.model, self.canvas
        idx = np.zeros(0, np.int64)
        with c.hold_sync():
            boxes = m.session.grid.boxes
            if "grid" in topics and (c.n_chips != len(boxes) or not np.array_equal(c.boxes, boxes)):
                c.cursor_chip = -1
                c.set_chips(m.session.grid.boxes)
            if topics & {"overlay", "grid", "classes"}:
                new = m.overlay()
                idx = changed_rows(self.drawn, new)
                if idx.size:
                    c.update_chips(idx, fill=new.fill[idx], outline=new.outline[idx],
                                   uncertain=new.uncertain[idx], suggested=new.suggested[idx])
                c.cursor_chip = m.focus if m.focus is not None else (m.suggested[0] if m.suggested else -1)
            if "focus" in topics:
                self.show_focus()
            if "layers" in topics:
                lay = m.layers
                c.show_grid, c.show_fill = lay.grid, lay.segmentation
                c.fill_opacity = lay.segmentation_opacity
                c.show_uncertain, c.uncertain_opacity = lay.uncertainty, lay.uncertainty_opacity
                c.show_outline, c.outline_opacity = lay.supports, lay.supports_opacity
                for control, value in ((self.show_grid, lay.grid), (self.show_fill, lay.segmentation),
                                       (self.opacity, lay.segmentation_opacity),
                                       (self.show_uncertain, lay.uncertainty),
                                       (self.uncertain_opacity, lay.uncertainty_opacity),
                                       (self.show_outline, lay.supports),
                                       (self.outline_opacity, lay.supports_opacity),
                                       (self.show_pixels, lay.pixels)):
                    if control.value != value:
                        control.value = value
            if topics & {"overlay", "layers", "grid", "classes"}:
                self._update_pixels()
            if "image" in topics:
                c.set_image(m.display_image(), fit=False)
                ds = m.session.dataset
                c.pixel_size, c.pixel_unit = (ds.pixel_size or 0.0), (ds.pixel_unit if ds.pixel_size else "")
                if tuple(self.contrast.value) != m.contrast:
                    self.contrast.value = m.contrast
        self.last_update = idx
        if topics & {"hover", "overlay", "grid"}:
            self.status.value = (f"<span style='font-family:monospace'>"
                                 f"{html_escape(m.hover_text())}</span>")
        self.undo_button.disabled = not m.session.can_undo
        self.redo_button.disabled = not m.session.can_redo
        return idx

    @property
    def drawn(self) -> Overlay:
        """What the canvas holds now (fill, outline, uncertain, suggested arrays)."""
        c = self.canvas
        n = c.n_chips

        def rows(arr: np.ndarray, shape: tuple) -> np.ndarray:
            # The canvas may hold empty arrays before anything was drawn: read them as "nothing".
            return arr if len(arr) == n else np.zeros(shape, np.uint8)

        return Overlay(rows(c.fill_rgba, (n, 4)), rows(c.outline_rgba, (n, 4)),
                       rows(c.uncertain, (n,)), rows(c.suggested, (n,)))

    @property
    def active_class(self) -> str | None:
        """The class a left click labels (the model's)."""
        return self.model.active_class

    def _update_pixels(self) -> None:
        """Show the pixel-resolution map while its layer is on and it is ready, else the chips.

        The RGBA map crosses the wire once per result (and colour change); a click shows the
        chip fills at once until the background refinement of the new result is done.
        """
        m, c = self.model, self.canvas
        r = m.session.result
        show = bool(m.layers.pixels and r is not None and m.pixels_ready)
        if show:
            key = (id(r), tuple(m.session.classes.items()))
            if key != self._seg_key:
                c.seg_image = m.segmentation_rgba(MAX_DISPLAY_SIDE)
                self._seg_key = key
        c.show_pixels = show

    def show_focus(self) -> None:
        """Centre and zoom the view on the suggestion being visited (nothing without one)."""
        box = self.model.focus_box()
        if box is None:
            return
        c = self.canvas
        x0, x1, y0, y1 = focus_window(box, self.model.session.dataset.shape)
        zoom = min(c.view_width / (x1 - x0), c.view_height / (y1 - y0))
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        with c.hold_sync():
            c.zoom = zoom
            c.pan = (cx - c.view_width / (2 * zoom), cy - c.view_height / (2 * zoom))
            c.cursor_chip = int(self.model.focus)

    def zoom_by(self, factor: float) -> None:
        """Zoom about the centre of the view by ``factor`` (> 1 zooms in)."""
        c = self.canvas
        cx = c.pan[0] + c.view_width / (2 * c.zoom)
        cy = c.pan[1] + c.view_height / (2 * c.zoom)
        zoom = c.zoom * float(factor)
        with c.hold_sync():
            c.zoom = zoom
            c.pan = (cx - c.view_width / (2 * zoom), cy - c.view_height / (2 * zoom))

    # ------------------------------------------------------------------ canvas events
    def _on_click(self, x: float, y: float, button: int, mods: Modifiers) -> None:
        if button in (LEFT, RIGHT):
            self.model.press(x, y, remove=button == RIGHT or mods.shift)

    def _on_drag(self, x: float, y: float, button: int, mods: Modifiers) -> None:
        self.model.drag(x, y)

    def _on_release(self, x: float, y: float, button: int, mods: Modifiers) -> None:
        self.model.release()

    def _on_hover(self, x: float, y: float) -> None:
        self.model.hover(x, y)

    def _on_key(self, key: str, mods: Modifiers) -> None:
        self.model.key(key, ctrl=mods.ctrl, shift=mods.shift)
