"""FewShotApp: the whole notebook tool in one widget — click chips, see the segmentation.

Composition only: every part is a view of the same :class:`~stem_fsl_widgets.session.Session`
and redraws from it when it changes; the app links the parts (active class, hovered chip,
suggestions), routes progress and errors to one place, and sets up autosave.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from pathlib import Path

import ipywidgets as widgets
import numpy as np

from ..dataset import Dataset
from ..session import Session
from .classes import ClassPanel
from .export_panel import ExportPanel, data_folder, data_stem
from .grid_view import ChipGridView
from .overlay import guard, html_escape
from .results import ResultsPanel
from .spectrum import SpectrumView

__all__ = ["FewShotApp", "autosave_target", "default_autosave_path"]

DEFAULT_CLASSES = ("class 1", "class 2")
_STYLE = {"info": "color:#333", "ok": "color:#1b5e20", "error": "color:#b00020;font-weight:bold"}


def default_autosave_path(dataset: Dataset) -> Path:
    """``<data folder>/<data stem>.sfw.json``: next to the data file (or in the working dir)."""
    return data_folder(dataset) / f"{data_stem(dataset)}.sfw.json"


def autosave_target(path: Path, session: Session) -> Path:
    """Where to autosave: ``path``, unless it holds *other* work — then ``<stem>-2...``.

    A file that already holds this session's state (it was just restored from it) is
    continued. Any other existing file is left alone: a fresh session would otherwise rotate
    it to ``.bak`` at the first click and lose it at the second.
    """
    n = 1
    candidate = path
    while candidate.exists() and not _holds(candidate, session):
        n += 1
        name = path.name[: -len(".sfw.json")] if path.name.endswith(".sfw.json") else path.stem
        candidate = path.with_name(f"{name}-{n}{path.name[len(name):]}")
    return candidate


def _holds(path: Path, session: Session) -> bool:
    """Whether the session file at ``path`` has exactly this session's classes, labels, settings."""
    try:
        saved = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    mine = session.to_dict()
    keys = ("classes", "supports", "settings")
    return (isinstance(saved, dict) and all(saved.get(k) == mine[k] for k in keys)
            and saved.get("dataset", {}).get("content_hash") == mine["dataset"]["content_hash"])


