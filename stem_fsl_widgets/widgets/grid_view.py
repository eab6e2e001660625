"""The image and its chip grid: clicks and drags become Session calls, the overlays follow.

A view over a :class:`~stem_fsl_widgets.widgets.canvas.ChipCanvas`: the canvas draws, this
class turns its events into :class:`~stem_fsl_widgets.session.Session` calls and redraws,
from the session's state, only the chips whose drawing changed (one message per change).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field

import ipywidgets as widgets
import numpy as np
import traitlets

from ..errors import InputError
from .canvas import ChipCanvas, Modifiers
from .overlay import (
    FollowsSession,
    Overlay,
    changed_rows,
    describe_chip,
    guard,
    html_escape,
    rgba,
    session_overlay,
)

__all__ = ["ChipGridView", "display_image"]

LEFT, RIGHT = 0, 2
_ZOOM_STEP = 1.25


def display_image(image: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)) -> np.ndarray:
    """Contrast-stretch an image to uint8 between two of its percentiles (display only).

    Parameters
    ----------
    image : ndarray, shape (H, W)
    percentiles : (float, float)
        Lower and upper percentile (0–100) mapped to 0 and 255; values outside are clipped.

    Returns
    -------
    ndarray, shape (H, W), uint8

    Examples
    --------
    >>> display_image(np.arange(101.0).reshape(1, 101), (10, 90))[0, [0, 10, 50, 90, 100]].tolist()
    [0, 0, 128, 255, 255]
    """
    img = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(img, [float(percentiles[0]), float(percentiles[1])])
    if not hi > lo:  # a flat stretch window: fall back to the full range
        lo, hi = float(img.min()), float(img.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip(np.rint((img - lo) * scale), 0, 255).astype(np.uint8)


@dataclass
class _Stroke:
    """A left-button press in progress: its class, the chips entered, the click's effect."""

    cls: str
    chips: list[int] = field(default_factory=list)
    clicked_changed: bool = False  # the press itself toggled the first chip (one undo step)


