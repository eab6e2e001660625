"""The data a session works on: a 2-D image, an optional EDS spectrum image, their calibration."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import CalibrationError, InputError

__all__ = ["Dataset"]


def _as_image(image: Any) -> tuple[np.ndarray, dict]:
    """Return a float32 2-D array and the calibration found on a HyperSpy signal, if any."""
    calib: dict = {}
    if hasattr(image, "axes_manager") and hasattr(image, "data"):
        axes = image.axes_manager.signal_axes
        if len(axes) == 2:
            calib["pixel_size"] = float(axes[0].scale)
            unit = str(axes[0].units)
            calib["pixel_unit"] = unit if unit not in ("", "<undefined>", "None") else "px"
        title = getattr(getattr(image.metadata, "General", None), "title", "")
        if title:
            calib["name"] = str(title)
        image = image.data
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] > 4:
        raise InputError(
            f"The image is RGB(A) with shape {arr.shape}; STEM images are single-channel. "
            "Convert it to grayscale first (e.g. skimage.color.rgb2gray) or load the raw detector image."
        )
    if arr.ndim != 2:
        raise InputError(
            f"The image must be 2-D (rows, columns); got {arr.ndim}-D data of shape {arr.shape}. "
            "Pick one frame or one signal (e.g. image[0] of a stack) before creating the Dataset."
        )
    if np.iscomplexobj(arr):
        raise InputError("The image is complex-valued; pass its magnitude (np.abs) or real part.")
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise InputError(f"The image has non-numeric dtype {arr.dtype}; pass a numeric array.")
    if min(arr.shape) < 8:
        raise InputError(
            f"The image is only {arr.shape[0]}×{arr.shape[1]} pixels; at least 8×8 is needed "
            "to cut chips from it."
        )
    arr = arr.astype(np.float32, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int((~finite).sum())
        raise InputError(
            f"The image has {bad} NaN or infinite pixel(s) out of {arr.size}. Replace them "
            "(e.g. np.nan_to_num or inpainting of dead pixels) before segmenting."
        )
    if float(arr.max()) == float(arr.min()):
        raise InputError(
            "The image is constant (every pixel equals "
            f"{float(arr.flat[0]):g}); there is nothing to segment. Check the file or channel."
        )
    return arr, calib


def _as_eds(eds: Any) -> tuple[Any, dict]:
    """Return the EDS cube (numpy or dask, not copied) and calibration found on a signal."""
    calib: dict = {}
    if hasattr(eds, "axes_manager") and hasattr(eds, "data"):
        nav = eds.axes_manager.navigation_axes
        sig = eds.axes_manager.signal_axes
        if len(sig) == 1:
            ax = sig[0]
            energy = ax.offset + ax.scale * np.arange(ax.size)
            if str(ax.units).lower() in ("ev",):
                energy = energy / 1000.0
            calib["energy_axis"] = np.asarray(energy, dtype=np.float64)
        if len(nav) == 2:
            calib["eds_pixel_size"] = float(nav[0].scale)
        eds = eds.data
    if not hasattr(eds, "ndim"):
        eds = np.asarray(eds)
    if eds.ndim != 3:
        raise InputError(
            f"The EDS data must be a spectrum image (rows, columns, energy); got shape {tuple(eds.shape)}. "
            "A single spectrum or a line scan cannot be mapped onto image chips."
        )
    return eds, calib


@dataclass
class Dataset:
    """A STEM image with an optional EDS spectrum image of the same area.

    Parameters
    ----------
    image : ndarray, shape (H, W), or hyperspy Signal2D
        The image (HAADF/ADF/BF). Converted to float32. Calibration is read from a signal.
    eds : ndarray or dask array, shape (Ye, Xe, E), or hyperspy EDS signal, optional
        Spectrum image in counts. It is kept as given (lazy arrays stay lazy).
    energy_axis : ndarray, shape (E,), keV, optional
        Energy of each channel. Read from an EDS signal when not given; required otherwise.
    eds_binning : float, optional
        Image pixels per EDS pixel along each axis (4 means the EDS map is 4× coarser).
        When omitted it is derived from ``pixel_size / eds_pixel_size`` or from the shapes.
    pixel_size : float, optional
        Image pixel size in ``pixel_unit``.
    eds_pixel_size : float, optional
        EDS pixel size in the same unit as ``pixel_size``.
    pixel_unit : str
        Unit of the pixel sizes ("nm", "px" when uncalibrated).
    name : str
        Short name shown in the apps and written to exports.
    ground_truth : ndarray of int, shape (H, W), optional
        Per-pixel class index, for demo and benchmark data.
    truth_classes : list of str, optional
        Names of the ground-truth classes.

    Raises
    ------
    InputError
        If the image is not 2-D, contains NaN/inf, is constant or tiny, or the EDS cube has
        the wrong dimensionality or energy axis.
    CalibrationError
        If the EDS field of view does not match the image's.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.random.default_rng(0).normal(size=(64, 64))
    >>> ds = Dataset(img, eds=np.ones((16, 16, 10)), energy_axis=np.linspace(0, 10, 10), eds_binning=4)
    >>> ds.eds_binning
    4.0
    """

    image: Any
    eds: Any = None
    energy_axis: Any = None
    eds_binning: float | None = None
    pixel_size: float | None = None
    eds_pixel_size: float | None = None
    pixel_unit: str = "px"
    name: str = "image"
    ground_truth: np.ndarray | None = None
    truth_classes: list[str] | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.image, calib = _as_image(self.image)
        if self.pixel_size is None and "pixel_size" in calib:
            self.pixel_size = calib["pixel_size"]
            self.pixel_unit = calib.get("pixel_unit", self.pixel_unit)
        if self.name == "image" and "name" in calib:
            self.name = calib["name"]
        if self.pixel_size is not None and not (np.isfinite(self.pixel_size) and self.pixel_size > 0):
            raise CalibrationError(f"pixel_size must be a positive number; got {self.pixel_size!r}.")
        if self.eds is not None:
            self._init_eds()
        elif self.energy_axis is not None:
            self.energy_axis = None  # an energy axis without a cube means nothing
        if self.ground_truth is not None:
            self.ground_truth = np.asarray(self.ground_truth)
            if self.ground_truth.shape != self.image.shape:
                raise InputError(
                    f"ground_truth has shape {self.ground_truth.shape}, the image {self.image.shape}."
                )
        self._hash: str | None = None

    def _init_eds(self) -> None:
        self.eds, calib = _as_eds(self.eds)
        if self.energy_axis is None:
            self.energy_axis = calib.get("energy_axis")
        if self.energy_axis is None:
            raise CalibrationError(
                "An EDS cube needs its energy axis: pass energy_axis (keV per channel, shape (E,)) "
                "or an EDS signal whose spectral axis is calibrated."
            )
        energy = np.asarray(self.energy_axis, dtype=np.float64).ravel()
        n_e = self.eds.shape[2]
        if energy.size != n_e:
            raise CalibrationError(
                f"energy_axis has {energy.size} values but the EDS cube has {n_e} channels; "
                "they must match one to one."
            )
        if not np.all(np.isfinite(energy)) or np.any(np.diff(energy) <= 0):
            raise CalibrationError(
                "energy_axis must be finite and strictly increasing (keV per channel)."
            )
        if energy[-1] > 1000:
            raise CalibrationError(
                f"energy_axis reaches {energy[-1]:g}; it looks like eV. Pass keV (divide by 1000)."
            )
        self.energy_axis = energy
        if self.eds_pixel_size is None and "eds_pixel_size" in calib:
            self.eds_pixel_size = calib["eds_pixel_size"]
        self.eds_binning = self._derive_binning()
        self._check_field_of_view()

    def _derive_binning(self) -> float:
        h, w = self.image.shape
        ye, xe = self.eds.shape[:2]
        if self.eds_binning is not None:
            b = float(self.eds_binning)
            if not (np.isfinite(b) and b > 0):
                raise CalibrationError(f"eds_binning must be a positive number; got {self.eds_binning!r}.")
            return b
        if self.pixel_size is not None and self.eds_pixel_size is not None:
            if self.eds_pixel_size <= 0:
                raise CalibrationError("eds_pixel_size must be positive.")
            return float(self.eds_pixel_size / self.pixel_size)
        by, bx = h / ye, w / xe
        if abs(by - bx) > 0.02 * max(by, bx):
            raise CalibrationError(
                f"The image ({h}×{w}) and EDS map ({ye}×{xe}) have different aspect ratios and no "
                "calibration links them; pass eds_binning or both pixel sizes."
            )
        return float(by)

    def _check_field_of_view(self) -> None:
        h, w = self.image.shape
        ye, xe = self.eds.shape[:2]
        b = self.eds_binning
        for n_img, n_eds, axis in ((h, ye, "rows"), (w, xe, "columns")):
            extent = n_eds * b
            if abs(extent - n_img) > max(b, 0.02 * n_img):
                raise CalibrationError(
                    f"The EDS map covers {extent:g} image pixels along {axis} ({n_eds} EDS pixels × "
                    f"binning {b:g}) but the image has {n_img}. The two do not show the same field "
                    "of view: check the binning/pixel sizes, or crop both to the common area."
                )

    @property
    def has_eds(self) -> bool:
        """Whether an EDS spectrum image is attached."""
        return self.eds is not None

    @property
    def shape(self) -> tuple[int, int]:
        """Image shape (H, W) in pixels."""
        return tuple(self.image.shape)  # type: ignore[return-value]

    @property
    def content_hash(self) -> str:
        """A short hash of the image pixels and EDS shape; ties a saved session to its data."""
        if self._hash is None:
            h = hashlib.sha1()
            h.update(str(self.image.shape).encode())
            h.update(np.ascontiguousarray(self.image).tobytes())
            if self.eds is not None:
                h.update(str(tuple(self.eds.shape)).encode())
                h.update(np.asarray(self.energy_axis).tobytes())
            self._hash = h.hexdigest()[:16]
        return self._hash

    def __repr__(self) -> str:
        eds = f", eds={tuple(self.eds.shape)} binning={self.eds_binning:g}" if self.has_eds else ""
        cal = f", {self.pixel_size:g} {self.pixel_unit}/px" if self.pixel_size else ""
        return f"Dataset({self.name!r}, image={self.shape}{cal}{eds})"
