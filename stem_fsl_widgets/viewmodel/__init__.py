"""The apps' view-model: UI state, derivations and actions that know no widget toolkit.

Layer: backend → session → **viewmodel** → widgets / apps. The notebook widgets and the Panel
app are layouts bound to an :class:`AppModel` (one dataset) and a :class:`DashboardModel`
(choosing data, uploads, autosave), the way HyperSpy keeps one model and lets each toolkit
render it. Nothing here imports ipywidgets, Panel or Bokeh.
"""

from .batch import BatchModel
from .dashboard import DashboardModel, Upload
from .drawing import Overlay, changed_rows, chip_overlay, display_image, entropy_histogram, rgba
from .model import (
    CHIP_SIZES,
    DEFAULT_CLASSES,
    DOWNLOADS,
    TOPICS,
    AppModel,
    Download,
    Layers,
    Message,
    next_palette_colour,
)
from .spectra import SpectrumPanel, class_mean_spectra, element_markers
from .text import describe_chip, error_message, guard, html_escape

__all__ = [
    "AppModel",
    "BatchModel",
    "CHIP_SIZES",
    "DEFAULT_CLASSES",
    "DOWNLOADS",
    "DashboardModel",
    "Download",
    "Layers",
    "Message",
    "Overlay",
    "SpectrumPanel",
    "TOPICS",
    "Upload",
    "changed_rows",
    "chip_overlay",
    "class_mean_spectra",
    "describe_chip",
    "display_image",
    "element_markers",
    "entropy_histogram",
    "error_message",
    "guard",
    "html_escape",
    "next_palette_colour",
    "rgba",
]
