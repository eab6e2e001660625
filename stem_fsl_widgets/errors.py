"""Exceptions with messages that say what was wrong and what to do.

Every error the toolkit raises on bad input derives from :class:`SFWError`, so an app can
catch one type, show ``str(err)`` to the user and keep going with the user's labels intact.
"""

from __future__ import annotations


class SFWError(Exception):
    """Base class of every error raised on bad input or an impossible request."""


class InputError(SFWError, ValueError):
    """The data given (image, EDS cube, parameters) cannot be used as it is."""


class GridError(InputError):
    """The chip size or stride does not fit the image."""


class CalibrationError(InputError):
    """The image and EDS cube do not describe the same field of view, or an axis is wrong."""


class NotEnoughSupportsError(SFWError, ValueError):
    """Classification needs at least one labelled chip in at least two classes."""


class SessionFileError(SFWError, ValueError):
    """A saved session file is malformed, from a newer schema, or for different data."""


class WeightsError(SFWError, RuntimeError):
    """Pretrained encoder weights are missing or not a valid state dict."""


class FileFormatError(SFWError, ValueError):
    """A data file could not be read or holds nothing usable."""


class DataTooLargeError(FileFormatError):
    """A file declares more pixels or voxels than the configured caps (see :mod:`.limits`)."""


class ExportPathError(InputError):
    """An export path leaves the export root (``..``, absolute, ``~``, or through a symlink)."""


class AutosaveError(SFWError, RuntimeError):
    """An autosave could not be written or restored; the labels in memory are intact."""


class ConcurrentWriterError(AutosaveError):
    """Another tab, kernel or user wrote the same autosave file since this session last did."""


class WriteError(SFWError, OSError):
    """A file could not be written (full disk, read-only or missing folder, no permission).

    Also an :class:`OSError` (with the original ``errno``), so code that handles OSError keeps
    working; ``reason`` is the system's short explanation ("No space left on device").
    """

    reason: str = ""
