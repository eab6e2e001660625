"""Session files on disk: the JSON schema's version, reading it, and its ``.npz`` companion.

A session is a JSON file (classes, supports, settings) and, when saved with
``arrays=True``, an ``.npz`` of reference arrays beside it for batch mode. The arrays are
written first and their SHA-256 is recorded in the JSON, so a pair that was interrupted
between the two writes (or copied at different moments) is detected when it is read
(:func:`read_arrays`) instead of silently mixing two sessions.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .errors import InputError, SessionFileError

__all__ = ["SCHEMA_VERSION", "arrays_path", "migrate", "read_arrays", "read_state", "sha256"]

SCHEMA_VERSION = 1
FORMAT = "stem_fsl_widgets.session"

#: Largest session JSON read (bytes): every chip of a 16k² image labelled is ~4 MB.
MAX_SESSION_BYTES = 64 * 2**20


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def arrays_path(path: str | os.PathLike) -> Path:
    """The ``.npz`` that goes with session JSON ``path`` (``s.json`` → ``s.npz``).

    Raises
    ------
    InputError
        When ``path`` itself ends in ``.npz``: the arrays would overwrite the JSON.
    """
    path = Path(path)
    if path.suffix.lower() == ".npz":
        raise InputError(f"{path.name}: a session file is JSON and its arrays go to a .npz beside it; "
                         f"name the session {path.with_suffix('.json').name} instead.")
    return path.with_suffix(".npz")


def migrate(state: dict) -> dict:
    """Bring an older session dict up to :data:`SCHEMA_VERSION`; refuse newer ones.

    Raises
    ------
    SessionFileError
        Not a session, no integer schema version, or a newer schema.
    """
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise SessionFileError("This is not a stem_fsl_widgets session file (missing 'format').")
    version = state.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise SessionFileError("The session file has no integer 'schema_version'.")
    if version > SCHEMA_VERSION:
        raise SessionFileError(
            f"The session file uses schema {version}, newer than this version of stem_fsl_widgets "
            f"understands ({SCHEMA_VERSION}). Upgrade the package to open it.")
    if version < 1:
        raise SessionFileError(f"Unknown session schema {version}.")
    return state


def read_state(path: str | os.PathLike) -> dict:
    """Read and migrate a session JSON.

    Raises
    ------
    SessionFileError
        Missing, unreadable, too big, not JSON, not an object, not a session, newer schema.
    """
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size > MAX_SESSION_BYTES:
            raise SessionFileError(
                f"{path.name} is {path.stat().st_size / 2**20:.0f} MB, too big for a session file "
                f"(at most {MAX_SESSION_BYTES // 2**20} MB): it is not one, or it was damaged.")
        state = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise SessionFileError(f"No session file at {path}.") from None
    except IsADirectoryError:
        raise SessionFileError(f"{path} is a folder, not a session file.") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise SessionFileError(f"{path} is not valid JSON ({str(err)[:120]}); try {path.name}.bak.") from None
    except OSError as err:
        raise SessionFileError(f"Cannot read {path} ({err.strerror or err}).") from None
    if not isinstance(state, dict):
        raise SessionFileError(f"{path} does not hold a session (top level is not an object).")
    return migrate(state)


def read_arrays(path: str | os.PathLike, state: dict) -> dict[str, np.ndarray]:
    """The reference arrays saved beside session JSON ``path``, checked against ``state``.

    Raises
    ------
    SessionFileError
        Missing or unreadable ``.npz``, or one whose SHA-256 differs from the one the JSON
        records (the pair was saved at different moments, or a save was interrupted).
    """
    path = Path(path)
    npz = arrays_path(path)
    if not npz.exists():
        raise SessionFileError(
            f"{npz.name} is missing: batch mode needs the session's reference arrays. Open the "
            f"session and save it with Session.save({str(path)!r}, arrays=True).")
    try:
        data = npz.read_bytes()
    except OSError as err:
        raise SessionFileError(f"Cannot read {npz.name} ({err.strerror or err}).") from None
    recorded = state.get("arrays")
    if isinstance(recorded, dict) and recorded.get("sha256") and recorded["sha256"] != sha256(data):
        raise SessionFileError(
            f"{npz.name} does not belong to {path.name}: its SHA-256 differs from the one the JSON "
            "records (the two were saved at different moments, or a save was interrupted). Open the "
            f"session and save it again with Session.save({str(path)!r}, arrays=True).")
    import io

    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as err:
        raise SessionFileError(
            f"{npz.name} cannot be read ({type(err).__name__}: {str(err)[:150]}); save the session "
            "again with arrays=True.") from None
    except Exception as err:  # zipfile.BadZipFile and friends
        raise SessionFileError(
            f"{npz.name} cannot be read ({type(err).__name__}); save the session again with arrays=True."
        ) from None
