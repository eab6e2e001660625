"""What every notebook view shares: it is bound to an :class:`~stem_fsl_widgets.viewmodel.AppModel`.

A view lays out ipywidgets, turns their events into model actions, and redraws from the
model's derivations when the model announces a topic the view shows. No logic of its own.
"""

from __future__ import annotations

from ..session import Session
from ..viewmodel import AppModel
from ..viewmodel.text import html_escape

__all__ = ["ModelView", "html_escape", "message_html"]

_STYLE = {"info": "color:#333", "ok": "color:#1b5e20", "warning": "color:#8a5300;font-weight:bold",
          "error": "color:#b00020;font-weight:bold"}


def message_html(text: str, kind: str = "info") -> str:
    """A message as escaped HTML, styled by kind (info, ok, warning, error)."""
    if not text:
        return ""
    mark = "⚠ " if kind in ("warning", "error") else ""
    return (f"<span class='sfw-msg-{kind}' style='{_STYLE.get(kind, _STYLE['info'])}'>"
            f"{mark}{html_escape(text)}</span>")


class ModelView:
    """Mixin for a widget that shows part of an :class:`AppModel`.

    Subclasses set :attr:`SHOWS` (the model topics they draw) and define ``refresh(topics)``.
    """

    SHOWS: frozenset = frozenset()

    def _bind(self, model: AppModel | Session) -> AppModel:
        self._owns_model = not isinstance(model, AppModel)
        self.model = AppModel.of(model)
        self.session = self.model.session
        self.model.watch(self._on_topics)
        return self.model

    def _on_topics(self, topics: frozenset) -> None:
        if topics & self.SHOWS:
            self.refresh(topics)

    def refresh(self, topics: frozenset = frozenset()) -> None:  # pragma: no cover - abstract
        """Redraw the parts named in ``topics`` from the model."""
        raise NotImplementedError

    def _close_figures(self, *figures) -> None:
        """Close bqplot figures with their marks, axes and interaction before the view goes.

        A figure left open while its view leaves the page redraws at zero size (NaN paths).
        """
        for fig in figures:
            if fig is None:
                continue
            parts = [*fig.marks, *fig.axes, fig.interaction]
            fig.close()
            for part in parts:
                if part is not None:
                    part.close()

    def close(self) -> None:
        """Stop following the model and close the widget."""
        model = getattr(self, "model", None)
        if model is not None:
            model.watch(self._on_topics, remove=True)
            if getattr(self, "_owns_model", False):
                model.close()
        super().close()
