"""HAADF-STEM images of crystal projections built with ASE (the Atomic Simulation Environment).

Structures come from ASE (``ase.spacegroup.crystal``, ``ase.build``), not from hand-typed
coordinates, and the image model is the incoherent Z-contrast approximation: each atom in a
projected column adds ``Z**1.7`` per repeat along the beam, the column sum is spread by a
Gaussian probe, and Poisson noise is drawn. abTEM (a multislice simulator) was the first
choice and is fast enough (its projected potential of an 82 Å × 82 Å × 78 Å SrTiO3 field took
2.2 s here), but abTEM 1.0.11 requires zarr >= 3.1 while this package pins zarr < 3, so it
cannot join the package's extras (see README). Columns are placed by ASE's atomic positions
(with in-plane rotation), which makes the lattices unlike the demo's hand-built fcc grids.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _ase():
    try:
        import ase.build
        import ase.spacegroup
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("The lattice cases need ASE: pip install -e .[suite]  (or pip install ase)") from err
    return ase


def srtio3_001():
    """Cubic perovskite SrTiO3 (a = 3.905 Å), beam along [001]."""
    ase = _ase()
    return ase.spacegroup.crystal(["Sr", "Ti", "O"], basis=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)],
                                  spacegroup=221, cellpar=[3.905, 3.905, 3.905, 90, 90, 90])


def ge_110():
    """Diamond-cubic Ge (a = 5.658 Å), beam along [110]: the dumbbell projection."""
    ase = _ase()
    bulk = ase.build.bulk("Ge", "diamond", a=5.658, cubic=True)
    return ase.build.surface(bulk, (1, 1, 0), layers=2, periodic=True)


def gaas_110():
    """Zinc-blende GaAs (a = 5.653 Å), beam along [110]: polar dumbbells (Ga 31, As 33)."""
    ase = _ase()
    bulk = ase.build.bulk("GaAs", "zincblende", a=5.653, cubic=True)
    return ase.build.surface(bulk, (1, 1, 0), layers=2, periodic=True)


def column_image(atoms, shape: tuple[int, int], pixel_a: float, rng: np.random.Generator, *,
                 angle_deg: float = 0.0, thickness_a: float = 80.0, dopant: tuple[str, str, float] | None = None,
                 probe_sigma_a: float = 0.45) -> np.ndarray:
    """Noise-free HAADF image (arbitrary units) of ``atoms`` projected along its third cell axis.

    Parameters
    ----------
    atoms : ase.Atoms
        One period along the beam (the third cell vector is the beam direction).
    shape : (int, int)
        Image size in pixels.
    pixel_a : float
        Pixel size in Å.
    angle_deg : float
        In-plane rotation of the crystal.
    thickness_a : float
        Sample thickness in Å; the number of periods along the beam is rounded from it.
    dopant : (host, guest, fraction), optional
        Replace each ``host`` atom by ``guest`` with probability ``fraction``, independently
        per atom along each column (so columns carry binomial numbers of dopants).
    probe_sigma_a : float
        Gaussian probe standard deviation in Å.
    """
    h, w = shape
    repeats = max(1, round(thickness_a / float(np.linalg.norm(atoms.cell.array[2]))))
    field = np.hypot(h, w) * pixel_a
    cell = atoms.cell.array
    n1 = int(np.ceil(field / np.linalg.norm(cell[0]))) + 2
    n2 = int(np.ceil(field / np.linalg.norm(cell[1]))) + 2
    big = atoms.repeat((n1, n2, 1))
    pos = big.positions[:, :2] - (big.cell.array[0, :2] + big.cell.array[1, :2]) / 2
    t = np.deg2rad(angle_deg + rng.uniform(-1.5, 1.5))  # a small random mis-tilt in plane
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    pos = pos @ rot.T + rng.uniform(0, 2, size=2) + [w * pixel_a / 2, h * pixel_a / 2]
    z = big.get_atomic_numbers().astype(float)
    weight = repeats * z**1.7
    if dopant is not None:
        host, guest, frac = dopant
        from ase.data import atomic_numbers

        is_host = np.array(big.get_chemical_symbols()) == host
        n_guest = rng.binomial(repeats, frac, size=is_host.sum())
        weight[is_host] = (repeats - n_guest) * z[is_host] ** 1.7 + n_guest * atomic_numbers[guest] ** 1.7
    return _splat(pos / pixel_a, weight, shape, probe_sigma_a / pixel_a)


def _splat(xy: np.ndarray, weight: np.ndarray, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Bilinear deposit of point weights at (x, y) pixel positions, then a Gaussian probe."""
    h, w = shape
    x, y = xy[:, 0], xy[:, 1]
    keep = (x >= 0) & (x < w - 1) & (y >= 0) & (y < h - 1)
    x, y, wt = x[keep], y[keep], weight[keep]
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    img = np.zeros(shape)
    for dy, dx, f in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        np.add.at(img, (y0 + dy, x0 + dx), wt * f)
    # Probe: a Gaussian core plus a weak wide tail (aberrations), then normalised to mean 1 later.
    return ndimage.gaussian_filter(img, sigma_px) + 0.05 * ndimage.gaussian_filter(img, 6 * sigma_px)


def detector(rng: np.random.Generator, ideal: np.ndarray, *, electrons: float = 40.0,
             background: float = 0.15, read_noise: float = 0.02) -> np.ndarray:
    """Noisy detector image of a noise-free HAADF signal (normalised to its mean).

    Poisson counting at ``electrons`` per pixel for a mean-intensity pixel, a constant
    background (amorphous surface layers), Gaussian read noise, and row-to-row scan jitter
    (each scan line shifted by a random sub-pixel amount).
    """
    sig = ideal / ideal.mean() + background
    counts = rng.poisson(sig * electrons) / electrons
    counts += read_noise * rng.normal(size=counts.shape)
    shifts = ndimage.gaussian_filter1d(rng.normal(0, 0.6, size=counts.shape[0]), 2)
    for r, s in enumerate(shifts):
        counts[r] = ndimage.shift(counts[r], s, order=1, mode="mirror")
    return counts.astype(np.float32)
