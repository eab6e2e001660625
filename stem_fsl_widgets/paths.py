"""Where a hosted app may write: per-user folders and export paths confined to a root.

On a shared Voilà/Panel server (JupyterHub, Binder, a lab machine) many people share one
server account, so a path typed into a web page must never reach the rest of the disk:
:func:`confine_path` turns it into a path inside the user's export folder or refuses it.
Scripts and the command line are not confined: their user owns the account.

Environment variables
---------------------
``SFW_EXPORT_ROOT``
    Folder under which hosted apps write exports, one sub-folder per user
    (default ``~/.stem_fsl_widgets/exports``).
``JUPYTERHUB_USER``
    Set by JupyterHub; names the user (see :func:`user_key`).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from .errors import ExportPathError

__all__ = ["confine_path", "export_root", "safe_name", "user_key"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, *, max_len: int = 64) -> str:
    """``text`` reduced to letters, digits, ``._-`` (a file or folder name that cannot escape).

    Examples
    --------
    >>> safe_name("../../etc/passwd"), safe_name("Anna Smith"), safe_name("")
    ('etc_passwd', 'Anna_Smith', 'unnamed')
    """
    out = _SAFE.sub("_", str(text)).strip("._-")[:max_len]
    return out or "unnamed"


def user_key(browser_id: str | None = None) -> str:
    """Who the files of this app belong to, as a safe folder name.

    The JupyterHub user (``JUPYTERHUB_USER``) when there is one; else ``browser_id``, an id
    the page keeps in the browser (so two people on one server account, or two browsers,
    get their own autosaves and exports); else the operating-system user.

    Parameters
    ----------
    browser_id : str, optional
        From the UI (e.g. a random id kept in the browser's local storage).

    Returns
    -------
    str
        A non-empty name of letters, digits and ``._-``; ids with other characters are
        hashed, so two different ids never share a folder.
    """
    raw = os.environ.get("JUPYTERHUB_USER") or browser_id
    if not raw:
        try:
            raw = getpass.getuser()
        except Exception:  # no user name in the environment (some containers)
            raw = f"uid{os.getuid()}" if hasattr(os, "getuid") else "user"
    raw = str(raw)
    cleaned = safe_name(raw, max_len=48)
    if cleaned != raw:  # keep distinct ids distinct after cleaning
        cleaned += "-" + hashlib.sha256(raw.encode()).hexdigest()[:10]
    return cleaned


def export_root(user: str | None = None) -> Path:
    """The folder a hosted app may write exports to: ``$SFW_EXPORT_ROOT/<user key>``.

    Parameters
    ----------
    user : str, optional
        A browser-kept id passed to :func:`user_key`.
    """
    base = os.environ.get("SFW_EXPORT_ROOT") or str(Path.home() / ".stem_fsl_widgets" / "exports")
    return Path(base).expanduser() / user_key(user)


def confine_path(user_path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Resolve a path typed by a user to a path inside ``root``, or refuse it.

    Parameters
    ----------
    user_path : str or Path
        Relative path such as ``"run1/sample"`` (a folder or an export prefix).
    root : str or Path, optional
        The confining folder (default :func:`export_root`); created if missing.

    Returns
    -------
    Path
        ``root / user_path``, absolute, with no symlink between ``root`` and it.

    Raises
    ------
    ExportPathError
        For absolute paths, ``~``, ``..``, drive letters or backslashes, control
        characters, an empty path, or a symlink anywhere below ``root`` on the way.

    Examples
    --------
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> confine_path("run1/a", root).relative_to(root).as_posix()
    'run1/a'
    >>> try:
    ...     confine_path("../x", root)
    ... except ExportPathError as err:
    ...     print(err)
    '../x' leaves the export folder ('..' is not allowed). Type a name inside it, such as 'run1/sample'.
    """
    text = os.fspath(user_path)
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    shown = repr(text if len(text) <= 60 else text[:60] + "…")
    hint = "Type a name inside it, such as 'run1/sample'."
    if not text.strip():
        raise ExportPathError(f"The export name is empty. {hint}")
    if any(ord(c) < 32 or c == "\x7f" for c in text):
        raise ExportPathError(f"{shown} contains control characters. {hint}")
    if "\\" in text or PureWindowsPath(text).drive:
        raise ExportPathError(f"{shown} uses a backslash or a drive letter; use '/' between folders. {hint}")
    if text.startswith("~"):
        raise ExportPathError(f"{shown} points to a home folder ('~' is not allowed); exports stay in "
                              f"the export folder. {hint}")
    pure = PurePosixPath(text)
    if pure.is_absolute():
        raise ExportPathError(f"{shown} is an absolute path; exports stay in the export folder. {hint}")
    if ".." in pure.parts:
        raise ExportPathError(f"{shown} leaves the export folder ('..' is not allowed). {hint}")
    parts = [p for p in pure.parts if p != "."]
    if not parts:
        raise ExportPathError(f"The export name is empty. {hint}")
    if len(parts) > 16 or any(len(p.encode()) > 200 for p in parts):
        raise ExportPathError(f"{shown} is too long (at most 16 folders of 200 bytes each). {hint}")
    base = Path(root) if root is not None else export_root()
    base = base.expanduser().absolute()
    base.mkdir(parents=True, exist_ok=True)
    current = base
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise ExportPathError(f"{shown} goes through a symbolic link ({part!r}); links are not "
                                  f"followed in the export folder. {hint}")
        if not current.exists():
            break  # nothing further down can exist yet
    out = base.joinpath(*parts)
    if not str(out.resolve()).startswith(str(base.resolve()) + os.sep):
        raise ExportPathError(f"{shown} leaves the export folder. {hint}")
    return out
