"""X-ray lines of the elements, read from exSpy's elements database.

Line energies (Chantler 2005) and within-family weights (epq library) come from
``exspy.material.elements``; nothing here is typed by hand. exSpy (and with it
HyperSpy) is imported on first use only, so importing this module stays cheap.

Line names follow HyperSpy's ``"<element>_<line>"`` convention, e.g. ``"Ni_Ka"``. The weights
are relative *within* a family (Ka = 1, La = 1, Ma = 1); the database does not rank the K, L
and M families of one element against each other.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["xray_lines", "known_elements", "line_windows", "fwhm_at_energy", "atomic_number"]

#: Detector resolution used when none is given: FWHM of Mn Ka in eV (a typical SDD).
DEFAULT_FWHM_MNKA_EV = 130.0
#: Fiori & Newbury's constant (eV per keV) for the growth of FWHM² with energy, as in exSpy.
_FANO_SLOPE = 2.5
#: Smallest FWHM returned (eV): keeps the formula real below Mn Ka for very good detectors.
_MIN_FWHM_EV = 10.0


@lru_cache(maxsize=1)
def _database() -> dict[str, Any]:
    """Return exSpy's elements database as a plain nested dict (imported once)."""
    from .io import quiet_reader_logs

    quiet_reader_logs()  # exSpy imports HyperSpy, which logs a misleading Numba notice
    try:
        with warnings.catch_warnings():  # HyperSpy's own internal deprecations: not actionable here
            warnings.simplefilter("ignore")
            from exspy.material import elements as elements_db
    except ImportError as err:  # pragma: no cover - exspy is a hard dependency
        raise ImportError(
            "X-ray line data come from exSpy's elements database; install it with "
            "`pip install exspy`."
        ) from err
    # The dict also carries a "__doc__" string; keep the element entries only.
    return {k: v for k, v in elements_db.as_dictionary().items() if isinstance(v, dict)}


def _entry(element: str) -> dict[str, Any]:
    """Return the database entry of ``element``, or raise an InputError that suggests a fix."""
    db = _database()
    if isinstance(element, str) and element in db:
        return db[element]
    raise InputError(_unknown_message(element, db))


def _unknown_message(element: Any, db: dict[str, Any]) -> str:
    if not isinstance(element, str):
        return (
            f"An element must be given by its chemical symbol as a string (e.g. 'Ni'); "
            f"got {element!r} of type {type(element).__name__}."
        )
    hint = ""
    by_name = {str(v["General_properties"]["name"]).lower(): k for k, v in db.items()}
    by_lower = {k.lower(): k for k in db}
    key = element.strip().lower()
    if key in by_lower:
        hint = f" Symbols are case-sensitive: did you mean '{by_lower[key]}'?"
    elif key in by_name:
        hint = f" '{element}' is the name of {by_name[key]}; pass the symbol '{by_name[key]}'."
    else:
        close = difflib.get_close_matches(element.strip(), list(db), n=3, cutoff=0.4)
        if close:
            hint = " Did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    return (
        f"Unknown element {element!r}: it is not in exSpy's elements database.{hint} "
        "Use a chemical symbol such as 'Ni', 'Al' or 'O' (see known_elements())."
    )


def atomic_number(element: str) -> int:
    """Return the atomic number Z of ``element`` from exSpy's database.

    Parameters
    ----------
    element : str
        Chemical symbol, e.g. ``"Ni"``.

    Returns
    -------
    int
        Atomic number.

    Raises
    ------
    InputError
        If the element is not in the database.

    Examples
    --------
    >>> atomic_number("Ni")
    28
    """
    return int(_entry(element)["General_properties"]["Z"])


def known_elements() -> list[str]:
    """Return the chemical symbols that have X-ray line data, in order of atomic number.

    Returns
    -------
    list of str
        Symbols such as ``["Li", "Be", ..., "Ni", ...]``.

    Examples
    --------
    >>> "Ni" in known_elements()
    True
    """
    db = _database()
    with_lines = [k for k, v in db.items() if v.get("Atomic_properties", {}).get("Xray_lines")]
    return sorted(with_lines, key=lambda k: int(db[k]["General_properties"]["Z"]))


def xray_lines(
    element: str, *, max_energy: float | None = None, min_weight: float = 0.0
) -> list[tuple[str, float, float]]:
    """Return the X-ray lines of an element from exSpy's database, sorted by energy.

    Parameters
    ----------
    element : str
        Chemical symbol, e.g. ``"Ni"`` (case-sensitive).
    max_energy : float, optional
        Drop lines above this energy (keV).
    min_weight : float
        Drop lines whose within-family weight is below this (0 keeps all).

    Returns
    -------
    list of (str, float, float)
        ``(line name, energy in keV, weight)`` per line, e.g. ``("Ni_Ka", 7.4781, 1.0)``.

    Raises
    ------
    InputError
        If the element is unknown (the message suggests close symbols).

    Examples
    --------
    >>> [(n, round(e, 3)) for n, e, w in xray_lines("Ni", min_weight=0.5)]
    [('Ni_La', 0.851), ('Ni_Ka', 7.478)]
    """
    lines = _entry(element).get("Atomic_properties", {}).get("Xray_lines", {})
    out = []
    for name, props in lines.items():
        energy, weight = float(props["energy (keV)"]), float(props["weight"])
        if max_energy is not None and energy > max_energy:
            continue
        if weight < min_weight:
            continue
        out.append((f"{element}_{name}", energy, weight))
    return sorted(out, key=lambda t: t[1])


