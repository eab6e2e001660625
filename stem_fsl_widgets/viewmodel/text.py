"""Words for the user: chip descriptions, error messages, file names — no widgets here."""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from ..classify import Result
from ..errors import SFWError

__all__ = ["data_folder", "data_stem", "describe_chip", "error_message", "guard", "html_escape",
           "measurement_table_html"]

_log = logging.getLogger(__name__)


def describe_chip(chip: int, grid, supports: Mapping[int, str], result: Result | None) -> str:
    """One line about a chip for the hover status: index, position, prediction, confidence, entropy.

    Examples
    --------
    >>> from stem_fsl_widgets.chips import ChipGrid
    >>> describe_chip(5, ChipGrid(64, 64, 16), {5: "oxide"}, None)
    'chip 5 (row 1, col 1) · labelled oxide'
    """
    chip = int(chip)
    if not 0 <= chip < grid.n_chips:
        return ""
    r, c = divmod(chip, grid.n_cols)
    parts = [f"chip {chip} (row {r}, col {c})"]
    if chip in supports:
        parts.append(f"labelled {supports[chip]}")
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
    shown as they are; anything else is named as unexpected, without Python details.
    """
    text = str(err).strip() or type(err).__name__
    if isinstance(err, SFWError):
        return text
    if isinstance(err, OSError):
        reason = err.strerror or text
        where = f" ({Path(err.filename).name})" if getattr(err, "filename", None) else ""
        return f"The server could not read or write a file{where}: {reason}. Your labels are kept."
    return (f"Something unexpected went wrong ({text}). Your labels are kept; "
            "if it happens again, please report it.")


@contextmanager
def guard(report: Callable[[str], None] | None, action: str = "") -> Iterator[None]:
    """Run the ``with`` body; on any exception call ``report(message)`` instead of raising.

    Used around every event handler, so a failing step shows a message in the app and never
    a traceback; the session's supports stay as the last step left them. Without a
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


def html_escape(text: object) -> str:
    """Escape text (from a user or a file) for an HTML or Markdown pane."""
    return html.escape(str(text), quote=True)


def data_folder(dataset) -> Path:
    """The folder of the file the dataset was read from, else the working directory."""
    source = (dataset.metadata or {}).get("source")
    return Path(source).resolve().parent if source else Path.cwd()


def data_stem(dataset) -> str:
    """Stem of the dataset's source file, else its safe name."""
    source = (dataset.metadata or {}).get("source")
    from ..paths import safe_name

    return safe_name(Path(source).stem if source else dataset.name)


def measurement_table_html(meas) -> str:
    """Per-class area, fraction, particle count, median diameter as an HTML table (escaped).

    ``meas`` is a :class:`stem_fsl_widgets.measure.Measurements` or None ("").
    """
    if meas is None:
        return ""
    head = (f"<tr><th>class</th><th>area ({html_escape(meas.area_unit)})</th><th>fraction</th>"
            f"<th>particles</th><th>median diameter ({html_escape(meas.length_unit)})</th></tr>")
    body = []
    for r in meas.rows():
        med = r["diameter_median"]
        med_text = "–" if not math.isfinite(med) else f"{med:.3g}"
        body.append(f"<tr><td>{html_escape(r['class'])}</td><td>{r['area']:.4g}</td>"
                    f"<td>{100 * r['area_fraction']:.1f} %</td><td>{r['particles']}</td>"
                    f"<td>{med_text}</td></tr>")
    notes = "".join(f"<div><small>{html_escape(n)}</small></div>" for n in meas.notes)
    return (f"<table class='sfw-measurements' style='border-collapse:collapse'>{head}"
            f"{''.join(body)}</table>{notes}")
