"""The id a browser keeps for this app (per-user autosave on a shared server account)."""

from __future__ import annotations

from pathlib import Path

import anywidget
import traitlets

__all__ = ["BrowserId"]


class BrowserId(anywidget.AnyWidget):
    """Invisible widget; :attr:`browser_id` is set by the page from its local storage."""

    _esm = Path(__file__).with_name("browser_id.js")
    browser_id = traitlets.Unicode("").tag(sync=True)
