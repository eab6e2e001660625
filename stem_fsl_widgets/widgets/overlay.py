"""What the chip canvas should show, computed from a session's state — no widgets here.

Pure functions: (classes, supports, result) → per-chip fill / outline / uncertainty arrays,
the rows that differ from what is drawn, a hover description of one chip, and readable
error messages. The widgets call these and send the arrays to the canvas, so the drawing
logic is testable without a browser or even ipywidgets.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..classify import Result
from ..errors import SFWError

__all__ = [
    "FollowsSession",
    "HIGHLIGHT_RGBA",
    "Overlay",
    "changed_rows",
    "chip_overlay",
    "describe_chip",
    "error_message",
    "guard",
    "rgba",
    "session_overlay",
]

_log = logging.getLogger(__name__)

#: Outline of chips suggested as the next ones to label. White is outside the class palette
#: (Okabe–Ito without black/white), so it cannot be mistaken for a support of some class.
HIGHLIGHT_RGBA = (255, 255, 255, 255)


def rgba(colour: str, alpha: int = 255) -> tuple[int, int, int, int]:
    """``"#E69F00"`` → ``(230, 159, 0, alpha)``; 3-digit hex is accepted.

    Examples
    --------
    >>> rgba("#E69F00")
    (230, 159, 0, 255)
    """
    c = str(colour).strip().lstrip("#")
    if len(c) == 3:
        c = "".join(ch * 2 for ch in c)
    try:
        if len(c) != 6:
            raise ValueError
        return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), int(alpha)
    except ValueError:
        raise ValueError(f"Expected a hex colour like '#E69F00', got {colour!r}.") from None


@dataclass(frozen=True, eq=False)
class Overlay:
    """Per-chip drawing state of the canvas.

    Attributes
    ----------
    fill : ndarray, shape (N, 4), uint8
        RGBA of the predicted class (alpha 0 = no prediction); the canvas's fill opacity
        makes it translucent.
    outline : ndarray, shape (N, 4), uint8
        RGBA of the thick outline: a support's class colour, :data:`HIGHLIGHT_RGBA` for a
        suggested chip, alpha 0 otherwise.
    uncertain : ndarray, shape (N,), uint8
        1 where the result flags the chip uncertain (drawn as a hatch).
    """

    fill: np.ndarray
    outline: np.ndarray
    uncertain: np.ndarray

    @property
    def n_chips(self) -> int:
        """Number of chips N."""
        return len(self.uncertain)


def chip_overlay(
    n_chips: int,
    classes: Mapping[str, str],
    supports: Mapping[int, str],
    result: Result | None,
    highlight: Iterable[int] = (),
) -> Overlay:
    """Compute what every chip should look like.

    Parameters
    ----------
    n_chips : int
        Number of chips N on the current grid.
    classes : mapping of str to str
        Class name → hex colour (current colours: a colour change needs no reclassification).
    supports : mapping of int to str
        Chip index → class name of the user's labels.
    result : Result or None
        The latest classification; None (or one for another grid) draws no fill.
    highlight : iterable of int
        Chips to outline with :data:`HIGHLIGHT_RGBA` (suggestions); supports take precedence.

    Returns
    -------
    Overlay

    Examples
    --------
    >>> ov = chip_overlay(3, {"a": "#E69F00"}, {1: "a"}, None)
    >>> ov.outline[:, 3].tolist(), ov.fill[:, 3].tolist()
    ([0, 255, 0], [0, 0, 0])
    """
    fill = np.zeros((n_chips, 4), np.uint8)
    outline = np.zeros((n_chips, 4), np.uint8)
    uncertain = np.zeros(n_chips, np.uint8)
    if result is not None and result.labels.shape == (n_chips,):
        # Look-up table over the result's class order, coloured with the *current* colours.
        lut = np.array([rgba(classes.get(c, col)) for c, col in zip(result.classes, result.colours,
                                                                     strict=True)], np.uint8)
        fill = lut[result.labels]
        uncertain = result.uncertain.astype(np.uint8)
    hl = np.fromiter((int(i) for i in highlight), np.int64)
    hl = hl[(hl >= 0) & (hl < n_chips)]
    outline[hl] = HIGHLIGHT_RGBA
    if supports:
        names = list(classes)
        pos = {n: k for k, n in enumerate(names)}
        lut_s = np.array([rgba(classes[n]) for n in names] + [(0, 0, 0, 255)], np.uint8)
        idx = np.fromiter(supports.keys(), np.int64, len(supports))
        cls = np.fromiter((pos.get(n, len(names)) for n in supports.values()), np.int64,
                          len(supports))
        ok = (idx >= 0) & (idx < n_chips)
        outline[idx[ok]] = lut_s[cls[ok]]
    return Overlay(fill, outline, uncertain)


def session_overlay(session, highlight: Iterable[int] = ()) -> Overlay:
    """:func:`chip_overlay` of a :class:`~stem_fsl_widgets.session.Session`'s current state."""
    return chip_overlay(session.n_chips, session.classes, session.supports, session.result, highlight)


