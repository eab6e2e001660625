"""BatchModel: apply the open session's labels to a set of uploaded images, one zip back.

Toolkit-free, shared by the Voilà dashboard and the Panel app. The user picks several image
files; "apply" freezes the open session's supports, scalers and prototypes into a
:class:`~stem_fsl_widgets.batch.Reference` (the same one ``stem-fsl segment`` uses) and
segments each image in turn, off the UI thread when the app gives a ``run_on_ui`` hook. Each
image gives its maps, per-chip table and measurements; ``summary.csv`` lists every image (a
file that fails is an error row, the others go on). Nothing is written on the server but the
uploads' private temporary folders, each deleted once its file is read.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import SFWError
from .dashboard import IMAGE_TYPES, Upload, default_upload_mb
from .model import AppModel, Download, Message
from .text import error_message
from .watch import Watchable

__all__ = ["BatchModel", "BATCH_FILES", "default_batch_files", "default_batch_mb"]

_log = logging.getLogger(__name__)

#: What the zip holds per image (``<name>/<name>_<kind>``); the summary is ``summary.csv``.
BATCH_FILES = ("labels.png", "entropy.png", "labels.tif", "chips.csv", "measurements.csv")


def default_batch_files() -> int:
    """Most images in one batch (``$SFW_MAX_BATCH_FILES``, default 50)."""
    try:
        return max(1, int(os.environ.get("SFW_MAX_BATCH_FILES", "50")))
    except ValueError:
        return 50


def default_batch_mb() -> float:
    """Most megabytes of images in one batch, all files together (``$SFW_MAX_BATCH_MB``, default 1024)."""
    try:
        return float(os.environ.get("SFW_MAX_BATCH_MB", "1024"))
    except ValueError:
        return 1024.0


class BatchModel(Watchable):
    """Images to segment like the open session, the run's progress, and the zip it made.

    Parameters
    ----------
    max_upload_mb : float, optional
        Largest single image (default ``$SFW_MAX_UPLOAD_MB`` or 512).
    max_files : int, optional
        Most images per batch (default ``$SFW_MAX_BATCH_FILES`` or 50).
    max_total_mb : float, optional
        Most megabytes of images per batch (default ``$SFW_MAX_BATCH_MB`` or 1024).
    loader : callable, optional
        ``loader(name, data) -> Dataset``; default :func:`stem_fsl_widgets.io.load_upload`.

    Attributes
    ----------
    files : list of Upload
        The images chosen (names shown in the page).
    running : bool
    done, total : int
        Images finished and images in the running (or last) batch.
    current : str
        Name of the image being segmented ("" when idle).
    rows : list of dict
        ``summary.csv`` rows of the last batch (``name``, ``file``, ``status``, ``error``,
        fractions, measurements...).
    result : Download or None
        The last batch's zip.
    message : Message
    run_on_ui : callable or None
        ``run_on_ui(fn)`` runs ``fn`` on the UI's thread; with it a batch runs in a worker
        thread and the page stays live. Without it :meth:`start` runs to the end first.
    """

    def __init__(self, *, max_upload_mb: float | None = None, max_files: int | None = None,
                 max_total_mb: float | None = None,
                 loader: Callable[[str, bytes], Any] | None = None) -> None:
        self.max_upload_mb = float(max_upload_mb) if max_upload_mb is not None else default_upload_mb()
        self.max_files = int(max_files) if max_files is not None else default_batch_files()
        self.max_total_mb = float(max_total_mb) if max_total_mb is not None else default_batch_mb()
        self._loader = loader
        self.files: list[Upload] = []
        self.running = False
        self.done = 0
        self.total = 0
        self.current = ""
        self.rows: list[dict] = []
        self.result: Download | None = None
        self.message = Message("Choose images taken like this one, then apply the labels to "
                               "all of them.")
        self.run_on_ui: Callable[[Callable[[], None]], None] | None = None
        self._cancel = threading.Event()
        Watchable.__init__(self)  # topics: "files", "progress", "message", "result"

    # ------------------------------------------------------------------ state for the views
    def say(self, text: str, kind: str = "info") -> None:
        """Show a message under the batch controls."""
        self.message = Message(text, kind)
        self._announce("message")

    @property
    def progress(self) -> float:
        """Share of the batch done, in [0, 1]."""
        return self.done / self.total if self.total else 0.0

    @property
    def progress_text(self) -> str:
        """E.g. ``"3 of 10 images · segmenting survey_04.dm4"``."""
        if not self.total:
            return ""
        text = f"{self.done} of {self.total} images"
        if self.running and self.current:
            text += f" · segmenting {self.current}"
        return text

    @property
    def files_text(self) -> str:
        """The chosen files, e.g. ``"3 images: a.tif (1.2 MB), b.tif (1.2 MB), c.tif (1.3 MB)"``."""
        if not self.files:
            return ""
        n = len(self.files)
        return f"{n} image{'s' if n > 1 else ''}: " + ", ".join(f.label for f in self.files)

    @property
    def controls(self) -> dict[str, bool]:
        """Which controls are enabled now: ``choose``, ``apply``, ``cancel``, ``clear``, ``download``.

        "apply" is enabled with files chosen; it says itself what else is missing (labels).
        """
        idle = not self.running
        return {"choose": idle, "apply": idle and bool(self.files), "cancel": self.running,
                "clear": idle and bool(self.files), "download": idle and self.result is not None}

    def can_start(self, app: AppModel | None) -> bool:
        """Whether "apply" would run now (files chosen, two labelled classes, not running)."""
        return (not self.running and bool(self.files) and app is not None
                and app.session.result is not None)

    # ------------------------------------------------------------------ choosing files
    def set_files(self, files: Iterable[tuple[str, bytes]]) -> None:
        """Choose the images (replacing any earlier choice); refused whole when over a limit."""
        if self.running:
            self.say("A batch is running: wait for it to finish (or cancel it) before choosing "
                     "other images.", "error")
            return
        chosen: list[Upload] = []
        total = 0.0
        for name, data in files:
            name = Path(str(name)).name or "image"
            size_mb = len(data) / 1e6
            if Path(name).suffix.lower() not in IMAGE_TYPES:
                self.say(f"{name} is not an image file this app reads; choose "
                         f"{', '.join(IMAGE_TYPES)} files.", "error")
                return
            if size_mb > self.max_upload_mb:
                self.say(f"{name} is {size_mb:.0f} MB, over the {self.max_upload_mb:.0f} MB limit "
                         "for one image. Segment big files with `stem-fsl segment` instead.", "error")
                return
            if not data:
                self.say(f"{name} is empty (0 bytes). Choose the file again.", "error")
                return
            total += size_mb
            chosen.append(Upload(name, bytes(data)))
        if len(chosen) > self.max_files:
            self.say(f"{len(chosen)} images chosen; one batch takes at most {self.max_files}. "
                     "Split them into several batches, or use `stem-fsl segment`.", "error")
            return
        if total > self.max_total_mb:
            self.say(f"The images add up to {total:.0f} MB, over the {self.max_total_mb:.0f} MB "
                     "limit for one batch. Split them into several batches.", "error")
            return
        self.files = chosen
        self.result, self.rows, self.done, self.total = None, [], 0, 0
        self._announce("files", "progress", "result")
        if chosen:
            self.say(f"{self.files_text}. Press “apply labels” to segment them like this image.")

    def clear(self) -> None:
        """Forget the chosen images and the last batch's zip."""
        if self.running:
            self.say("A batch is running: cancel it first.", "error")
            return
        self.files, self.result, self.rows, self.done, self.total = [], None, [], 0, 0
        self._announce("files", "progress", "result")
        self.say("No images chosen.")

    # ------------------------------------------------------------------ running
    def start(self, app: AppModel | None) -> bool:
        """Segment every chosen image with ``app``'s labels; returns whether a batch started.

        The labels, settings and prototypes are taken now: labelling on while the batch runs
        does not change it.
        """
        if self.running:
            self.say("A batch is already running.", "error")
            return False
        if not self.files:
            self.say("Choose the images to segment first.", "error")
            return False
        if app is None or app.session.result is None:
            self.say("Label at least one chip in each of two classes first: the batch applies "
                     "these labels to the other images.", "error")
            return False
        from ..batch import Reference

        try:
            ref = Reference.from_session(app.session)
        except SFWError as err:
            self.say(f"Cannot apply these labels: {error_message(err)}", "error")
            return False
        files = list(self.files)
        self.running, self.done, self.total, self.current = True, 0, len(files), files[0].name
        self.rows, self.result = [], None
        self._cancel.clear()
        stem = app.file_stem
        self._announce("progress", "result", "files")
        self.say(f"Segmenting {len(files)} image{'s' if len(files) > 1 else ''} with the labels "
                 f"of {app.session.dataset.name}...")
        if self.run_on_ui is None:
            self._run(ref, files, stem, lambda fn: fn())
        else:
            threading.Thread(target=self._run, args=(ref, files, stem, self.run_on_ui),
                             name="sfw-batch", daemon=True).start()
        return True

    def cancel(self) -> None:
        """Stop after the image being segmented; the zip holds the images finished."""
        if self.running:
            self._cancel.set()
            self.say("Cancelling after the current image...", "warning")

    def _run(self, ref: Any, files: Sequence[Upload], stem: str,
             on_ui: Callable[[Callable[[], None]], None]) -> None:
        from ..batch import summary_fields
        from ..export import summary_csv_bytes

        buf = io.BytesIO()
        rows: list[dict] = []
        names = _zip_names([f.name for f in files])
        try:
            with zipfile.ZipFile(buf, "w") as z:
                for k, (up, name) in enumerate(zip(files, names, strict=True)):
                    if self._cancel.is_set():
                        break
                    row: dict[str, Any] = {"name": name, "file": up.name, "status": "ok", "error": ""}
                    try:
                        ds, result, meas = self._segment(ref, up)
                        # Every file made before any is written: a failed image leaves none.
                        for kind, data in list(_members(result, ds, meas)):
                            packed = not kind.endswith(".png")  # PNGs are compressed already
                            z.writestr(f"{name}/{name}_{kind}", data,
                                       compress_type=zipfile.ZIP_DEFLATED if packed else zipfile.ZIP_STORED)
                        row.update(summary_fields(result, ds))
                        for r in meas.rows():
                            row[f"area_{r['class']} ({r['area_unit']})"] = r["area"]
                            row[f"particles_{r['class']}"] = r["particles"]
                    except Exception as err:  # noqa: BLE001 - one bad file must not stop the batch
                        _log.debug("batch image %s failed", up.name, exc_info=True)
                        row.update(status="error", error=_reason(err))
                    rows.append(row)
                    nxt = files[k + 1].name if k + 1 < len(files) else ""
                    on_ui(lambda k=k, nxt=nxt: self._advance(k + 1, nxt))
                z.writestr("summary.csv", summary_csv_bytes(rows), compress_type=zipfile.ZIP_DEFLATED)
            data: bytes | None = buf.getvalue()
            problem = ""
        except Exception as err:  # noqa: BLE001 - e.g. out of memory while zipping: say so
            _log.debug("batch failed", exc_info=True)
            data, problem = None, _reason(err)
        on_ui(lambda: self._finish(rows, data, stem, problem))

    def _segment(self, ref: Any, up: Upload):
        from ..batch import segment_dataset
        from ..io import load_upload
        from ..measure import measure_labels

        if self._loader is not None:
            ds = self._loader(up.name, up.data)
        else:
            ds = load_upload((up.name, up.data), max_bytes=int(self.max_upload_mb * 1e6))
        result = segment_dataset(ref, ds)
        meas = measure_labels(result.label_map, list(result.classes), pixel_size=ds.pixel_size,
                              unit=ds.pixel_unit)
        return ds, result, meas

    def _advance(self, done: int, current: str) -> None:
        self.done, self.current = done, current
        self._announce("progress")

    def _finish(self, rows: list[dict], data: bytes | None, stem: str, problem: str) -> None:
        self.running, self.current, self.rows = False, "", rows
        failed = [r for r in rows if r["status"] != "ok"]
        if data is None:
            self.result = None
            self.say(f"The batch failed: {problem}", "error")
        else:
            self.result = Download(f"{stem}_batch.zip", "application/zip", data)
            ok = len(rows) - len(failed)
            text = f"Segmented {ok} of {self.total} image{'s' if self.total > 1 else ''}"
            if len(rows) < self.total:
                text += f" (cancelled after {len(rows)})"
            text += ". Download the zip: maps, tables and summary.csv."
            if failed:
                text += " Failed: " + "; ".join(f"{r['file']}: {r['error']}" for r in failed[:3])
                text += f" (+{len(failed) - 3} more, see summary.csv)" if len(failed) > 3 else ""
            self.say(text, "warning" if failed or len(rows) < self.total else "ok")
        self._announce("progress", "result", "files")


def _members(result: Any, ds: Any, meas: Any) -> Iterable[tuple[str, bytes]]:
    """One image's files for the zip, as (kind, bytes)."""
    from ..export import _csv_bytes, export_bytes

    for kind in BATCH_FILES:
        if kind == "measurements.csv":
            yield kind, _csv_bytes(meas.rows())
        else:
            yield kind, export_bytes(result, ds, kind)[1]


def _zip_names(files: Sequence[str]) -> list[str]:
    """Safe, unique folder names in the zip: the CLI's output names of the files' safe stems."""
    from ..batch import _prefixes
    from ..paths import safe_name

    return [Path(p).name for p in _prefixes([Path(safe_name(Path(f).stem)) for f in files], Path())]


def _reason(err: BaseException) -> str:
    if isinstance(err, SFWError):
        return error_message(err).replace("\n", " ")
    if isinstance(err, MemoryError):
        return "not enough memory for this image; segment it with `stem-fsl segment`."
    return (f"it is not an image this app can read or segment ({type(err).__name__}: "
            f"{str(err)[:200]})").replace("\n", " ")
