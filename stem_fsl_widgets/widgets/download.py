"""A browser download from Python: the bytes go to the page, never to a server folder."""

from __future__ import annotations

from pathlib import Path

import anywidget
import traitlets

from ..viewmodel import Download

__all__ = ["Downloader"]


class Downloader(anywidget.AnyWidget):
    """An invisible widget that makes the browser save files sent from Python.

    :meth:`send_file` sends the name, MIME type and content (one binary buffer) to every
    open view of the widget, which saves it as a download. Nothing is written on the server.

    Attributes
    ----------
    delivered : int
        Downloads the browser confirmed (for tests and diagnostics).
    sent : list of str
        File names sent, in order.
    """

    _esm = Path(__file__).with_name("download.js")
    delivered = traitlets.Int(0).tag(sync=True)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sent: list[str] = []

    def send_file(self, download: Download | None) -> None:
        """Offer ``download`` to the browser (None: nothing to send)."""
        if download is None:
            return
        self.sent.append(download.filename)
        self.send({"event": "download", "filename": download.filename, "mime": download.mime},
                  buffers=[download.data])
