"""Autosave files of the hosted apps: one per user and dataset, restored or set aside, never lost.

On a shared server many people (or one person in two tabs) may open the same data. Each
user's autosave lives in their own folder, keyed by the data's content hash::

    $SFW_AUTOSAVE_DIR/<user key>/<content hash>.json

(default folder ``~/.stem_fsl_widgets/autosave``; the user key is the JupyterHub user, else an
id the browser keeps, else the OS user: see :func:`stem_fsl_widgets.paths.user_key`).

Opening data: :func:`restore_autosave` returns the restored session and a :class:`Restored`
record the UI turns into "Restored 10 labels saved 14:02", or None when there is nothing to
restore; a file that exists but cannot be restored raises :class:`AutosaveError` saying why,
and stays where it is until the user chooses :func:`start_over`, which moves it aside (it is
never deleted, and no ``-2``, ``-3`` files are made). Two writers on one file are detected by
the session itself (:attr:`Session.autosave_error`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .dataset import Dataset
from .errors import AutosaveError, SFWError
from .paths import safe_name, user_key

__all__ = ["Restored", "autosave_dir", "autosave_path", "restore_autosave", "start_over"]


def autosave_dir() -> Path:
    """The autosave root: ``$SFW_AUTOSAVE_DIR`` or ``~/.stem_fsl_widgets/autosave``."""
    return Path(os.environ.get("SFW_AUTOSAVE_DIR") or Path.home() / ".stem_fsl_widgets" / "autosave")


def autosave_path(dataset: Dataset | str, user: str | None = None) -> Path:
    """Where this user's autosave of ``dataset`` lives: ``<autosave_dir>/<user key>/<hash>.json``.

    Parameters
    ----------
    dataset : Dataset or str
        The data (or its ``content_hash``).
    user : str, optional
        An id the browser keeps; used when there is no ``JUPYTERHUB_USER``
        (see :func:`~stem_fsl_widgets.paths.user_key`).
    """
    digest = dataset.content_hash if isinstance(dataset, Dataset) else str(dataset)
    return autosave_dir() / user_key(user) / f"{safe_name(digest)}.json"


@dataclass(frozen=True)
class Restored:
    """What :func:`restore_autosave` brought back.

    Attributes
    ----------
    path : Path
        The autosave file.
    n_labels : int
        Labelled chips restored.
    n_classes : int
        Classes restored.
    saved_at : datetime or None
        When the file was last saved (local time of the saving machine).
    """

    path: Path
    n_labels: int
    n_classes: int
    saved_at: datetime | None

    @property
    def message(self) -> str:
        """E.g. "Restored 10 labels saved 14:02." (the date too when it was not today)."""
        when = ""
        if self.saved_at is not None:
            same_day = self.saved_at.date() == datetime.now(self.saved_at.tzinfo).date()
            when = self.saved_at.strftime(" saved %H:%M" if same_day else " saved %Y-%m-%d %H:%M")
        noun = "label" if self.n_labels == 1 else "labels"
        return f"Restored {self.n_labels} {noun}{when}."


def _saved_at(state: Any) -> datetime | None:
    raw = state.get("saved_at") if isinstance(state, dict) else None
    if not isinstance(raw, str):
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(raw, fmt)
        except ValueError:
            continue
    return None


def restore_autosave(path: str | os.PathLike, dataset: Dataset, **session_kwargs: Any):
    """Reopen the autosave at ``path`` on ``dataset``; the session keeps autosaving there.

    Parameters
    ----------
    path : str or Path
        From :func:`autosave_path`.
    dataset : Dataset
    **session_kwargs
        Passed to :meth:`Session.load` (e.g. ``progress``).

    Returns
    -------
    (Session, Restored) or None
        None when there is no autosave (start a fresh session with ``autosave=path``).

    Raises
    ------
    AutosaveError
        When a file is there but cannot be restored (corrupt, other data, an encoder whose
        weights are gone...): the message says why and that nothing was deleted. The file is
        left as it is; :func:`start_over` moves it aside.
    """
    from .session import Session

    path = Path(path)
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_bytes())
    except (OSError, ValueError):
        state = None
    try:
        session = Session.load(path, dataset, autosave=path, **session_kwargs)
    except SFWError as err:
        saved = _saved_at(state)
        when = saved.strftime(" from %Y-%m-%d %H:%M") if saved else ""
        raise AutosaveError(
            f"Your autosaved labels{when} could not be restored: {err} Nothing was deleted: the file "
            f"stays at {path}. Choose 'start over' to set it aside and begin again, or fix the cause "
            "and reload.") from None
    info = Restored(path=path, n_labels=len(session.supports), n_classes=len(session.classes),
                    saved_at=_saved_at(state))
    return session, info


def start_over(path: str | os.PathLike) -> Path | None:
    """Move the autosave at ``path`` (and its ``.bak``) aside, so the next session starts fresh.

    Nothing is deleted: the file becomes ``<name>.<YYYYmmdd-HHMMSS>.old.json`` beside it.

    Returns
    -------
    Path or None
        Where the old file went; None when there was none.
    """
    path = Path(path)
    if not path.exists():
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.stem}.{stamp}.old.json")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.stem}.{stamp}-{n}.old.json")
    os.replace(path, target)
    bak = path.with_name(path.name + ".bak")
    if bak.exists():
        os.replace(bak, target.with_name(target.name + ".bak"))
    return target