class FewShotApp(widgets.VBox):
    """Few-shot segmentation of a STEM image (and EDS) in one notebook widget.

    Click chips to label them; with at least one label in each of two classes the
    segmentation, its uncertainty and the class fractions are always current — there is no
    "Run" button.

    Parameters
    ----------
    session_or_dataset : Session, Dataset or ndarray
        A session to continue, or data to start one on (default settings).
    autosave : str, Path or True, optional
        Save the session atomically after every change: to this path, or with ``True`` to
        :func:`default_autosave_path` (next to the data). An existing file there that holds
        other work is never overwritten: a numbered name is used instead (:meth:`restore`
        continues a file).
        None keeps the session's own setting.
    max_view_size : int
        Longest side of the image on screen, CSS px.

    Attributes
    ----------
    session : Session
    grid_view : ChipGridView
        Image, chip grid and overlays; clicks label chips.
    classes : ClassPanel
    spectrum : SpectrumView or None
        None when the dataset has no EDS.
    results : ResultsPanel
        Fractions, entropy, suggestions, fusion and encoding settings.
    export : ExportPanel
    message : ipywidgets.HTML
        What the session still needs, what it shows, or the last error.
    autosave_info : ipywidgets.HTML
        Where the session autosaves.

    Examples
    --------
    >>> import stem_fsl_widgets as sfw                                  # doctest: +SKIP
    >>> app = sfw.FewShotApp(sfw.datasets.demo(), autosave=True)        # doctest: +SKIP
    >>> app                                                             # doctest: +SKIP
    """

    def __init__(self, session_or_dataset: Session | Dataset | np.ndarray, *,
                 autosave: str | os.PathLike | bool | None = None, max_view_size: int = 640) -> None:
        s = session_or_dataset if isinstance(session_or_dataset, Session) else Session(session_or_dataset)
        self.session = s
        asked = default_autosave_path(s.dataset) if autosave is True else (
            Path(autosave) if autosave else None)
        if asked is not None:
            s.autosave = autosave_target(asked, s)
        self.message = widgets.HTML("", layout=widgets.Layout(min_height="1.8em"))
        self.autosave_info = widgets.HTML(self._autosave_text(asked))
        self._error = False
        if not s.classes:
            for name in DEFAULT_CLASSES:  # something to click with at once; renamable
                s.add_class(name)

        self._title = widgets.HTML("")
        # Registered before the views: a view that fails while redrawing reports *after* the
        # status line was refreshed, so its error stays visible.
        s.on_change(self._on_session_change)

        report = self.show_error
        self.grid_view = ChipGridView(s, report=report, max_view_size=max_view_size)
        self.classes = ClassPanel(s, report=report)
        self.spectrum = SpectrumView(s, report=report) if s.dataset.has_eds else None
        self.results = ResultsPanel(s, report=report)
        self.export = ExportPanel(s, report=report)
        s.progress = self.results.show_progress

        # Cross-view links; each view already redraws itself from the session.
        self._links = [widgets.link((self.classes, "active"), (self.grid_view, "active_class"))]
        self.grid_view.observe(self._on_chip, names=["hovered_chip", "selected_chip"])
        self.results.observe(self._on_suggested, names="suggested")

        side = [self.classes] + ([self.spectrum] if self.spectrum is not None else [])
        top = widgets.HBox([self.grid_view, widgets.VBox(side)],
                           layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start"))
        super().__init__([self._title, self.message, top, self.results, self.export,
                          self.autosave_info])
        self._on_session_change(s)

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
        kwargs.setdefault("autosave", path)
        return cls(Session.load(path, dataset), **kwargs)

    def save(self, path: str | os.PathLike | None = None, *, arrays: bool = True) -> Path:
        """Save the session JSON (+ ``.npz`` arrays); default name from the export panel."""
        return self.export.save(path, arrays=arrays)

    def export_maps(self, prefix: str | os.PathLike | None = None,
                    formats: tuple[str, ...] = ("png", "tif")) -> list[Path]:
        """Write segmentation and entropy maps (PNG, calibrated TIFF) as ``<prefix>_*``."""
        return self.export.export_maps(prefix, formats=formats)

    def export_csv(self, path: str | os.PathLike | None = None) -> Path:
        """Write the per-chip table as CSV."""
        return self.export.export_csv(path)

    # ------------------------------------------------------------------ messages
    def _autosave_text(self, asked: Path | None) -> str:
        path = self.session.autosave
        if path is None:
            return "<small>Autosave off (FewShotApp(..., autosave=True) saves after every change).</small>"
        text = f"Autosaving to {path}"
        if asked is not None and Path(path) != asked:
            text += (f" — {asked} already exists and is left as it is; "
                     "FewShotApp.restore(path, dataset) continues it")
        return f"<small>{html_escape(text)}.</small>"

    def show_error(self, message: str) -> None:
        """Show ``message`` as an error in the message line (until the next change)."""
        self._error = True
        self.message.value = f"<span style='{_STYLE['error']}'>⚠ {html_escape(message)}</span>"

    def show_status(self) -> None:
        """Show what the session needs next, or what the segmentation says."""
        self._error = False
        s, r = self.session, self.session.result
        text = s.status()
        if r is not None:
            text += f" {100 * r.uncertain_fraction:.0f} % of chips uncertain."
            text += "".join(f" {n}." for n in r.notes)
        style = _STYLE["ok"] if r is not None else _STYLE["info"]
        self.message.value = f"<span style='{style}'>{html_escape(text)}</span>"

    def close(self) -> None:
        """Detach every view from the session and close the widgets."""
        session = getattr(self, "session", None)  # also runs from __del__, maybe half-built
        if session is not None:
            session.on_change(self._on_session_change, remove=True)
            results = getattr(self, "results", None)
            if results is not None and session.progress == results.show_progress:
                session.progress = None
        links, self._links = getattr(self, "_links", []), []
        for link in links:
            with suppress(ValueError):  # already gone (second close, interpreter exit)
                link.unlink()
        for name in ("grid_view", "classes", "spectrum", "results", "export"):
            view = getattr(self, name, None)
            if view is not None:
                view.close()
        super().close()

    # ------------------------------------------------------------------ links
    def _on_session_change(self, _session: Session) -> None:
        with guard(self.show_error, "update the status"):
            s = self.session
            self._title.value = (f"<b>{html_escape(s.dataset.name)}</b> — {s.n_chips} chips of "
                                 f"{s.settings.chip_size} px")
            self.show_status()

    def _on_chip(self, change: dict) -> None:
        if self.spectrum is not None and change["new"] >= 0:
            self.spectrum.show_chip(change["new"])

    def _on_suggested(self, change: dict) -> None:
        with guard(self.show_error, "highlight the suggestions"):
            self.grid_view.highlight(change["new"])
