"""PanelBatch: the Panel twin of the notebook BatchPanel (apply the labels to other images).

A layout over :class:`~stem_fsl_widgets.viewmodel.BatchModel`. In a server session the run
happens in a worker thread and its progress comes back through the document's next-tick
callback (Bokeh's safe way back from a thread); the zip is a browser download.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import panel as pn

from stem_fsl_widgets.viewmodel import AppModel, BatchModel
from stem_fsl_widgets.viewmodel.dashboard import IMAGE_TYPES
from stem_fsl_widgets.viewmodel.text import html_escape

__all__ = ["PanelBatch"]

_KIND = {"info": "light", "ok": "success", "warning": "warning", "error": "danger"}


class PanelBatch(pn.viewable.Viewer):
    """Choose images, apply the labels, follow the progress, download the zip.

    Parameters
    ----------
    model : BatchModel
    app : callable
        ``app() -> AppModel or None``: the open data whose labels are applied.

    Attributes
    ----------
    file_input : panel.widgets.FileInput
        Several images at once.
    files, progress_text : panel.pane.HTML
    clear_button, apply_button, cancel_button : panel.widgets.Button
    progress : panel.indicators.Progress
    download_button : panel.widgets.FileDownload
    message : panel.pane.Alert
    """

    def __init__(self, model: BatchModel, app: Callable[[], AppModel | None], **params: Any) -> None:
        super().__init__(**params)
        self.model, self._app = model, app
        doc = pn.state.curdoc
        if model.run_on_ui is None and doc is not None and doc.session_context is not None:
            model.run_on_ui = doc.add_next_tick_callback
        self.file_input = pn.widgets.FileInput(accept=",".join(IMAGE_TYPES), multiple=True,
                                               name="Images", width=240,
                                               css_classes=["sfw-batch-input"])
        self.clear_button = pn.widgets.Button(name="Clear images", width=110)
        self.apply_button = pn.widgets.Button(name="Apply labels to these images",
                                              button_type="primary", width=230)
        self.cancel_button = pn.widgets.Button(name="Cancel", width=80)
        self.files = pn.pane.HTML("&nbsp;", css_classes=["sfw-batch-files"], margin=(0, 10))
        self.progress = pn.indicators.Progress(value=0, max=1, width=240, height=20)
        self.progress_text = pn.pane.HTML("&nbsp;", css_classes=["sfw-batch-progress"], width=300)
        self.download_button = pn.widgets.FileDownload(
            callback=self._download, filename="batch.zip", label="Download zip", width=140,
            embed=False)
        self.message = pn.pane.Alert("", alert_type="light", css_classes=["sfw-batch-message"],
                                     margin=(0, 10))
        self.file_input.param.watch(self._on_files, "value")
        self.clear_button.on_click(lambda e: self.model.clear())
        self.apply_button.on_click(lambda e: self.model.start(self._app()))
        self.cancel_button.on_click(lambda e: self.model.cancel())
        model.watch(self._on_topics)
        self._layout = pn.Card(
            pn.Row(self.file_input, self.clear_button, self.apply_button, self.cancel_button),
            self.files, pn.Row(self.progress, self.progress_text, self.download_button),
            self.message, title="Batch: apply these labels to other images", width=900,
            css_classes=["sfw-batch"])
        self._on_topics(frozenset({"files", "progress", "result", "message"}))

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _on_files(self, event: Any) -> None:
        values = event.new
        if not values:
            return
        names = self.file_input.filename
        if not isinstance(values, list):  # one file chosen: Panel gives bytes and a str
            values, names = [values], [names]
        self.model.set_files([(str(n or "image"), bytes(v)) for n, v in zip(names, values, strict=True)])

    def _download(self) -> io.BytesIO | None:
        d = self.model.result
        if d is None:
            self.model.say("No batch result yet: choose images and apply the labels first.", "error")
            return None
        self.model.say(f"Downloading {d.filename} ({len(d.data) / 1e6:.1f} MB).", "ok")
        return io.BytesIO(d.data)

    def _on_topics(self, topics: frozenset) -> None:
        m = self.model
        if "files" in topics:
            self.files.object = html_escape(m.files_text) or "&nbsp;"
        if "progress" in topics:
            self.progress.param.update(max=max(1, m.total), value=m.done)
            self.progress_text.object = html_escape(m.progress_text) or "&nbsp;"
        if "result" in topics and m.result is not None:
            self.download_button.filename = m.result.filename
        if "message" in topics:
            self.message.param.update(object=html_escape(m.message.text) or "&nbsp;",
                                      alert_type=_KIND.get(m.message.kind, "light"))
        on = m.controls
        for widget, name in ((self.file_input, "choose"), (self.apply_button, "apply"),
                             (self.cancel_button, "cancel"), (self.clear_button, "clear"),
                             (self.download_button, "download")):
            widget.disabled = not on[name]

    def close(self) -> None:
        """Stop following the model."""
        self.model.watch(self._on_topics, remove=True)
