"""Jupyter widgets for stem_fsl_widgets (views of a Session; no science here).

Submodules are imported on first attribute access, so ``import stem_fsl_widgets.widgets``
does not load anywidget/ipywidgets until a widget is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {"ChipCanvas": "canvas", "Modifiers": "canvas", "chip_cells": "canvas"}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
