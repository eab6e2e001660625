"""A chip-grid canvas: an image, per-chip overlays, zoom/pan, and mouse/key events.

Why an anywidget and not ipycanvas: ipycanvas sends draw *commands*; under Voilà the ones
sent before the browser's view connects are lost, so a canvas drawn at creation stays blank
unless one resets a private attribute before every redraw. Here everything drawn is *state*
(synced traits, arrays sent as binary buffers); the browser draws from that state whenever a
view connects or the state changes, so nothing can be lost, and the front end (``canvas.js``,
shipped in the package) needs no CDN.

The widget is a pure view: it knows pixel boxes and colours, nothing about classes or models.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import anywidget
import numpy as np
import traitlets
from ipywidgets import CallbackDispatcher

__all__ = ["ChipCanvas", "Modifiers", "array_from_json", "array_to_json", "chip_cells"]

_HERE = Path(__file__).parent
_log = logging.getLogger(__name__)

MAX_VIEW_SIZE = 640  # default longest side of the displayed canvas, CSS px


class Modifiers(NamedTuple):
    """Modifier keys held during a mouse or key event (``ctrl`` is also set by Cmd/Meta)."""

    shift: bool = False
    ctrl: bool = False


# ---------------------------------------------------------------------------------------
# Binary array serialisation: {"shape", "dtype", "buffer"}; ipywidgets sends the buffer as
# a binary frame (no JSON lists), the front end reads it as a typed array.


def array_to_json(value: np.ndarray | None, widget: Any = None) -> dict[str, Any] | None:
    """Serialise a NumPy array for the wire: shape, dtype and a raw little-endian buffer."""
    if value is None:
        return None
    arr = np.ascontiguousarray(value)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    buffer = memoryview(arr.reshape(-1).view(np.uint8))  # flat bytes: empty arrays work too
    return {"shape": list(arr.shape), "dtype": arr.dtype.str, "buffer": buffer}


def array_from_json(value: dict[str, Any] | None, widget: Any = None) -> np.ndarray | None:
    """Inverse of :func:`array_to_json`."""
    if value is None:
        return None
    buf = value["buffer"]
    return np.frombuffer(bytes(buf), dtype=np.dtype(value["dtype"])).reshape(value["shape"])


_ARRAY_SYNC = {"sync": True, "to_json": array_to_json, "from_json": array_from_json}


class _Array(traitlets.TraitType):
    """A read-only NumPy array trait with a fixed dtype and a shape pattern.

    Values are copied into a C-contiguous read-only array, so a caller cannot mutate the
    synced state in place behind the front end's back: replace the array instead.
    """

    info_text = "a NumPy array"

    def __init__(self, dtype: str, shape: tuple[int | None, ...], **kwargs: Any) -> None:
        self._dtype = np.dtype(dtype)
        self._shape = shape
        default = np.zeros(tuple(0 if s is None else s for s in shape), self._dtype)
        default.flags.writeable = False
        super().__init__(default_value=default, **kwargs)

    def validate(self, obj: Any, value: Any) -> np.ndarray:
        arr = np.asarray(value)
        ok = arr.ndim == len(self._shape) and all(
            s is None or s == n for s, n in zip(self._shape, arr.shape, strict=True)
        )
        if not ok:
            want = "(" + ", ".join("N" if s is None else str(s) for s in self._shape) + ")"
            raise traitlets.TraitError(f"{self.name} must have shape {want}, got {arr.shape}.")
        if self._dtype.kind in "iu" and arr.dtype != self._dtype and arr.size:
            if arr.dtype.kind not in "biu":
                raise traitlets.TraitError(f"{self.name} must hold integers, got {arr.dtype}.")
            info = np.iinfo(self._dtype)
            if arr.min() < info.min or arr.max() > info.max:
                raise traitlets.TraitError(
                    f"{self.name} values must lie in [{info.min}, {info.max}] ({self._dtype})."
                )
        out = np.array(arr, dtype=self._dtype, order="C", copy=True)
        out.flags.writeable = False
        return out

    def set(self, obj: Any, value: Any) -> None:
        # traitlets compares old == new with `bool(...)`, ambiguous for arrays: compare exactly.
        new = self._validate(obj, value)
        old = obj._trait_values.get(self.name, self.default_value)
        obj._trait_values[self.name] = new
        if not (old.shape == new.shape and np.array_equal(old, new)):
            obj._notify_trait(self.name, old, new)


# ---------------------------------------------------------------------------------------


def _owned_1d(spans: np.ndarray) -> np.ndarray:
    """Owned sub-interval of each unique [start, end) span along one axis (pixel centres)."""
    uniq, inverse = np.unique(spans, axis=0, return_inverse=True)
    centres = uniq.sum(axis=1) / 2.0
    order = np.argsort(centres, kind="stable")
    c = centres[order]
    # Pixel v (centre v + 0.5) goes to the span whose centre is nearest; ties to the earlier.
    mids = (c[:-1] + c[1:]) / 2.0
    cuts = np.floor(mids - 0.5).astype(np.int64) + 1
    lo = np.concatenate([[np.iinfo(np.int64).min], cuts])
    hi = np.concatenate([cuts, [np.iinfo(np.int64).max]])
    s, e = uniq[order, 0], uniq[order, 1]
    start = np.clip(lo, s, e)
    end = np.clip(hi, start, e)
    owned = np.empty_like(uniq)
    owned[order, 0], owned[order, 1] = start, end
    return owned[np.asarray(inverse).ravel()]


def chip_cells(boxes: np.ndarray) -> np.ndarray:
    """Find the part of each chip that is nearer its centre than any other chip's centre.

    With non-overlapping chips a cell is the chip itself; with ``stride < size`` the cells
    are the central ``stride × stride`` squares, which tile the image without overlap. Fills,
    the grid and the hover box are drawn on cells, so overlapping chips do not stack colours.

    Parameters
    ----------
    boxes : ndarray, shape (N, 4), int
        Chip boxes ``(y0, x0, y1, x1)`` in image pixels, end-exclusive, laid out as a grid
        (every box's row span and column span is shared by its row and column).

    Returns
    -------
    ndarray, shape (N, 4), int32
        Cells ``(y0, x0, y1, x1)``, each inside its box; pixel ``(y, x)`` belongs to the
        cell whose chip centre is nearest to the pixel centre ``(y + 0.5, x + 0.5)``.

    Examples
    --------
    >>> chip_cells([[0, 0, 64, 64], [0, 32, 64, 96], [0, 64, 64, 128]])[:, 1::2].tolist()
    [[0, 48], [48, 80], [80, 128]]
    """
    b = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    if not len(b):
        return np.zeros((0, 4), np.int32)
    cells = np.empty_like(b)
    cells[:, [0, 2]] = _owned_1d(b[:, [0, 2]])
    cells[:, [1, 3]] = _owned_1d(b[:, [1, 3]])
    return cells.astype(np.int32)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Convert a 2-D image to uint8 for display, scaling other dtypes min→0, max→255."""
    img = np.asarray(image)
    if img.ndim != 2:
        raise ValueError(f"ChipCanvas shows a 2-D grayscale image, got shape {img.shape}.")
    if img.dtype == np.uint8:
        return img
    img = np.nan_to_num(img.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(img.min(initial=0.0)), float(img.max(initial=0.0))
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.round((img - lo) * scale).astype(np.uint8)


def _view_for(shape: tuple[int, int], max_view: int) -> dict[str, Any]:
    """View size hugging the image's aspect ratio, and the zoom/pan that fit it."""
    h, w = shape
    scale = max_view / max(h, w)
    vw, vh = max(16, round(w * scale)), max(16, round(h * scale))
    zoom = min(vw / w, vh / h)
    return {
        "view_width": vw,
        "view_height": vh,
        "zoom": zoom,
        "pan": ((w - vw / zoom) / 2.0, (h - vh / zoom) / 2.0),
    }


def _replace_rows(arr: np.ndarray, idx: np.ndarray, values: Any) -> np.ndarray:
    vals = np.asarray(values)
    info = np.iinfo(arr.dtype)
    if vals.size and (vals.min() < info.min or vals.max() > info.max):
        raise ValueError(f"values must lie in [{info.min}, {info.max}], got {vals.tolist()}")
    new = arr.copy()
    new[idx] = np.broadcast_to(vals, (len(idx),) + arr.shape[1:])
    return new


class ChipCanvas(anywidget.AnyWidget):
    """An image with a chip grid, per-chip fills/outlines/uncertainty marks and events.

    All drawing state is in synced traits; arrays cross the wire as binary buffers. The
    front end keeps the image on its own layer, so overlay changes never resend it, and it
    repaints only the chips whose rows changed. Mouse and key events come back in *image*
    pixel coordinates (``x`` = column, ``y`` = row, continuous: pixel ``(r, c)`` spans
    ``[c, c+1) × [r, r+1)``), and are routed into the ``handle_*`` methods, which tests
    may call directly.

    Parameters
    ----------
    image : ndarray, shape (H, W), optional
        Grayscale image; non-uint8 images are scaled min→0, max→255 for display.
    boxes : ndarray, shape (N, 4), optional
        Chip boxes ``(y0, x0, y1, x1)`` in image pixels, end-exclusive.
    cells : ndarray, shape (N, 4), optional
        Non-overlapping part of each chip used for fills and hit-testing; default
        :func:`chip_cells` of ``boxes``.
    max_view_size : int
        Longest side, CSS px, of the displayed canvas when an image is set (default 640).
    **kwargs
        Initial values of other traits.

    Notes
    -----
    Browser gestures: the wheel zooms about the mouse; the middle button (or the left one in
    ``mode="pan"``) drags the view; Home fits the image. Left and right buttons report
    ``mouse_down``/``mouse_move``/``mouse_up`` (the context menu is suppressed); keys pressed
    while the canvas has focus are reported (digits by their digit even with Shift).
    While a button is held, moves are reported once per chip entered; otherwise (hover) at
    most every 50 ms.

    Examples
    --------
    >>> import numpy as np
    >>> boxes = [[0, 0, 32, 32], [0, 32, 32, 64]]
    >>> w = ChipCanvas(np.zeros((32, 64), np.uint8), boxes)
    >>> orange = (230, 159, 0, 255)
    >>> w.on_click(lambda x, y, button, mods: w.update_chips([int(x) // 32], fill=orange))
    >>> w.handle_mouse_down(40.0, 3.0)
    >>> w.fill_rgba.tolist()
    [[0, 0, 0, 0], [230, 159, 0, 255]]
    """

    _esm = _HERE / "canvas.js"
    _css = _HERE / "canvas.css"

    image = _Array("uint8", (None, None)).tag(**_ARRAY_SYNC)
    """Grayscale image, shape (H, W), uint8."""
    boxes = _Array("<i4", (None, 4)).tag(**_ARRAY_SYNC)
    """Chip boxes, shape (N, 4), int32 rows ``(y0, x0, y1, x1)``, end-exclusive, image px."""
    cells = _Array("<i4", (None, 4)).tag(**_ARRAY_SYNC)
    """Owned part of each chip (fills, grid, hit-testing), shape (N, 4); set from ``boxes``."""
    fill_rgba = _Array("uint8", (None, 4)).tag(**_ARRAY_SYNC)
    """Per-chip fill colour, shape (N, 4) RGBA; alpha 0 = no fill."""
    outline_rgba = _Array("uint8", (None, 4)).tag(**_ARRAY_SYNC)
    """Per-chip thick outline (supports), shape (N, 4) RGBA; alpha 0 = none."""
    uncertain = _Array("uint8", (None,)).tag(**_ARRAY_SYNC)
    """Per-chip flag, shape (N,); nonzero chips get a black-and-white hatch."""
    suggested = _Array("uint8", (None,)).tag(**_ARRAY_SYNC)
    """Per-chip flag, shape (N,); nonzero chips get a dashed box (suggested next labels)."""
    seg_image = _Array("uint8", (None, None, 4)).tag(**_ARRAY_SYNC)
    """Segmentation at pixel resolution, shape (h, w, 4) RGBA, stretched over the image; shown
    on the fill layer instead of the per-chip fills while :attr:`show_pixels` is on."""
    show_pixels = traitlets.Bool(False).tag(sync=True)

    show_grid = traitlets.Bool(True).tag(sync=True)
    show_fill = traitlets.Bool(True).tag(sync=True)
    show_outline = traitlets.Bool(True).tag(sync=True)
    show_uncertain = traitlets.Bool(True).tag(sync=True)
    fill_opacity = traitlets.Float(0.35, min=0.0, max=1.0).tag(sync=True)
    """Opacity of the whole fill layer (per-chip alpha multiplies it)."""
    uncertain_opacity = traitlets.Float(0.5, min=0.0, max=1.0).tag(sync=True)
    """Opacity of the uncertainty hatch."""
    outline_opacity = traitlets.Float(1.0, min=0.0, max=1.0).tag(sync=True)
    """Opacity of the support outlines."""
    grid_color = traitlets.Unicode("rgba(255,255,255,0.35)").tag(sync=True)
    """CSS colour of the grid lines."""

    view_width = traitlets.Int(MAX_VIEW_SIZE, min=16, max=8192).tag(sync=True)
    """Displayed width, CSS px."""
    view_height = traitlets.Int(MAX_VIEW_SIZE, min=16, max=8192).tag(sync=True)
    """Displayed height, CSS px."""
    zoom = traitlets.Float(1.0, min=1e-4).tag(sync=True)
    """Display scale, CSS px per image px (the browser's wheel writes it back)."""
    pan = traitlets.Tuple(traitlets.Float(), traitlets.Float(), default_value=(0.0, 0.0)).tag(
        sync=True
    )
    """Image coordinates ``(x, y)`` shown at the view's top-left corner."""
    mode = traitlets.Enum(["paint", "pan"], default_value="paint").tag(sync=True)
    """``"pan"``: the left button drags the view instead of reporting events."""
    cursor_chip = traitlets.Int(-1, min=-1).tag(sync=True)
    """Chip to highlight with a dashed box (e.g. a suggested next label); -1 = none."""
    pixel_size = traitlets.Float(0.0, min=0.0).tag(sync=True)
    """Physical size of one image pixel in :attr:`pixel_unit`; 0 = uncalibrated, no scale bar."""
    pixel_unit = traitlets.Unicode("").tag(sync=True)
    """Unit of :attr:`pixel_size` ("nm", "µm", ...), shown on the scale bar."""

    # Front-end event name -> (handler method, keyword arguments it accepts).
    _MSG_ROUTES: dict[str, tuple[str, tuple[str, ...]]] = {
        "mouse_down": ("handle_mouse_down", ("x", "y", "button", "shift", "ctrl")),
        "mouse_move": ("handle_mouse_move", ("x", "y", "shift", "ctrl")),
        "mouse_up": ("handle_mouse_up", ("x", "y", "button", "shift", "ctrl")),
        "key": ("handle_key", ("key", "ctrl", "shift")),
    }

    def __init__(
        self,
        image: np.ndarray | None = None,
        boxes: np.ndarray | Sequence[Sequence[int]] | None = None,
        *,
        cells: np.ndarray | None = None,
        max_view_size: int = MAX_VIEW_SIZE,
        **kwargs: Any,
    ) -> None:
        self.max_view_size = int(max_view_size)
        # Initial arrays go into the comm-open message: one message, no follow-up updates.
        state: dict[str, Any] = {}
        if image is not None:
            img = _to_uint8(image)
            state.update(image=img, **_view_for(img.shape, self.max_view_size))
        if boxes is not None:
            state.update(self._chip_state(boxes, cells))
        state.update(kwargs)
        super().__init__(**state)
        self._pressed: int | None = None  # button held since handle_mouse_down, if any
        self._dispatchers = {
            name: CallbackDispatcher() for name in ("click", "drag", "release", "hover", "key")
        }
        self.on_msg(self._handle_frontend_msg)

    # ---- state setters ------------------------------------------------------------------

    @staticmethod
    def _chip_state(boxes: Any, cells: Any = None) -> dict[str, np.ndarray]:
        b = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
        n = len(b)
        return {
            "boxes": b,
            "cells": chip_cells(b) if cells is None else cells,
            "fill_rgba": np.zeros((n, 4), np.uint8),
            "outline_rgba": np.zeros((n, 4), np.uint8),
            "uncertain": np.zeros(n, np.uint8),
            "suggested": np.zeros(n, np.uint8),
        }

    @property
    def n_chips(self) -> int:
        """Number of chips, ``len(boxes)``."""
        return len(self.boxes)

    @property
    def image_shape(self) -> tuple[int, int]:
        """Shape ``(H, W)`` of the image, ``(0, 0)`` before one is set."""
        return tuple(self.image.shape) if self.image.size else (0, 0)

    def set_image(self, image: np.ndarray, *, fit: bool = True) -> None:
        """Show a new image.

        Parameters
        ----------
        image : ndarray, shape (H, W)
            Grayscale image; non-uint8 images are scaled min→0, max→255.
        fit : bool
            Resize the view to the image's aspect ratio (longest side ``max_view_size``)
            and zoom it to fit.
        """
        img = _to_uint8(image)
        with self.hold_sync():
            self.image = img
            if fit:
                for name, value in _view_for(img.shape, self.max_view_size).items():
                    setattr(self, name, value)

    def set_chips(self, boxes: np.ndarray, *, cells: np.ndarray | None = None) -> None:
        """Replace the chip geometry and clear fills, outlines and uncertainty flags.

        Parameters
        ----------
        boxes : ndarray, shape (N, 4), int
            Chip boxes ``(y0, x0, y1, x1)`` in image pixels, end-exclusive.
        cells : ndarray, shape (N, 4), int, optional
            Owned part of each chip; default :func:`chip_cells` of ``boxes``.
        """
        with self.hold_sync():
            for name, value in self._chip_state(boxes, cells).items():
                setattr(self, name, value)

    @traitlets.observe("boxes")
    def _boxes_changed(self, change: dict[str, Any]) -> None:
        # Derived state follows the geometry; set_chips may then override the cells.
        n = len(change["new"])
        with self.hold_sync():
            self.cells = chip_cells(change["new"])
            for name in ("fill_rgba", "outline_rgba", "uncertain", "suggested"):
                current = getattr(self, name)
                if len(current) != n:
                    setattr(self, name, np.zeros((n,) + current.shape[1:], current.dtype))

    @traitlets.validate("cells", "fill_rgba", "outline_rgba", "uncertain", "suggested")
    def _check_rows(self, proposal: dict[str, Any]) -> np.ndarray:
        value = proposal["value"]
        if len(value) not in (0, self.n_chips):
            name = proposal["trait"].name
            raise traitlets.TraitError(
                f"{name} has {len(value)} rows but there are {self.n_chips} chips; "
                "call set_chips(boxes) first when the grid changes."
            )
        return value

    def update_chips(
        self,
        indices: int | Sequence[int] | np.ndarray,
        fill: Any = None,
        outline: Any = None,
        uncertain: Any = None,
        suggested: Any = None,
    ) -> np.ndarray:
        """Change the overlay of some chips; the front end repaints only those chips.

        New arrays replace the traits (nothing is mutated in place), inside one
        ``hold_sync`` so the browser gets one message.

        Parameters
        ----------
        indices : int or array_like of int, shape (k,)
            Chips to change.
        fill, outline : array_like, shape (4,) or (k, 4), uint8 RGBA, optional
            New fill / outline colours (alpha 0 clears); one row is broadcast to all chips.
        uncertain : bool or array_like of bool, shape (k,), optional
            New uncertainty flags.
        suggested : bool or array_like of bool, shape (k,), optional
            New suggestion flags.

        Returns
        -------
        ndarray, shape (k,), intp
            The chip indices changed.

        Raises
        ------
        IndexError
            If an index is outside ``[0, n_chips)``.
        """
        idx = np.atleast_1d(np.asarray(indices, dtype=np.intp)).ravel()
        n = self.n_chips
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"chip indices {idx.tolist()} out of range for {n} chips")
        with self.hold_sync():
            for name, values in (("fill_rgba", fill), ("outline_rgba", outline),
                                 ("uncertain", uncertain), ("suggested", suggested)):
                if values is None:
                    continue
                current = getattr(self, name)
                if len(current) != n:  # arrays set empty by hand: start from "nothing"
                    current = np.zeros((n,) + current.shape[1:], current.dtype)
                setattr(self, name, _replace_rows(current, idx, values))
        return idx

    def fit_view(self) -> None:
        """Zoom and centre the view so the whole image is visible (view size unchanged)."""
        h, w = self.image_shape
        if not (h and w):
            return
        zoom = min(self.view_width / w, self.view_height / h)
        with self.hold_sync():
            self.zoom = zoom
            self.pan = ((w - self.view_width / zoom) / 2.0, (h - self.view_height / zoom) / 2.0)

    # ---- callback registration -----------------------------------------------------------

    def _register(self, kind: str, callback: Callable[..., Any], remove: bool) -> None:
        self._dispatchers[kind].register_callback(callback, remove=remove)

    def on_click(self, callback: Callable[[float, float, int, Modifiers], Any],
                 remove: bool = False) -> None:
        """Call ``callback(x, y, button, modifiers)`` when a mouse button goes down.

        ``button`` is 0 (left) or 2 (right); ``x, y`` are image coordinates.
        """
        self._register("click", callback, remove)

    def on_drag(self, callback: Callable[[float, float, int, Modifiers], Any],
                remove: bool = False) -> None:
        """Call ``callback(x, y, button, modifiers)`` on moves while a button is held."""
        self._register("drag", callback, remove)

    def on_release(self, callback: Callable[[float, float, int, Modifiers], Any],
                   remove: bool = False) -> None:
        """Call ``callback(x, y, button, modifiers)`` when the button is released."""
        self._register("release", callback, remove)

    def on_hover(self, callback: Callable[[float, float], Any], remove: bool = False) -> None:
        """Call ``callback(x, y)`` on moves with no button held."""
        self._register("hover", callback, remove)

    def on_key(self, callback: Callable[[str, Modifiers], Any], remove: bool = False) -> None:
        """Call ``callback(key, modifiers)`` on a key press while the canvas has focus.

        ``key`` is the browser's ``KeyboardEvent.key`` with letters lower-cased and digits
        as ``"0"``–``"9"`` whatever the modifiers (so Ctrl+Shift+Z arrives as
        ``("z", Modifiers(shift=True, ctrl=True))``); e.g. ``"Escape"``, ``"ArrowLeft"``.
        """
        self._register("key", callback, remove)

    # ---- event handlers (the front end's messages end here) ---------------------------------

    def handle_mouse_down(self, x: float, y: float, button: int = 0,
                          shift: bool = False, ctrl: bool = False) -> None:
        """Handle a button press at image coordinates ``(x, y)``: run the click callbacks."""
        self._pressed = int(button)
        self._dispatchers["click"](float(x), float(y), int(button), Modifiers(shift, ctrl))

    def handle_mouse_move(self, x: float, y: float, shift: bool = False,
                          ctrl: bool = False) -> None:
        """Handle a move: drag callbacks while a button is held, else hover callbacks."""
        if self._pressed is None:
            self._dispatchers["hover"](float(x), float(y))
        else:
            self._dispatchers["drag"](float(x), float(y), self._pressed, Modifiers(shift, ctrl))

    def handle_mouse_up(self, x: float, y: float, button: int = 0,
                        shift: bool = False, ctrl: bool = False) -> None:
        """Handle a button release: run the release callbacks and end the drag."""
        self._pressed = None
        self._dispatchers["release"](float(x), float(y), int(button), Modifiers(shift, ctrl))

    def handle_key(self, key: str, ctrl: bool = False, shift: bool = False) -> None:
        """Handle a key pressed while the canvas had focus: run the key callbacks."""
        self._dispatchers["key"](str(key), Modifiers(shift, ctrl))

    def _handle_frontend_msg(self, _widget: Any, content: dict[str, Any],
                             _buffers: list[Any]) -> None:
        route = self._MSG_ROUTES.get(content.get("event")) if isinstance(content, dict) else None
        if route is None:
            _log.debug("ChipCanvas ignored message %r", content)
            return
        method, accepted = route
        getattr(self, method)(**{k: content[k] for k in accepted if k in content})
