"""DashboardModel: choosing the data (demo or uploads), per-user autosave, restore, start over.

Toolkit-free, shared by the Voilà dashboard and the Panel app. An upload opens at once (there
is no separate "Open" step); an EDS file is paired only with the image it was uploaded for;
an uncalibrated image asks for its pixel size; the autosave is keyed by user (the JupyterHub
user, or an id the browser keeps) and by the data, and a restore says what it brought back.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..autosave import autosave_dir, autosave_path, restore_autosave, start_over
from ..dataset import Dataset
from ..errors import AutosaveError, InputError, SFWError
from ..session import Session
from .model import DEFAULT_CLASSES, AppModel, Message
from .text import error_message
from .watch import Watchable

__all__ = ["DashboardModel", "IMAGE_TYPES", "EDS_TYPES", "Upload", "autosave_dir", "default_upload_mb"]

_log = logging.getLogger(__name__)

IMAGE_TYPES = (".dm3", ".dm4", ".emd", ".bcf", ".tif", ".tiff", ".hspy", ".zspy", ".npy", ".npz", ".png")
EDS_TYPES = (".dm3", ".dm4", ".emd", ".bcf", ".hspy", ".zspy", ".npy", ".npz")


def default_upload_mb() -> float:
    """Largest upload accepted, MB (``$SFW_MAX_UPLOAD_MB``, default 512)."""
    try:
        return float(os.environ.get("SFW_MAX_UPLOAD_MB", "512"))
    except ValueError:
        return 512.0


@dataclass(frozen=True)
class Upload:
    """A file received from the browser: its name (never trusted as a path) and content."""

    name: str
    data: bytes

    @property
    def label(self) -> str:
        """Name and size, e.g. ``"survey.emd (2.3 MB)"``."""
        return f"{Path(self.name).name} ({len(self.data) / 1e6:.1f} MB)"


class DashboardModel(Watchable):
    """Which data is open and how it got there; makes the :class:`AppModel` for it.

    Parameters
    ----------
    max_upload_mb : float, optional
        Uploads larger than this are refused (default ``$SFW_MAX_UPLOAD_MB`` or 512).
    loader : callable, optional
        ``loader(image_path, eds_path) -> Dataset``; default :func:`stem_fsl_widgets.load`.
    autosave : bool
        Autosave sessions under :func:`autosave_dir`, one folder per user.
    user : str, optional
        An id the browser keeps (see :meth:`set_user`); the JupyterHub user wins when set.

    Attributes
    ----------
    app : AppModel or None
        The model of the open data.
    image, eds : Upload or None
        The uploaded files in use (names shown in the page).
    message : Message
    restored : str
        What the last opening restored ("Restored 10 labels saved 14:02"), or "".
    batch : BatchModel
        Images to segment with the open data's labels (one zip back).
    """

    def __init__(self, *, max_upload_mb: float | None = None,
                 loader: Callable[[Path, Path | None], Dataset] | None = None,
                 autosave: bool = True, user: str | None = None) -> None:
        self.max_upload_mb = float(max_upload_mb) if max_upload_mb is not None else default_upload_mb()
        self._loader = loader
        self.autosave = autosave
        self.user = user
        self.app: AppModel | None = None
        self.image: Upload | None = None
        self.eds: Upload | None = None
        self._eds_used = False  # the EDS upload was opened with an image already
        self.message = Message("Choose the demo data, or upload an image (and optionally its EDS "
                               "spectrum image), then click chips to label them.")
        self.restored = ""
        self._what = ""
        self._folder: Path | None = None
        from .batch import BatchModel  # (batch.py reads this module's file types)

        #: Applying the open data's labels to other uploaded images.
        self.batch = BatchModel(max_upload_mb=self.max_upload_mb)
        Watchable.__init__(self)  # topics: "app", "uploads", "message", "calibration"

    # ------------------------------------------------------------------ announcements

    def say(self, text: str, kind: str = "info") -> None:
        """Show a message in the page."""
        self.message = Message(text, kind)
        self._announce("message")

    # ------------------------------------------------------------------ who
    def set_user(self, browser_id: str | None) -> None:
        """The id the browser keeps; the open data's autosave moves to this user's folder."""
        if not browser_id or browser_id == self.user:
            return
        self.user = str(browser_id)
        app = self.app
        if app is not None and self.autosave:
            path = self.autosave_path(app.session.dataset)
            if path.exists() and not app.session.supports:
                self._open(lambda: app.session.dataset, self._what)  # this user's earlier labels
            else:
                app.session.autosave = path
                app._announce("autosave")

    def autosave_path(self, dataset: Dataset) -> Path:
        """``<autosave dir>/<user>/<data hash>.json``: per user and per data."""
        return autosave_path(dataset, self.user)

    # ------------------------------------------------------------------ opening data
    def open_demo(self) -> None:
        """Open the built-in demo data."""
        from ..datasets import demo

        self.image = self.eds = None
        self._announce("uploads")
        self._open(demo, "the demo data")

    def open_dataset(self, dataset: Dataset, what: str | None = None) -> bool:
        """Open data already in memory (e.g. files named on the command line)."""
        self.image = self.eds = None
        self._announce("uploads")
        return self._open(lambda: dataset, what or dataset.name)

    def upload_image(self, name: str, data: bytes) -> None:
        """An image file arrived: open it at once (with the EDS file uploaded for it, if any)."""
        up = self._check(name, data)
        if up is None:
            return
        note = ""
        if self.eds is not None and self._eds_used:
            # That EDS file belonged to the previous image: never pair it silently.
            note = (f" The EDS file {Path(self.eds.name).name} was for the previous image and is "
                    "not used; upload this image's EDS file if it has one.")
            self.eds, self._eds_used = None, False
        self.image = up
        self._announce("uploads")
        self._open_uploads(note)

    def upload_eds(self, name: str, data: bytes) -> None:
        """An EDS file arrived: open it with the uploaded image (or wait for the image)."""
        up = self._check(name, data)
        if up is None:
            return
        self.eds, self._eds_used = up, False
        self._announce("uploads")
        if self.image is None:
            self.say(f"{Path(name).name} will be opened with the image: now upload the image file.")
            return
        self._open_uploads("")

    def clear_uploads(self) -> None:
        """Forget both uploaded files and close their data (the autosave keeps the labels)."""
        was_upload = self.image is not None
        self.image = self.eds = None
        self._eds_used = False
        if was_upload:
            self._close_app()
        self._remove_folder()
        self._announce("uploads", "app")
        self.say("Upload choice cleared. Choose the demo data or upload an image.")

    def clear_eds(self) -> None:
        """Drop the EDS file; the image is reopened alone."""
        if self.eds is None:
            return
        self.eds, self._eds_used = None, False
        self._announce("uploads")
        if self.image is not None:
            self._open_uploads(" Opened without EDS.")

    def _check(self, name: str, data: bytes) -> Upload | None:
        name = Path(str(name)).name or "upload"
        size_mb = len(data) / 1e6
        if size_mb > self.max_upload_mb:
            self.say(f"{name} is {size_mb:.0f} MB, over the {self.max_upload_mb:.0f} MB upload limit. "
                     "Open big files from Python or with batch mode, or ask the administrator to "
                     "raise the limit (SFW_MAX_UPLOAD_MB).", "error")
            return None
        if not data:
            self.say(f"{name} is empty (0 bytes). Upload the file again.", "error")
            return None
        return Upload(name, bytes(data))

    def _open_uploads(self, note: str) -> None:
        image, eds = self.image, self.eds
        self._remove_folder()
        folder = self._folder = Path(tempfile.mkdtemp(prefix="sfw_upload_"))
        paths = []
        for up in [image] + ([eds] if eds else []):
            path = folder / up.name  # a bare name: never a client path
            path.write_bytes(up.data)
            paths.append(path)

        def load() -> Dataset:
            if self._loader is not None:
                return self._loader(paths[0], paths[1] if eds else None)
            from ..io import load as sfw_load

            return sfw_load(paths[0], eds_path=paths[1] if eds else None)

        what = image.name + (f" with {eds.name}" if eds else "")
        if self._open(load, what, note=note) and eds is not None:
            self._eds_used = True
        # The readers are done with the files (lazy EDS data stay open through their handle
        # on POSIX); a failed open leaves nothing behind either.
        if self.app is None or not self.app.session.dataset.has_eds:
            self._remove_folder()

    def _remove_folder(self) -> None:
        folder, self._folder = self._folder, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def _close_app(self) -> None:
        if self.app is not None:
            self.app.close()
        self.app = None
        self.restored = ""

    def _open(self, make: Callable[[], Dataset], what: str, *, note: str = "") -> bool:
        try:
            dataset = make()
            app = self._make_app(dataset)
            restored = self.restored
        except Exception as err:  # noqa: BLE001 - a reader crash must not show a traceback
            detail = error_message(err) if isinstance(err, SFWError) else (
                f"it is not a STEM image file this app can read ({type(err).__name__}: {err}). "
                "Check that it is one of the supported formats.")
            self.say(f"Could not open {Path(what).name if what else 'the file'}: {detail}", "error")
            return False
        self._close_app()
        self.app, self._what = app, what
        self.restored = restored
        text = f"Opened {what}." + (f" {self.restored}" if self.restored else "") + note
        if dataset.pixel_size is None:
            text += (" This image has no pixel size, so sizes are in pixels: enter the pixel size "
                     "to measure in nm.")
        self.say(text, "ok" if not note else "warning")
        self._announce("app", "uploads", "calibration")
        return True

    def _make_app(self, dataset: Dataset) -> AppModel:
        self.restored = ""
        if not self.autosave:
            return AppModel(Session(dataset))
        path = self.autosave_path(dataset)
        problem = ""
        try:
            restored = restore_autosave(path, dataset)
        except AutosaveError as err:
            # The file stays where it is (autosave pauses rather than overwrite it) until the
            # user chooses "start over", which sets it aside.
            restored, problem = None, str(err)
        if restored is not None:
            session, info = restored
            self.restored = info.message if info.n_labels else ""
            return AppModel(session)
        session = Session(dataset, autosave=path)
        model = AppModel(session, default_classes=dataset.truth_classes or DEFAULT_CLASSES)
        self.restored = problem
        return model

    def start_over(self) -> None:
        """A fresh session on the open data; the previous labels stay in a backup file."""
        app = self.app
        if app is None:
            return
        dataset, path = app.session.dataset, app.session.autosave
        if path is not None:
            try:
                start_over(path)  # moved aside, never deleted
            except OSError as err:
                self.say(f"Could not start over: the saved labels could not be set aside "
                         f"({err.strerror or err}). Nothing was changed.", "error")
                return
        session = Session(dataset, autosave=path)
        self._close_app()
        self.app = AppModel(session, default_classes=dataset.truth_classes or DEFAULT_CLASSES)
        self.say("Started over: no labels. The previous labels are kept in a backup file.", "ok")
        self._announce("app")

    # ------------------------------------------------------------------ calibration
    @property
    def needs_pixel_size(self) -> bool:
        """True while the open image has no pixel size."""
        return self.app is not None and self.app.session.dataset.pixel_size is None

    def set_pixel_size(self, value: float, unit: str = "nm") -> None:
        """Calibrate the open image (for scale bars, measurements and exports)."""
        app = self.app
        try:
            if app is None:
                raise InputError("Open an image first.")
            v = float(value)
            if not (v > 0 and v < float("inf")):
                raise InputError("The pixel size must be a positive number, e.g. 0.25 (nm per pixel).")
            unit = str(unit).strip() or "nm"
            if unit not in ("pm", "nm", "µm", "um", "Å"):
                raise InputError("Give the pixel size in pm, Å, nm or µm.")
        except (InputError, ValueError, TypeError) as err:
            self.say(f"Could not set the pixel size: {error_message(err)}", "error")
            return
        ds = app.session.dataset
        ds.pixel_size, ds.pixel_unit = v, ("µm" if unit == "um" else unit)
        self.say(f"Pixel size set to {v:g} {ds.pixel_unit}.", "ok")
        self._announce("calibration")
        app._announce("results", "image")
