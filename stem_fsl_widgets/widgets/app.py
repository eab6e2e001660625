"""FewShotApp: the whole notebook tool in one widget — click chips, see the segmentation.

Layout only: every part is a view of one :class:`~stem_fsl_widgets.viewmodel.AppModel`
(active class, hovered chip, suggestions, message, progress live there), so the parts stay
linked without talking to each other, and the Panel app shows the same model the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import ipywidgets as widgets
import numpy as np

from ..dataset import Dataset
from ..session import Session
from ..viewmodel import AppModel
from ..viewmodel.text import data_folder, data_stem
from .base import html_escape, message_html
from .classes import ClassPanel
from .export_panel import ExportPanel
from .grid_view import ChipGridView
from .results import ResultsPanel
from .spectrum import SpectrumView

__all__ = ["FewShotApp", "default_autosave_path"]


def default_autosave_path(dataset: Dataset) -> Path:
    """``<data folder>/<data stem>.sfw.json``: next to the data file (or in the working dir)."""
    return data_folder(dataset) / f"{data_stem(dataset)}.sfw.json"


class FewShotApp(widgets.VBox):
    """Few-shot segmentation of a STEM image (and EDS) in one notebook widget.

    Click chips to label them; with at least one label in each of two classes the
    segmentation, its uncertainty and the class fractions are always current — there is no
    "Run" button.

    Parameters
    ----------
    source : AppModel, Session, Dataset or ndarray
        A model or session to continue, or data to start one on (default settings).
    autosave : str, Path or True, optional
        Save the session atomically after every change: to this path, or with ``True`` to
        :func:`default_autosave_path` (next to the data). A file there that holds other work
        is never overwritten: autosave pauses and says so. None keeps the session's setting.
    max_view_size : int
        Longest side of the image on screen, CSS px.

    Attributes
    ----------
    model : AppModel
    session : Session
    grid_view : ChipGridView
    classes : ClassPanel
    spectrum : SpectrumView or None
        None when the dataset has no EDS.
    results : ResultsPanel
    export : ExportPanel
    message : ipywidgets.HTML
        What the session still needs, what it shows, or the last error.
    autosave_info : ipywidgets.HTML
        Whether the session autosaves, and a visible warning when autosave is off.

    Examples
    --------
    >>> import stem_fsl_widgets as sfw                                  # doctest: +SKIP
    >>> app = sfw.FewShotApp(sfw.datasets.demo(), autosave=True)        # doctest: +SKIP
    >>> app                                                             # doctest: +SKIP
    """

    def __init__(self, source: AppModel | Session | Dataset | np.ndarray, *,
                 autosave: str | os.PathLike | bool | None = None, max_view_size: int = 640) -> None:
        if isinstance(source, AppModel):
            m, self._owns_model = source, False
        else:
            m, self._owns_model = AppModel(source if isinstance(source, Session) else Session(source)), True
        self.model = m
        self.session = s = m.session
        if m.run_on_ui is None:
            m.run_on_ui = _kernel_loop_caller()
        if autosave:
            s.autosave = default_autosave_path(s.dataset) if autosave is True else Path(autosave)
        self._title = widgets.HTML("")
        self.status = widgets.HTML("", layout=widgets.Layout(min_height="1.6em"))
        self.message = widgets.HTML("", layout=widgets.Layout(min_height="1.6em"))
        self.autosave_info = widgets.HTML("")
        m.watch(self._on_topics)

        self.grid_view = ChipGridView(m, max_view_size=max_view_size)
        self.classes = ClassPanel(m)
        self.spectrum = SpectrumView(m) if m.has_eds else None
        self.results = ResultsPanel(m)
        self.export = ExportPanel(m)

        side = [self.classes] + ([self.spectrum] if self.spectrum is not None else [])
        top = widgets.HBox([self.grid_view, widgets.VBox(side)],
                           layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start"))
        super().__init__([self._title, self.status, self.message, top, self.results, self.export,
                          self.autosave_info])
        self.add_class("sfw-app")
        self._on_topics(frozenset({"status", "message", "autosave"}))

    # ------------------------------------------------------------------ persistence
    @classmethod
    def restore(cls, path: str | os.PathLike, dataset: Dataset, **kwargs) -> FewShotApp:
        """Reopen a saved (or autosaved) session on its data: classes, labels and settings.

        The app keeps autosaving to ``path`` unless ``autosave`` says otherwise.

        Raises
        ------
        SessionFileError
            If the file is missing, malformed, or made on other data.
        """
        autosave = kwargs.pop("autosave", path)
        return cls(Session.load(path, dataset, autosave=autosave or None), **kwargs)

    def save(self, path: str | os.PathLike, *, arrays: bool = True) -> Path:
        """Save the session JSON (+ ``.npz`` arrays for batch mode)."""
        return self.export.save(path, arrays=arrays)

    def export_maps(self, prefix: str | os.PathLike, formats: tuple[str, ...] = ("png", "tif")) -> list[Path]:
        """Write segmentation and entropy maps (PNG, calibrated TIFF) as ``<prefix>_*``."""
        return self.export.export_maps(prefix, formats=formats)

    def export_csv(self, path: str | os.PathLike) -> Path:
        """Write the per-chip table as CSV."""
        return self.export.export_csv(path)

    # ------------------------------------------------------------------ messages
    def show_error(self, message: str) -> None:
        """Show ``message`` as an error in the message line."""
        self.model.say(message, "error")

    def _on_topics(self, topics: frozenset) -> None:
        m = self.model
        if "status" in topics:
            self._title.value = f"<b>{html_escape(m.title)}</b>"
            self.status.value = message_html(m.status(), "ok" if m.session.result is not None else "info")
        if "message" in topics:
            self.message.value = message_html(m.message.text, m.message.kind)
        if "autosave" in topics or "status" in topics:
            warning = m.autosave_warning
            self.autosave_info.value = (message_html(warning, "warning") if warning
                                        else f"<small>{html_escape(m.autosave_text)}</small>")

    def close(self) -> None:
        """Detach every view from the model and close the widgets."""
        model = getattr(self, "model", None)  # also runs from __del__, maybe half-built
        if model is not None:
            model.watch(self._on_topics, remove=True)
        for name in ("grid_view", "classes", "spectrum", "results", "export"):
            view = getattr(self, name, None)
            if view is not None:
                view.close()
        if model is not None and getattr(self, "_owns_model", False):
            model.close()
        super().close()


def _kernel_loop_caller():
    """``fn -> None`` that runs ``fn`` on the kernel's running event loop; None without one.

    In a Jupyter or Voilà kernel the loop is running, so pixel maps are computed in the
    background and the widgets are updated on the loop's thread; tests that drive the
    handlers directly have no running loop and stay synchronous.
    """
    import asyncio

    try:
        loop = asyncio.get_running_loop()  # a kernel runs cells inside its loop
    except RuntimeError:
        return None
    return lambda fn: loop.call_soon_threadsafe(fn)
