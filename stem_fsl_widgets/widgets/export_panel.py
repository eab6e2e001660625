"""Downloads: maps, tables, measurements and the session reach the user through the browser.

The files are made in memory by the model (:meth:`AppModel.download`) and handed to the
browser; nothing is written to a server folder a viewer could choose. Python users can still
write files where they like with :meth:`ExportPanel.export_maps` and friends.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import ipywidgets as widgets

from .. import export
from ..errors import NotEnoughSupportsError
from ..session import Session
from ..viewmodel import DOWNLOADS, AppModel
from .base import ModelView
from .download import Downloader

__all__ = ["ExportPanel"]


class ExportPanel(ModelView, widgets.VBox):
    """Download buttons (one file, or everything as a zip) and the Python export API.

    Parameters
    ----------
    model : AppModel or Session

    Attributes
    ----------
    what : ipywidgets.Dropdown
        Which file the "download" button delivers.
    download_button, zip_button : ipywidgets.Button
    downloader : Downloader
        Hands the bytes to the browser.
    """

    SHOWS = frozenset()

    def __init__(self, model: AppModel | Session) -> None:
        self._bind(model)
        options = [(f"{DOWNLOADS[k][0]} ({k.rsplit('.', 1)[1].upper()})", k)
                   for k in DOWNLOADS if k != "all.zip"]
        self.what = widgets.Dropdown(options=options, value="labels.png",
                                     layout=widgets.Layout(width="360px"))
        self.download_button = widgets.Button(description="download", icon="download",
                                              layout=widgets.Layout(width="120px"))
        self.zip_button = widgets.Button(description="download all (zip)", icon="file-archive-o",
                                         layout=widgets.Layout(width="170px"))
        self.downloader = Downloader()
        self.download_button.on_click(lambda _b: self.download(self.what.value))
        self.zip_button.on_click(lambda _b: self.download("all.zip"))
        super().__init__([widgets.HTML("<b>Download</b>"),
                          widgets.HBox([self.what, self.download_button, self.zip_button],
                                       layout=widgets.Layout(flex_flow="row wrap")),
                          self.downloader])

    def refresh(self, topics: frozenset = frozenset()) -> None:
        """Nothing to redraw: the files are made when asked for."""

    def download(self, kind: str) -> None:
        """Send the file ``kind`` (a key of :data:`~stem_fsl_widgets.viewmodel.DOWNLOADS`)."""
        d = self.model.download(kind)
        if d is not None:
            self.downloader.send_file(d)
            self.model.say(f"Downloading {d.filename} ({len(d.data) / 1e3:.0f} kB).", "ok")

    def close(self) -> None:
        """Close the widgets."""
        self.downloader.close()
        super().close()

    # ------------------------------------------------------------------ Python API
    def _result(self):
        if self.session.result is None:
            raise NotEnoughSupportsError("Nothing to export yet. " + self.session.status())
        return self.session.result

    def export_maps(self, prefix: str | os.PathLike,
                    formats: Sequence[str] = ("png", "tif")) -> list[Path]:
        """Write ``<prefix>_labels.*`` and ``<prefix>_entropy.*`` (TIFF with the pixel size).

        Raises
        ------
        NotEnoughSupportsError
            Before the session has a segmentation.
        """
        return export.write_maps(self._result(), self.session.dataset, Path(prefix), formats=formats)

    def export_csv(self, path: str | os.PathLike) -> Path:
        """Write the per-chip table (class, probabilities, entropy, flags) as CSV."""
        return export.write_chip_csv(Path(path), self._result())

    def save(self, path: str | os.PathLike, *, arrays: bool = True) -> Path:
        """Save the session JSON (and ``.npz`` reference arrays for batch mode)."""
        return self.session.save(Path(path), arrays=arrays)
