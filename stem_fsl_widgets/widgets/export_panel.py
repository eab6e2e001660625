"""Export buttons: segmentation/entropy maps, the per-chip table, the session file.

The writing is :mod:`stem_fsl_widgets.export`'s and :meth:`Session.save`'s; this panel only
picks file names (an output folder + a prefix) and lists what it wrote.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import ipywidgets as widgets

from .. import export
from ..errors import NotEnoughSupportsError
from .overlay import guard, html_escape

__all__ = ["ExportPanel", "data_folder", "safe_stem"]


def safe_stem(name: str) -> str:
    """A file-name-safe version of a dataset name.

    Examples
    --------
    >>> safe_stem("Ni alloy / area 3")
    'Ni_alloy_area_3'
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    return stem or "image"


def data_folder(dataset) -> Path:
    """The folder of the file the dataset was read from, else the working directory."""
    source = (dataset.metadata or {}).get("source")
    return Path(source).resolve().parent if source else Path.cwd()


def data_stem(dataset) -> str:
    """Stem of the dataset's source file, else its safe name."""
    source = (dataset.metadata or {}).get("source")
    return safe_stem(Path(source).stem if source else dataset.name)


class ExportPanel(widgets.VBox):
    """Buttons and methods that write the current segmentation and session.

    Parameters
    ----------
    session : Session
    report : callable(str), optional
        Where error messages go; default this panel's output line.
    folder : str or Path, optional
        Output folder; default the data's folder (or the working directory).

    Attributes
    ----------
    folder, prefix : ipywidgets.Text
        Files are written as ``<folder>/<prefix>_labels.png`` etc.
    maps_button, csv_button, session_button : ipywidgets.Button
    written : ipywidgets.HTML
        The files written by the last export.
    """

    def __init__(self, session, *, report: Callable[[str], None] | None = None,
                 folder: str | os.PathLike | None = None) -> None:
        self.session = session
        self.report = report or self._report_here
        ds = session.dataset
        self.folder = widgets.Text(str(folder or data_folder(ds)), description="folder",
                                   layout=widgets.Layout(width="420px"))
        self.prefix = widgets.Text(data_stem(ds), description="prefix",
                                   layout=widgets.Layout(width="260px"))
        self.maps_button = widgets.Button(description="maps (PNG + TIFF)", icon="image",
                                          layout=widgets.Layout(width="160px"))
        self.csv_button = widgets.Button(description="chip table (CSV)", icon="table",
                                         layout=widgets.Layout(width="150px"))
        self.session_button = widgets.Button(description="session (JSON)", icon="save",
                                             layout=widgets.Layout(width="140px"))
        self.written = widgets.HTML("")
        self.maps_button.on_click(lambda _b: self._run("export the maps", self.export_maps))
        self.csv_button.on_click(lambda _b: self._run("export the chip table", self.export_csv))
        self.session_button.on_click(lambda _b: self._run("save the session", self.save))
        super().__init__([widgets.HTML("<b>Export</b>"), widgets.HBox([self.folder, self.prefix]),
                          widgets.HBox([self.maps_button, self.csv_button, self.session_button]),
                          self.written])

    # ------------------------------------------------------------------ Python API
    def default_prefix(self) -> Path:
        """``<folder>/<prefix>`` from the text boxes."""
        return Path(self.folder.value).expanduser() / (safe_stem(self.prefix.value))

    def _result(self):
        if self.session.result is None:
            raise NotEnoughSupportsError("Nothing to export yet. " + self.session.status())
        return self.session.result

    def export_maps(self, prefix: str | os.PathLike | None = None,
                    formats: Sequence[str] = ("png", "tif")) -> list[Path]:
        """Write ``<prefix>_labels.*`` and ``<prefix>_entropy.*`` (TIFF with the pixel size).

        Raises
        ------
        NotEnoughSupportsError
            Before the session has a segmentation.
        """
        prefix = Path(prefix) if prefix is not None else self.default_prefix()
        paths = export.write_maps(self._result(), self.session.dataset, prefix, formats=formats)
        self._written(paths)
        return paths

    def export_csv(self, path: str | os.PathLike | None = None) -> Path:
        """Write the per-chip table (class, probabilities, entropy, flags) as CSV."""
        path = Path(path) if path is not None else self.default_prefix().with_name(
            self.default_prefix().name + "_chips.csv")
        out = export.write_chip_csv(path, self._result())
        self._written([out])
        return out

    def save(self, path: str | os.PathLike | None = None, *, arrays: bool = True) -> Path:
        """Save the session JSON (and ``.npz`` reference arrays for batch mode)."""
        path = Path(path) if path is not None else self.default_prefix().with_name(
            self.default_prefix().name + "_session.json")
        out = self.session.save(path, arrays=arrays)
        written = [out] + ([out.with_suffix(".npz")] if arrays and self.session.supports else [])
        self._written(written)
        return out

    # ------------------------------------------------------------------ internals
    def _run(self, action: str, method: Callable[[], object]) -> None:
        with guard(self.report, action):
            method()

    def _written(self, paths: Sequence[Path]) -> None:
        items = "".join(f"<li><code>{html_escape(p)}</code></li>" for p in paths)
        self.written.value = f"Wrote:<ul style='margin:0'>{items}</ul>"

    def _report_here(self, message: str) -> None:
        self.written.value = f"<span style='color:#b00020'>{html_escape(message)}</span>"
