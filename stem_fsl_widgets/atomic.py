"""Atomic writes and short-lived folders that cannot be hijacked on a shared server.

Every file the package writes goes through :func:`atomic_write` (or :func:`atomic_path` for
writers that need a file name, such as HyperSpy's): the data go to a temp file with an
unpredictable name created exclusively (``O_EXCL``, so a symlink planted by another user is
never followed) in the destination folder, are flushed to disk, then renamed over the real
name. A crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import WriteError

__all__ = ["atomic_path", "atomic_write", "temporary_folder", "write_error"]


def write_error(path: str | os.PathLike, err: OSError) -> WriteError:
    """A :class:`WriteError` for ``err`` that names ``path`` and says what to check."""
    reason = err.strerror or str(err) or type(err).__name__
    out = WriteError(f"Cannot write {path} ({reason}). Check that the folder exists and is writable "
                     "and that the disk has free space.")
    out.errno, out.reason = err.errno, reason
    return out


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically through a unique temp file in the same folder.

    Parameters
    ----------
    path : str or Path
        Destination; its folder is created if needed. An existing file is replaced; a
        symlink at ``path`` itself is replaced by the new file, never written through.
    data : bytes

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    WriteError
        (an OSError) When the folder cannot be created or written (full, read-only, ...);
        the old file, if any, is untouched and no temp file is left behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp: O_CREAT | O_EXCL with a random name, so nothing planted there can be followed.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except WriteError:
        raise
    except OSError as err:
        raise write_error(path, err) from err
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise write_error(path, err) from err
        raise
    _fsync_folder(path.parent)
    return path


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """A unique temp file name beside ``path`` to write to; renamed over ``path`` on success.

    For writers that insist on a file name (HyperSpy's ``save``): the temp file is created
    exclusively first, so the writer overwrites a file this process owns, never a planted
    symlink. On an exception the temp file is removed and ``path`` is untouched.

    Parameters
    ----------
    path : str or Path
        Destination.
    suffix : str, optional
        The temp file's extension (default ``path``'s), for writers that pick the format
        from it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(p) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> p.read_text()
    'hello'
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix or path.suffix, dir=path.parent)
    except WriteError:
        raise
    except OSError as err:
        raise write_error(path, err) from err
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.lexists(tmp):
            shutil.rmtree(tmp) if tmp.is_dir() and not tmp.is_symlink() else tmp.unlink()
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise write_error(path, err) from err
        raise
    _fsync_folder(path.parent)


@contextmanager
def temporary_folder(prefix: str = "sfw_") -> Iterator[Path]:
    """A private folder (mode 700, unique name) deleted with its content on exit.

    For uploads: write the uploaded bytes here, read them, and the folder is gone however
    the reading ended.

    Examples
    --------
    >>> with temporary_folder("sfw_upload_") as folder:
    ...     _ = (folder / "x.bin").write_bytes(b"1")
    >>> folder.exists()
    False
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix))  # created 0o700 by mkdtemp
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