def changed_rows(drawn: Overlay, new: Overlay) -> np.ndarray:
    """Chips whose fill, outline or uncertainty flag differ between two overlays.

    Comparing against what is actually drawn (rather than trusting
    :meth:`Result.changed_chips` alone) also catches colour changes and drag previews that
    were never committed, and still yields only the rows a click changed.

    Returns
    -------
    ndarray of int64, shape (k,)
        Sorted chip indices; every chip when the two overlays have different lengths.
    """
    if drawn.n_chips != new.n_chips:
        return np.arange(new.n_chips)
    diff = (
        np.any(drawn.fill != new.fill, axis=1)
        | np.any(drawn.outline != new.outline, axis=1)
        | (drawn.uncertain != new.uncertain)
    )
    return np.flatnonzero(diff)


def describe_chip(chip: int, grid, supports: Mapping[int, str], result: Result | None) -> str:
    """One line about a chip for the hover status: index, position, prediction, confidence, entropy.

    Examples
    --------
    >>> from stem_fsl_widgets.chips import ChipGrid
    >>> describe_chip(5, ChipGrid(64, 64, 16), {5: "oxide"}, None)
    'chip 5 (row 1, col 1) · support of oxide'
    """
    chip = int(chip)
    if not 0 <= chip < grid.n_chips:
        return ""
    r, c = divmod(chip, grid.n_cols)
    parts = [f"chip {chip} (row {r}, col {c})"]
    if chip in supports:
        parts.append(f"support of {supports[chip]}")
    if result is not None and result.labels.shape == (grid.n_chips,):
        k = int(result.labels[chip])
        parts.append(f"predicted {result.classes[k]}")
        parts.append(f"confidence {float(result.confidence[chip]):.2f}")
        parts.append(f"entropy {float(result.entropy[chip]):.2f}")
        if result.uncertain[chip]:
            parts.append("uncertain")
    return " · ".join(parts)


def error_message(err: BaseException) -> str:
    """Readable one-paragraph text for an error (never a traceback).

    Errors of the toolkit (:class:`SFWError`) carry a message written for the user and are
    shown as they are; anything else is named as unexpected, with its type and message.
    """
    text = str(err).strip() or type(err).__name__
    if isinstance(err, SFWError):
        return text
    return (f"Unexpected error ({type(err).__name__}: {text}). Your labels are kept; "
            "if it happens again, please report it.")


@contextmanager
def guard(report: Callable[[str], None] | None, action: str = "") -> Iterator[None]:
    """Run the ``with`` body; on any exception call ``report(message)`` instead of raising.

    Used around every widget event handler, so a failing step shows a message in the app
    and never a traceback; the session's supports stay as the last step left them. Without a
    ``report`` the error is re-raised.
    """
    try:
        yield
    except Exception as err:  # noqa: BLE001 - the whole point: nothing escapes to the user
        if report is None:
            raise
        _log.debug("handler failed", exc_info=True)
        prefix = f"Could not {action}: " if action else ""
        report(prefix + error_message(err))


def html_escape(text: str) -> str:
    """Escape text for an HTML widget."""
    return html.escape(str(text))


class FollowsSession:
    """Mixin for views that redraw on every session change: follow on start, stop on close.

    The view defines ``_on_session_change(session)``; :meth:`_follow` registers it and
    :meth:`close` removes it (safe from ``__del__`` on a half-built widget).
    """

    def _follow(self, session) -> None:
        self.session = session
        session.on_change(self._on_session_change)

    def close(self) -> None:
        """Stop following the session and close the widget."""
        session = getattr(self, "session", None)
        if session is not None:
            session.on_change(self._on_session_change, remove=True)
        super().close()
