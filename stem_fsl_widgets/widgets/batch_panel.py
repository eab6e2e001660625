"""BatchPanel: apply the open image's labels to other uploaded images, download one zip.

A layout over :class:`~stem_fsl_widgets.viewmodel.BatchModel`; the Panel app shows the same
model. The run happens off the kernel's message loop (so the progress bar moves and the page
answers) and the zip reaches the browser as a download, never a server folder.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets

from ..viewmodel import AppModel, BatchModel
from ..viewmodel.dashboard import IMAGE_TYPES
from .base import html_escape, message_html
from .download import Downloader

__all__ = ["BatchPanel"]


class BatchPanel(widgets.VBox):
    """Choose images, apply the labels, follow the progress, download the zip.

    Parameters
    ----------
    model : BatchModel
    app : callable
        ``app() -> AppModel or None``: the open data whose labels are applied.

    Attributes
    ----------
    upload : ipywidgets.FileUpload
        Several images at once.
    files : ipywidgets.HTML
        Names and sizes of the chosen images.
    clear_button, apply_button, cancel_button, download_button : ipywidgets.Button
    bar : ipywidgets.IntProgress
    progress_text, message : ipywidgets.HTML
    downloader : Downloader
    """

    def __init__(self, model: BatchModel, app: Callable[[], AppModel | None]) -> None:
        from .app import _kernel_loop_caller

        self.model, self._app = model, app
        if model.run_on_ui is None:
            model.run_on_ui = _kernel_loop_caller()
        auto = widgets.Layout(width="auto")
        self.upload = widgets.FileUpload(accept=",".join(IMAGE_TYPES), multiple=True,
                                         description="Images", layout=auto,
                                         tooltip="choose images taken like this one (same pixel size)")
        self.clear_button = widgets.Button(description="clear images", icon="times", layout=auto,
                                           tooltip="forget the chosen images")
        self.apply_button = widgets.Button(description="apply labels to these images", icon="play",
                                           button_style="primary", layout=auto,
                                           tooltip="segment every chosen image with this image's labels")
        self.cancel_button = widgets.Button(description="cancel", icon="stop", layout=auto,
                                            tooltip="stop after the image being segmented")
        self.download_button = widgets.Button(description="download zip", icon="download",
                                              layout=auto, tooltip="maps, tables and summary.csv")
        self.files = widgets.HTML("", layout=widgets.Layout(min_height="1.4em"))
        self.bar = widgets.IntProgress(value=0, min=0, max=1, layout=widgets.Layout(width="260px"))
        self.progress_text = widgets.HTML("")
        self.message = widgets.HTML("", layout=widgets.Layout(min_height="1.4em"))
        self.downloader = Downloader()

        self.upload.observe(self._on_upload, names="value")
        self.clear_button.on_click(lambda _: self.model.clear())
        self.apply_button.on_click(lambda _: self.model.start(self._app()))
        self.cancel_button.on_click(lambda _: self.model.cancel())
        self.download_button.on_click(lambda _: self.download())
        model.watch(self._on_topics)
        super().__init__([
            widgets.HTML("<b>Batch</b>: apply these labels to other images of the same kind"),
            widgets.HBox([self.upload, self.clear_button, self.apply_button, self.cancel_button],
                         layout=widgets.Layout(flex_flow="row wrap")),
            self.files,
            widgets.HBox([self.bar, self.progress_text, self.download_button],
                         layout=widgets.Layout(align_items="center")),
            self.message, self.downloader])
        self.add_class("sfw-batch")
        self._on_topics(frozenset({"files", "progress", "result", "message"}))

    def _on_upload(self, change: dict) -> None:
        files = self.upload.value
        if files:
            self.model.set_files([(str(f["name"]), bytes(f["content"])) for f in files])

    def download(self) -> None:
        """Send the last batch's zip to the browser."""
        d = self.model.result
        if d is None:
            self.model.say("No batch result yet: choose images and apply the labels first.", "error")
            return
        self.downloader.send_file(d)
        self.model.say(f"Downloading {d.filename} ({len(d.data) / 1e6:.1f} MB).", "ok")

    def refresh_buttons(self) -> None:
        """Enable what can be done now ("apply" says itself what is missing, e.g. labels)."""
        on = self.model.controls
        for widget, name in ((self.upload, "choose"), (self.apply_button, "apply"),
                             (self.cancel_button, "cancel"), (self.clear_button, "clear"),
                             (self.download_button, "download")):
            widget.disabled = not on[name]

    def _on_topics(self, topics: frozenset) -> None:
        m = self.model
        if "files" in topics:
            self.files.value = f"<span class='sfw-batch-files'>{html_escape(m.files_text)}</span>"
            if not m.files and self.upload.value:
                self.upload.value = ()  # so the same files can be chosen again
        if "progress" in topics:
            self.bar.max = max(1, m.total)
            self.bar.value = m.done
            text = html_escape(m.progress_text)
            self.progress_text.value = f"<span class='sfw-batch-progress'>{text}</span>"
        if "message" in topics:
            self.message.value = (f"<div class='sfw-batch-message'>"
                                  f"{message_html(m.message.text, m.message.kind)}</div>")
        self.refresh_buttons()

    def close(self) -> None:
        """Stop following the model and close the widgets."""
        self.model.watch(self._on_topics, remove=True)
        self.downloader.close()
        super().close()
