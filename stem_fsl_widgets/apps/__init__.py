"""Apps over a :class:`~stem_fsl_widgets.Session`: the Panel app (and, later, others).

Nothing heavy is imported here: ``stem_fsl_widgets.apps.PanelApp`` loads Panel and Bokeh on
first access only.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {"PanelApp": "panel_app", "create_app": "panel_app", "serve": "panel_app"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
