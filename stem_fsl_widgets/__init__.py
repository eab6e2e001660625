"""stem_fsl_widgets: few-shot segmentation of STEM images (and EDS) in a handful of clicks.

The backend (this namespace's eager imports) needs only numpy, scipy and torch; widgets and
apps are imported on first use, so scripts and batch jobs never load Jupyter.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

from .chips import ChipGrid, chip_spectra  # noqa: E402
from .classify import Result  # noqa: E402
from .dataset import Dataset  # noqa: E402
from .eds import EDSEncoder  # noqa: E402
from .encoders import available_encoders, get_encoder, register_encoder  # noqa: E402
from .errors import (  # noqa: E402
    CalibrationError,
    FileFormatError,
    GridError,
    InputError,
    NotEnoughSupportsError,
    SessionFileError,
    SFWError,
    WeightsError,
)
from .session import PALETTE, Session, Settings  # noqa: E402

# Lazily imported names: attribute → module (keeps Jupyter out of plain scripts).
_LAZY = {
    "datasets": ".datasets",
    "load": ".io",
    "FewShotApp": ".widgets.app",
    "segment_files": ".batch",
}

__all__ = [
    "CalibrationError", "ChipGrid", "Dataset", "EDSEncoder", "FileFormatError", "GridError",
    "InputError", "NotEnoughSupportsError", "PALETTE", "Result", "SFWError", "Session",
    "SessionFileError", "Settings", "WeightsError", "available_encoders", "chip_spectra",
    "get_encoder", "register_encoder", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod = import_module(_LAZY[name], __name__)
        value = mod if name == "datasets" else getattr(mod, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'stem_fsl_widgets' has no attribute {name!r}")