def fwhm_at_energy(energy: Any, *, fwhm_mnka: float = DEFAULT_FWHM_MNKA_EV) -> np.ndarray:
    """Return the detector's peak FWHM (keV) at ``energy``, scaled from its Mn Ka resolution.

    Uses ``FWHM(E)² = FWHM(Mn Ka)² + 2.5 (E − E(Mn Ka))`` in eV (Fiori & Newbury 1978), the
    formula exSpy uses, with E(Mn Ka) from the database. Values are floored at 10 eV.

    Parameters
    ----------
    energy : float or array_like, keV
        Peak energies.
    fwhm_mnka : float
        Detector resolution at Mn Ka in eV (≈ 125–140 eV for silicon-drift detectors).

    Returns
    -------
    ndarray, same shape as ``energy``, keV
        Full width at half maximum.

    Examples
    --------
    >>> round(float(fwhm_at_energy(5.8987)), 4)
    0.13
    """
    if not (np.isfinite(fwhm_mnka) and fwhm_mnka > 0):
        raise InputError(f"fwhm_mnka must be a positive resolution in eV; got {fwhm_mnka!r}.")
    e_ref = dict((n, e) for n, e, _ in xray_lines("Mn"))["Mn_Ka"]
    e_ev = np.asarray(energy, dtype=np.float64) * 1000.0
    fwhm2 = fwhm_mnka**2 + _FANO_SLOPE * (e_ev - e_ref * 1000.0)
    return np.sqrt(np.maximum(fwhm2, _MIN_FWHM_EV**2)) / 1000.0


def _check_axis(energy_axis: Any) -> np.ndarray:
    axis = np.asarray(energy_axis, dtype=np.float64)
    if axis.ndim != 1 or axis.size < 2:
        raise InputError(
            f"energy_axis must be 1-D with at least 2 channels (keV); got shape {axis.shape}."
        )
    if not np.all(np.isfinite(axis)) or np.any(np.diff(axis) <= 0):
        raise InputError("energy_axis must be finite and strictly increasing (keV per channel).")
    return axis


def line_windows(
    elements: str | Iterable[str], energy_axis: Any, *, width: float | None = None
) -> list[tuple[str, float, float]]:
    """Return integration windows around each element's strongest lines inside the axis.

    For every element and every line family (K, L, M) the strongest line of the family is
    kept when its energy lies within the axis. The window is centred on the line, ``width``
    wide, and clipped to the axis.

    Parameters
    ----------
    elements : str or iterable of str
        Chemical symbols, e.g. ``["Co", "Cu"]``.
    energy_axis : array_like, shape (E,), keV
        Channel energies of the spectrum.
    width : float, optional
        Window width in keV. Default: twice the detector FWHM at each line (130 eV at Mn Ka,
        scaled with energy by :func:`fwhm_at_energy`), exSpy's default integration window.

    Returns
    -------
    list of (str, float, float)
        ``(line name, lo keV, hi keV)``, sorted by line energy.

    Raises
    ------
    InputError
        If an element is unknown, the axis is not 1-D increasing, or ``width`` is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> axis = np.arange(512) * 0.02
    >>> [(n, round(lo, 3), round(hi, 3)) for n, lo, hi in line_windows("Ni", axis)]
    [('Ni_La', 0.786, 0.917), ('Ni_Ka', 7.334, 7.622)]
    """
    axis = _check_axis(energy_axis)
    if width is not None and not (np.isfinite(width) and width > 0):
        raise InputError(f"width must be a positive window in keV; got {width!r}.")
    names = [elements] if isinstance(elements, str) else list(elements)
    out = []
    for element in names:
        strongest: dict[str, tuple[str, float, float]] = {}
        for name, energy, weight in xray_lines(element):
            family = name.split("_", 1)[1][0]
            if axis[0] <= energy <= axis[-1] and (
                family not in strongest or weight > strongest[family][2]
            ):
                strongest[family] = (name, energy, weight)
        for name, energy, _ in strongest.values():
            half = 0.5 * (width if width is not None else 2.0 * float(fwhm_at_energy(energy)))
            out.append((name, energy, max(axis[0], energy - half), min(axis[-1], energy + half)))
    return [(n, lo, hi) for n, _, lo, hi in sorted(out, key=lambda t: t[1])]
