"""The Voilà dashboard: pick the demo data or upload files, then the full FewShotApp.

For people who never write code: every failure becomes a readable message on the page, and the
labels a user made survive a bad file, a reload and a kernel restart (each dataset autosaves to
a file keyed by its content, restored when the same data is opened again).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import ipywidgets as widgets

from ..dataset import Dataset
from ..errors import SFWError
from ..session import Session

__all__ = ["Dashboard", "MAX_UPLOAD_MB", "autosave_dir"]

#: Largest upload accepted, MB (override with the environment variable SFW_MAX_UPLOAD_MB).
MAX_UPLOAD_MB = float(os.environ.get("SFW_MAX_UPLOAD_MB", "512"))

IMAGE_TYPES = ".dm3,.dm4,.emd,.bcf,.tif,.tiff,.hspy,.zspy,.npy,.npz,.png"
EDS_TYPES = ".dm3,.dm4,.emd,.bcf,.hspy,.zspy,.npy,.npz"


def autosave_dir() -> Path:
    """Where the dashboard autosaves sessions: ``$SFW_AUTOSAVE_DIR`` or ``~/.stem_fsl_widgets``."""
    return Path(os.environ.get("SFW_AUTOSAVE_DIR", Path.home() / ".stem_fsl_widgets" / "autosave"))


def _upload_value(upload: widgets.FileUpload) -> tuple[str, bytes] | None:
    """(name, content) of the first uploaded file, or None."""
    files = upload.value
    if not files:
        return None
    f = files[0]
    return str(f["name"]), bytes(f["content"])


class Dashboard(widgets.VBox):
    """Data chooser + message line + the FewShotApp for the chosen data.

    Parameters
    ----------
    max_upload_mb : float
        Uploads larger than this are refused with a message.
    loader : callable, optional
        ``loader(image_path, eds_path) -> Dataset``; default :func:`stem_fsl_widgets.load`.
    demo : bool, optional
        Open the demo data at once; default from the environment variable ``SFW_DEMO=1``
        (``make dashboard`` sets it, so the main job starts on the demo data).

    Attributes
    ----------
    demo_button, image_upload, eds_upload, open_button : ipywidgets
    message : ipywidgets.HTML
    app : FewShotApp or None
        The app on the current data.
    """

    def __init__(self, *, max_upload_mb: float = MAX_UPLOAD_MB,
                 loader: Callable[[Path, Path | None], Dataset] | None = None,
                 demo: bool | None = None) -> None:
        self.max_upload_mb = float(max_upload_mb)
        self._loader = loader
        self.app = None
        auto = widgets.Layout(width="auto")  # full labels, never "Open uploaded f…"
        self.demo_button = widgets.Button(description="Use demo data", icon="flask",
                                          button_style="info", layout=auto)
        self.image_upload = widgets.FileUpload(accept=IMAGE_TYPES, multiple=False,
                                               description="Image file", layout=auto)
        self.eds_upload = widgets.FileUpload(accept=EDS_TYPES, multiple=False,
                                             description="EDS file (optional)", layout=auto)
        self.open_button = widgets.Button(description="Open uploaded files", icon="folder-open",
                                          layout=auto)
        self.message = widgets.HTML("Choose the demo data, or upload an image (and optionally its "
                                    "EDS spectrum image), then click chips to label them.")
        self.container = widgets.VBox([])
        self.demo_button.on_click(lambda _: self.open_demo())
        self.open_button.on_click(lambda _: self.open_uploads())
        title = widgets.HTML("<h2 style='margin:4px 0'>STEM few-shot segmentation</h2>")
        chooser = widgets.HBox([self.demo_button, self.image_upload, self.eds_upload, self.open_button],
                               layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__([title, chooser, self.message, self.container])
        self.add_class("sfw-dashboard")
        if demo if demo is not None else os.environ.get("SFW_DEMO") == "1":
            self.open_demo()

    # ------------------------------------------------------------------ messages
    def _say(self, text: str, kind: str = "info") -> None:
        from html import escape

        style = {"info": "color:#333", "error": "color:#b00020;font-weight:bold"}[kind]
        self.message.value = f"<div class='sfw-dash-{kind}' style='{style}'>{escape(text)}</div>"

    # ------------------------------------------------------------------ opening data
    def open_demo(self) -> None:
        """Open the built-in demo data."""
        from ..datasets import demo

        self._open(lambda: demo(), "the demo data")

    def open_uploads(self) -> None:
        """Read the uploaded image (and EDS file) and open them; errors become messages."""
        image = _upload_value(self.image_upload)
        if image is None:
            self._say("Upload an image file first (or use the demo data).", "error")
            return
        eds = _upload_value(self.eds_upload)
        for name, content in [image] + ([eds] if eds else []):
            size_mb = len(content) / 1e6
            if size_mb > self.max_upload_mb:
                self._say(f"{name} is {size_mb:.0f} MB, over the {self.max_upload_mb:.0f} MB upload "
                          "limit. Use the Python API or batch mode for big files, or raise "
                          "SFW_MAX_UPLOAD_MB.", "error")
                return
            if not content:
                self._say(f"{name} is empty (0 bytes). Upload the file again.", "error")
                return
        folder = Path(tempfile.mkdtemp(prefix="sfw_upload_"))
        paths = []
        for name, content in [image] + ([eds] if eds else []):
            path = folder / Path(name).name  # never trust a client path
            path.write_bytes(content)
            paths.append(path)

        def load() -> Dataset:
            if self._loader is not None:
                return self._loader(paths[0], paths[1] if eds else None)
            from ..io import load as sfw_load

            return sfw_load(paths[0], eds_path=paths[1] if eds else None)

        self._open(load, image[0])

    def _open(self, make: Callable[[], Dataset], what: str) -> None:
        self._say(f"Opening {what} …")
        try:
            dataset = make()
            app = self._make_app(dataset)
        except SFWError as err:
            self._say(f"Could not open {what}: {err}", "error")
            return
        except Exception as err:  # a reader crash must not show a traceback to the user
            self._say(f"Could not open {what}: {type(err).__name__}: {err}. "
                      "Check that it is a STEM image file of a supported format.", "error")
            return
        self.app = app
        self.container.children = [app]
        restored = len(app.session.supports)
        self._say(f"Opened {what}." + (f" Restored {restored} labelled chips from the last visit."
                                       if restored else ""))

    def _make_app(self, dataset: Dataset):
        from ..widgets.app import FewShotApp

        path = autosave_dir() / f"{dataset.content_hash}.json"
        if path.exists():
            try:
                return FewShotApp(Session.load(path, dataset), autosave=path)
            except SFWError:
                pass  # an unreadable autosave is kept as is; start fresh beside it
        session = Session(dataset)
        for name in dataset.truth_classes or ():  # the demo names its phases: offer them
            session.add_class(name)
        return FewShotApp(session, autosave=path)
