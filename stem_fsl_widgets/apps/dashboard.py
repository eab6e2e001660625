"""The Voilà dashboard: pick the demo data or upload files, then the full FewShotApp.

A layout over :class:`~stem_fsl_widgets.viewmodel.DashboardModel` (the Panel app shows the
same model): uploads open at once and show their names, a clear control resets them, an
uncalibrated image asks for its pixel size, the autosave is per user (JupyterHub user, or an
id the browser keeps) and a restore says what it brought back, with a "start over" button. A
batch panel applies the labels to other uploaded images and downloads one zip.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import ipywidgets as widgets

from ..dataset import Dataset
from ..viewmodel.dashboard import EDS_TYPES, IMAGE_TYPES, DashboardModel, autosave_dir, default_upload_mb
from ..widgets.base import html_escape, message_html
from ..widgets.batch_panel import BatchPanel

__all__ = ["Dashboard", "MAX_UPLOAD_MB", "autosave_dir"]

#: Largest upload accepted, MB (override with the environment variable SFW_MAX_UPLOAD_MB).
MAX_UPLOAD_MB = default_upload_mb()


def _upload_value(upload: widgets.FileUpload) -> tuple[str, bytes] | None:
    """(name, content) of the first uploaded file, or None."""
    files = upload.value
    if not files:
        return None
    f = files[0]
    return str(f["name"]), bytes(f["content"])


class Dashboard(widgets.VBox):
    """Data chooser + message line + the FewShotApp for the chosen data.

    Parameters
    ----------
    max_upload_mb : float
        Uploads larger than this are refused with a message.
    loader : callable, optional
        ``loader(image_path, eds_path) -> Dataset``; default :func:`stem_fsl_widgets.load`.
    demo : bool, optional
        Open the demo data at once; default from the environment variable ``SFW_DEMO=1``
        (``make dashboard`` sets it, so the main job starts on the demo data).

    Attributes
    ----------
    model : DashboardModel
    demo_button, image_upload, eds_upload, clear_button : ipywidgets
    files : ipywidgets.HTML
        Names of the uploaded files in use.
    pixel_size, pixel_unit, pixel_button : ipywidgets
        Shown while the open image has no pixel size.
    start_over : ipywidgets.Button
    message : ipywidgets.HTML
    batch : BatchPanel
        Applies the open image's labels to other uploaded images (shown with an open image).
    app : FewShotApp or None
        The app on the current data.
    """

    def __init__(self, *, max_upload_mb: float = MAX_UPLOAD_MB,
                 loader: Callable[[Path, Path | None], Dataset] | None = None,
                 demo: bool | None = None) -> None:
        from ..widgets.browser_id import BrowserId

        self.model = DashboardModel(max_upload_mb=max_upload_mb, loader=loader)
        self.app = None
        auto = widgets.Layout(width="auto")  # full labels, never "Open uploaded f…"
        self.demo_button = widgets.Button(description="Use demo data", icon="flask",
                                          button_style="info", layout=auto,
                                          tooltip="open the built-in demo image and EDS map")
        self.image_upload = widgets.FileUpload(accept=",".join(IMAGE_TYPES), multiple=False,
                                               description="Image file", layout=auto,
                                               tooltip="upload a STEM image; it opens at once")
        self.eds_upload = widgets.FileUpload(accept=",".join(EDS_TYPES), multiple=False,
                                             description="EDS file (optional)", layout=auto,
                                             tooltip="upload the EDS spectrum image of the same area")
        self.clear_button = widgets.Button(description="clear", icon="times", layout=auto,
                                           tooltip="forget the uploaded files")
        self.files = widgets.HTML("", layout=widgets.Layout(min_height="1.4em"))
        self.pixel_size = widgets.BoundedFloatText(0.1, min=1e-6, max=1e6, step=0.01,
                                                   description="pixel size",
                                                   layout=widgets.Layout(width="200px"))
        self.pixel_unit = widgets.Dropdown(options=["pm", "Å", "nm", "µm"], value="nm",
                                           layout=widgets.Layout(width="80px"))
        self.pixel_button = widgets.Button(description="set pixel size", layout=widgets.Layout(width="auto"))
        self.calibration = widgets.HBox([self.pixel_size, self.pixel_unit, self.pixel_button],
                                        layout=widgets.Layout(display="none"))
        # Its own Layout: it is hidden and shown, and a shared Layout would hide the others too.
        self.start_over = widgets.Button(description="start over", icon="eraser",
                                         layout=widgets.Layout(width="auto"),
                                         tooltip="a fresh start on this data; the old labels "
                                                 "are kept in a backup file")
        self.start_over.layout.display = "none"
        self.message = widgets.HTML("", layout=widgets.Layout(min_height="1.6em"))
        self.container = widgets.VBox([])
        self.batch = BatchPanel(self.model.batch, lambda: self.model.app)
        self.batch.layout.display = "none"  # shown with an open image whose labels it applies
        self.browser = BrowserId()

        self.demo_button.on_click(lambda _: self.open_demo())
        self.image_upload.observe(self._on_image, names="value")
        self.eds_upload.observe(self._on_eds, names="value")
        self.clear_button.on_click(lambda _: self.model.clear_uploads())
        self.pixel_button.on_click(
            lambda _: self.model.set_pixel_size(self.pixel_size.value, self.pixel_unit.value))
        self.start_over.on_click(lambda _: self.model.start_over())
        self.browser.observe(lambda ch: self.model.set_user(ch["new"]), names="browser_id")
        self.model.watch(self._on_topics)

        title = widgets.HTML("<h2 style='margin:4px 0'>STEM few-shot segmentation</h2>")
        chooser = widgets.HBox([self.demo_button, self.image_upload, self.eds_upload, self.clear_button],
                               layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__([title, chooser, self.files, self.calibration,
                          widgets.HBox([self.message, self.start_over],
                                       layout=widgets.Layout(align_items="center")),
                          self.container, self.batch, self.browser])
        self.add_class("sfw-dashboard")
        self._on_topics(frozenset({"message", "uploads"}))
        if demo if demo is not None else os.environ.get("SFW_DEMO") == "1":
            self.open_demo()

    # ------------------------------------------------------------------ actions
    def open_demo(self) -> None:
        """Open the built-in demo data."""
        self.model.open_demo()

    def open_uploads(self) -> None:
        """Open what the upload buttons hold (they open on their own; kept for scripts)."""
        image, eds = _upload_value(self.image_upload), _upload_value(self.eds_upload)
        if image is None:
            self.model.say("Upload an image file first (or use the demo data).", "error")
            return
        if eds is not None:
            self.model.eds = None
            self.model.upload_eds(*eds)
        self.model.upload_image(*image)

    def _on_image(self, change: dict) -> None:
        up = _upload_value(self.image_upload)
        if up is not None:
            self.model.upload_image(*up)

    def _on_eds(self, change: dict) -> None:
        up = _upload_value(self.eds_upload)
        if up is not None:
            self.model.upload_eds(*up)

    # ------------------------------------------------------------------ drawing
    def _on_topics(self, topics: frozenset) -> None:
        m = self.model
        if "message" in topics:
            kind = {"ok": "info"}.get(m.message.kind, m.message.kind)
            self.message.value = (f"<div class='sfw-dash-{kind}'>"
                                  f"{message_html(m.message.text, m.message.kind)}</div>")
        if "uploads" in topics:
            names = [f"image: <b>{html_escape(m.image.label)}</b>"] if m.image else []
            names += [f"EDS: <b>{html_escape(m.eds.label)}</b>"] if m.eds else []
            self.files.value = "<span class='sfw-files'>" + " · ".join(names) + "</span>"
            self.clear_button.disabled = not names
            # A FileUpload keeps its last file: reset it so the same file can be chosen again.
            for upload, kept in ((self.image_upload, m.image), (self.eds_upload, m.eds)):
                if kept is None and upload.value:
                    upload.value = ()
        if "app" in topics:
            self._show_app()
        if topics & {"calibration", "app"}:
            self.calibration.layout.display = "flex" if m.needs_pixel_size else "none"

    def _show_app(self) -> None:
        from ..widgets.app import FewShotApp

        old, self.app = self.app, None
        if old is not None:
            # Closed before it leaves the page: a figure resized to nothing while still open
            # would draw NaN paths (bqplot) on its way out.
            old.close()
        if self.model.app is not None:
            self.app = FewShotApp(self.model.app)
            self.container.children = [self.app]
        else:
            self.container.children = []
        self.start_over.layout.display = "" if self.app is not None else "none"
        self.batch.layout.display = "" if self.app is not None else "none"