class ChipGridView(FollowsSession, widgets.VBox):
    """The image with its chip grid; click to label, drag to paint, hover to inspect.

    Gestures (through the canvas, or its ``handle_*`` methods in tests): left click makes
    the chip a support of :attr:`active_class` (a second click removes it,
    :meth:`Session.toggle`); a left drag paints every chip it crosses (:meth:`Session.label_many`,
    one undo step); right click or Shift+click removes a support; keys 1–9 pick the class,
    Ctrl+Z / Ctrl+Shift+Z (or Ctrl+Y) undo / redo, Escape clears the suggestions. The wheel
    zooms, the middle button (or "pan" mode) pans.

    Parameters
    ----------
    session : Session
    report : callable(str), optional
        Where error messages go (the app's message line); default: this view's status line.
    max_view_size : int
        Longest side of the canvas on screen, CSS px.
    contrast : (float, float)
        Initial display percentiles of the image.

    Attributes
    ----------
    canvas : ChipCanvas
    contrast, opacity : ipywidgets sliders
        Display percentiles of the image; opacity of the segmentation fill.
    show_grid, show_fill, show_outline, show_uncertain : ipywidgets.Checkbox
        Overlay layers.
    status : ipywidgets.HTML
        The hover line: chip index, prediction, confidence, entropy.
    last_update : ndarray of int
        Chips redrawn by the latest refresh (for tests and benchmarks).
    """

    active_class = traitlets.Unicode(None, allow_none=True)
    """Class a left click labels; follows the session's classes."""
    hovered_chip = traitlets.Int(-1)
    """Chip under the mouse (-1 = none)."""
    selected_chip = traitlets.Int(-1)
    """Chip last clicked (-1 = none)."""

    def __init__(self, session, *, report: Callable[[str], None] | None = None,
                 max_view_size: int = 640, contrast: tuple[float, float] = (1.0, 99.0)) -> None:
        self.session = session
        self.report = report or self._report_here
        self._grid = session.grid
        self._stroke: _Stroke | None = None
        self._suggested: tuple[int, ...] = ()
        self.last_update = np.zeros(0, np.int64)

        ds = session.dataset
        self.canvas = ChipCanvas(display_image(ds.image, contrast), session.grid.boxes,
                                 max_view_size=max_view_size, pixel_size=ds.pixel_size or 0.0,
                                 pixel_unit=ds.pixel_unit if ds.pixel_size else "")
        self.status = widgets.HTML("", layout=widgets.Layout(min_height="1.6em"))
        self.contrast = widgets.FloatRangeSlider(
            value=tuple(contrast), min=0.0, max=100.0, step=0.1, description="contrast %",
            continuous_update=False, readout_format=".1f",
            layout=widgets.Layout(width="320px"))
        self.opacity = widgets.FloatSlider(
            value=self.canvas.fill_opacity, min=0.0, max=1.0, step=0.05, description="fill",
            layout=widgets.Layout(width="240px"))
        fit_width = widgets.Layout(width="auto")
        self.show_grid = widgets.Checkbox(True, description="grid", indent=False, layout=fit_width)
        self.show_fill = widgets.Checkbox(True, description="segmentation", indent=False, layout=fit_width)
        self.show_outline = widgets.Checkbox(True, description="labels", indent=False, layout=fit_width)
        self.show_uncertain = widgets.Checkbox(True, description="uncertain", indent=False,
                                               layout=fit_width)
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

        self._links = [widgets.link((self.opacity, "value"), (self.canvas, "fill_opacity")),
                       widgets.link((self.mode, "value"), (self.canvas, "mode"))]
        for box, name in ((self.show_grid, "show_grid"), (self.show_fill, "show_fill"),
                          (self.show_outline, "show_outline"), (self.show_uncertain, "show_uncertain")):
            self._links.append(widgets.link((box, "value"), (self.canvas, name)))
        self.contrast.observe(self._on_contrast, names="value")
        self.undo_button.on_click(lambda _b: self.undo())
        self.redo_button.on_click(lambda _b: self.redo())
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
        layers = widgets.HBox([self.show_grid, self.show_fill, self.show_outline, self.show_uncertain,
                               self.opacity, self.contrast],
                              layout=widgets.Layout(flex_flow="row wrap", align_items="center",
                                                    max_width=width, grid_gap="4px 12px"))
        self.status.layout.max_width = width
        super().__init__([toolbar, self.canvas, self.status, layers])
        self._follow(session)
        self.refresh()

    def close(self) -> None:
        """Stop following the session and close the widget and its canvas."""
        links, self._links = getattr(self, "_links", []), []
        for link in links:
            with suppress(ValueError):  # already gone (second close, interpreter exit)
                link.unlink()
        if getattr(self, "canvas", None) is not None:
            self.canvas.close()
        super().close()

    def _on_session_change(self, _session) -> None:
        with guard(self.report, "redraw the chips"):
            self.refresh()

    # ------------------------------------------------------------------ drawing
    def refresh(self) -> np.ndarray:
        """Redraw from the session's state: only the chips whose drawing changed, one batch.

        Returns
        -------
        ndarray of int
            The chips sent to the canvas.
        """
        s = self.session
        with self.canvas.hold_sync():
            if s.grid is not self._grid:  # chip size / stride changed (or undone): new geometry
                self._grid = s.grid
                self._suggested = ()
                self.canvas.cursor_chip = -1
                self.canvas.set_chips(s.grid.boxes)
                self.hovered_chip = self.selected_chip = -1
            new = session_overlay(s, self._suggested)
            idx = changed_rows(self.drawn, new)
            if idx.size:
                self.canvas.update_chips(idx, fill=new.fill[idx], outline=new.outline[idx],
                                         uncertain=new.uncertain[idx])
        self.last_update = idx
        names = list(s.classes)
        if self.active_class not in names:
            self.active_class = names[0] if names else None
        self._describe(self.hovered_chip)
        self.undo_button.disabled = not s.can_undo
        self.redo_button.disabled = not s.can_redo
        return idx

    @property
    def drawn(self) -> Overlay:
        """What the canvas holds now (fill, outline, uncertain arrays)."""
        c = self.canvas
        n = c.n_chips
        # The canvas may hold empty arrays before anything was drawn: read them as "nothing".
        fill = c.fill_rgba if len(c.fill_rgba) == n else np.zeros((n, 4), np.uint8)
        outline = c.outline_rgba if len(c.outline_rgba) == n else np.zeros((n, 4), np.uint8)
        unc = c.uncertain if len(c.uncertain) == n else np.zeros(n, np.uint8)
        return Overlay(fill, outline, unc)

    def highlight(self, chips: Iterable[int]) -> None:
        """Outline ``chips`` (e.g. suggested next labels) in white; the first gets the cursor box."""
        self._suggested = tuple(int(c) for c in chips)
        self.canvas.cursor_chip = self._suggested[0] if self._suggested else -1
        self.refresh()

    @property
    def suggested(self) -> tuple[int, ...]:
        """Chips currently highlighted as suggestions."""
        return self._suggested

    def set_contrast(self, low: float, high: float) -> None:
        """Show the image stretched between its ``low`` and ``high`` percentiles (resends it)."""
        self.contrast.value = (float(low), float(high))

    def _on_contrast(self, change: dict) -> None:
        with guard(self.report, "change the contrast"):
            lo, hi = change["new"]
            self.canvas.set_image(display_image(self.session.dataset.image, (lo, hi)), fit=False)

    def zoom_by(self, factor: float) -> None:
        """Zoom about the centre of the view by ``factor`` (> 1 zooms in)."""
        c = self.canvas
        cx = c.pan[0] + c.view_width / (2 * c.zoom)
        cy = c.pan[1] + c.view_height / (2 * c.zoom)
        zoom = c.zoom * float(factor)
        with c.hold_sync():
            c.zoom = zoom
            c.pan = (cx - c.view_width / (2 * zoom), cy - c.view_height / (2 * zoom))

    # ------------------------------------------------------------------ session actions
    def undo(self) -> None:
        """Undo the last change of the session (labels, classes or settings)."""
        with guard(self.report, "undo"):
            self.session.undo()

    def redo(self) -> None:
        """Redo the last undone change."""
        with guard(self.report, "redo"):
            self.session.redo()

    def _chip_at(self, x: float, y: float) -> int | None:
        chip = int(self.session.grid.chip_at(y, x))
        return chip if chip >= 0 else None

    def _require_class(self) -> str:
        if self.active_class is None or self.active_class not in self.session.classes:
            raise InputError("Add a class first (Classes panel), then click chips to label them.")
        return self.active_class

    # ------------------------------------------------------------------ canvas events
    def _on_click(self, x: float, y: float, button: int, mods: Modifiers) -> None:
        self._stroke = None
        with guard(self.report, "change the label"):
            chip = self._chip_at(x, y)
            if chip is None:
                return
            self.selected_chip = chip
            if button == RIGHT or mods.shift:
                self.session.unlabel(chip)
                return
            if button != LEFT:
                return
            cls = self._require_class()
            before = self.session.supports.get(chip)
            self.session.toggle(chip, cls)
            self._stroke = _Stroke(cls, [chip], self.session.supports.get(chip) != before)

    def _on_drag(self, x: float, y: float, button: int, mods: Modifiers) -> None:
        with guard(self.report, "paint"):
            stroke = self._stroke
            chip = self._chip_at(x, y)
            if stroke is None or chip is None or chip in stroke.chips:
                return
            stroke.chips.append(chip)
            # Preview only: the session changes once, on release (one undo step per stroke).
            colour = self.session.classes.get(stroke.cls)
            if colour is not None:
                self.canvas.update_chips([chip], outline=rgba(colour))

    def _on_release(self, x: float, y: float, button: int, mods: Modifiers) -> None:
        stroke, self._stroke = self._stroke, None
        if stroke is None or len(stroke.chips) < 2:
            return
        with guard(self.report, "paint"):
            if stroke.clicked_changed:
                # The press already toggled the first chip; fold it into the stroke's single step.
                self.session.undo()
            self.session.label_many(stroke.chips, stroke.cls)
        self.refresh()  # clears previews even when the stroke changed nothing

    def _on_hover(self, x: float, y: float) -> None:
        with guard(self.report, "describe the chip"):
            chip = self._chip_at(x, y)
            self.hovered_chip = -1 if chip is None else chip
            self._describe(self.hovered_chip)

    def _on_key(self, key: str, mods: Modifiers) -> None:
        with guard(self.report, f"handle key {key!r}"):
            k = key.lower()
            if len(key) == 1 and key in "123456789" and not mods.ctrl:
                names = list(self.session.classes)
                i = int(key) - 1
                if i < len(names):
                    self.active_class = names[i]
            elif mods.ctrl and (k == "y" or (k == "z" and mods.shift)):
                self.session.redo()
            elif mods.ctrl and k == "z":
                self.session.undo()
            elif key == "Escape":
                self._stroke = None
                self.highlight(())

    # ------------------------------------------------------------------ text
    def _describe(self, chip: int) -> None:
        s = self.session
        text = describe_chip(chip, s.grid, s.supports, s.result) if chip >= 0 else ""
        self.status.value = f"<span style='font-family:monospace'>{html_escape(text)}</span>"

    def _report_here(self, message: str) -> None:
        self.status.value = f"<span style='color:#b00020'>{html_escape(message)}</span>"
