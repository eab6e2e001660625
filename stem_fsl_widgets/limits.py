"""Caps on how much data a file may declare, checked from its header before anything is read.

A few kilobytes of compressed zeros can declare a 40000 × 40000 image; reading it would take
gigabytes. Like PIL's ``Image.MAX_IMAGE_PIXELS``, the readers compare the sizes a file
declares with these caps first and refuse it with :class:`~stem_fsl_widgets.errors.DataTooLargeError`.

The caps come from environment variables so a server's admin can set them without code:

``SFW_MAX_PIXELS`` (default 1.5e8)
    Pixels of one 2-D image or frame: it is always read into memory (600 MB as float32).
``SFW_MAX_VOXELS`` (default 4e9)
    Elements of one EDS cube or stack kept lazy (a dask array summed chunk by chunk).
``SFW_MAX_MEMORY_VOXELS`` (default 5e8)
    Elements of a cube read into memory (an ``.npz``, ``lazy=False``, the dashboard's
    uploads): 1 GB as uint16. With ``lazy=None`` a bigger cube is opened lazily instead.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from .errors import DataTooLargeError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_MEMORY_VOXELS",
    "DEFAULT_MAX_VOXELS",
    "check_shape",
    "max_pixels",
    "max_memory_voxels",
    "max_voxels",
]

DEFAULT_MAX_PIXELS = 150_000_000
DEFAULT_MAX_VOXELS = 4_000_000_000
DEFAULT_MAX_MEMORY_VOXELS = 500_000_000


def _env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 1):
        raise DataTooLargeError(
            f"The environment variable {name}={raw!r} is not a positive number; set it to a "
            f"count such as {default:.3g}, or unset it for the default.")
    return int(value)


def max_pixels() -> int:
    """Largest 2-D image or frame read, in pixels (``SFW_MAX_PIXELS``, default 1.5e8)."""
    return _env("SFW_MAX_PIXELS", DEFAULT_MAX_PIXELS)


def max_voxels() -> int:
    """Largest cube or stack opened lazily, in elements (``SFW_MAX_VOXELS``, default 4e9)."""
    return _env("SFW_MAX_VOXELS", DEFAULT_MAX_VOXELS)


def max_memory_voxels() -> int:
    """Largest cube read into memory, in elements (``SFW_MAX_MEMORY_VOXELS``, default 5e8)."""
    return _env("SFW_MAX_MEMORY_VOXELS", DEFAULT_MAX_MEMORY_VOXELS)


def _count(n: float) -> str:
    """A count for people: "1.6 billion", "17 million", "4,096"."""
    if n >= 1e9:
        return f"{n / 1e9:.3g} billion"
    if n >= 1e6:
        return f"{n / 1e6:.3g} million"
    return f"{int(n):,}"


def check_shape(shape: Sequence[int], what: str, *, in_memory: bool = False, hint: str | None = None) -> None:
    """Refuse a declared shape whose image plane or whole cube is over the caps.

    Parameters
    ----------
    shape : sequence of int
        As declared by the file (nothing read yet).
    what : str
        Names the file and the array in the message ("big.npz: 'image'").
    in_memory : bool
        The array will be read into memory: cubes are held to :func:`max_memory_voxels`
        instead of :func:`max_voxels`.
    hint : str, optional
        What to do, replacing the default advice for cubes over the in-memory cap.

    Raises
    ------
    DataTooLargeError
        With the declared size, the cap and the environment variable that raises it.

    Examples
    --------
    >>> check_shape((512, 512), "x.tif")
    >>> try:
    ...     check_shape((40000, 40000), "x.tif")
    ... except DataTooLargeError as err:
    ...     print(str(err)[:52])
    x.tif declares a 40000×40000 image (1.6 billion pixe
    """
    dims = [int(s) for s in shape]
    if any(d < 0 for d in dims):
        raise DataTooLargeError(f"{what} declares a negative size {tuple(dims)}: the file is corrupt.")
    desc = "×".join(str(d) for d in dims)
    # The image (or a frame of a stack / the map of a cube) spans at most the two largest axes.
    plane = math.prod(sorted(dims)[-2:]) if dims else 0
    cap = max_pixels()
    if len(dims) >= 2 and plane > cap:
        per = "" if len(dims) == 2 else " per image"
        raise DataTooLargeError(
            f"{what} declares a {desc} {'image' if len(dims) == 2 else 'array'} ({_count(plane)} "
            f"pixels{per}), over the limit of {_count(cap)} (SFW_MAX_PIXELS). Crop or bin it first, "
            "or ask the server's admin to raise SFW_MAX_PIXELS.")
    if len(dims) >= 3:
        vcap = max_memory_voxels() if in_memory else max_voxels()
        n = math.prod(dims)
        if n > vcap:
            if in_memory:
                advice = hint or ("Crop or bin it first, or open it from Python with lazy=True "
                                  "(SFW_MAX_MEMORY_VOXELS sets this limit).")
            else:
                advice = "Crop or bin it first (SFW_MAX_VOXELS sets this limit)."
            raise DataTooLargeError(
                f"{what} declares a {desc} array ({_count(n)} values), over the limit of {_count(vcap)}"
                f"{' for data read into memory' if in_memory else ''}. {advice}")
