"""A synthetic HAADF + EDS scene of a Ni alloy with a precipitate, a grain and an oxide.

The scene is built so that each modality alone fails on one pair of classes:

==  ===================  ==================================  ==============  ============
#   class                structure (projection)              HAADF           EDS
==  ===================  ==================================  ==============  ============
0   Ni matrix            fcc Ni [001]: square, a/2           reference       Ni
1   CoCu precipitate     coherent fcc Co0.5Cu0.5 [001]       same as 0       Co, Cu
2   Ni grain [011]       fcc Ni [011]: centred a × a/√2      same mean as 0  same as 0
3   Al2O3 oxide          amorphous, random columns           dark            Al, O
==  ===================  ==================================  ==============  ============

Image model: incoherent Z-contrast. Each atomic column adds ``(atoms per nm) × Z^1.7``
(mean Z for mixed columns) times the local thickness; columns are splatted bilinearly onto
the pixel grid and blurred by a Gaussian probe with a weak broad tail, then Poisson noise is
drawn. The mean HAADF signal per area is ``(atoms per nm³) × Z^1.7 × thickness`` for every
projection, so the [011] grain has the matrix's mean brightness and differs only in texture.

EDS model: per region, Gaussian X-ray lines (energies and within-family weights from
exSpy's database via :mod:`stem_fsl_widgets.elements`, widths from the detector resolution)
on a Kramers bremsstrahlung background, both seen through a detector efficiency that rolls
off at low energy, plus a small zero (noise) peak. Each EDS pixel's expected spectrum is the
area-weighted mix of the regions inside its footprint; counts are Poisson.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.special import erf

from ..dataset import Dataset
from ..elements import atomic_number, fwhm_at_energy, xray_lines
from ..errors import InputError

__all__ = ["demo", "region_elements", "region_spectra", "CLASSES"]

CLASSES = ("Ni matrix", "CoCu precipitate", "Ni grain [011]", "Al2O3 oxide")

# Atomic fractions per class. Co0.5Cu0.5 has mean Z = 28, exactly Ni's.
_COMPOSITION: tuple[dict[str, float], ...] = (
    {"Ni": 1.0},
    {"Co": 0.5, "Cu": 0.5},
    {"Ni": 1.0},
    {"Al": 0.4, "O": 0.6},
)

# fcc Ni lattice parameter at room temperature, a = 3.524 Å (e.g. Owen & Yates 1933; ICSD).
# The CoCu precipitate is taken as coherent: fcc Cu (3.615 Å) and fcc Co (3.544 Å) give a
# Vegard value of ≈ 3.58 Å, a 1.6 % misfit that a small coherent precipitate takes up
# elastically, so in projection it continues the matrix lattice.
A_NI_NM = 0.3524
# Atoms per nm³: fcc Ni 4/a³ ≈ 91.4; amorphous Al2O3 at 3.1 g/cm³ (ALD / anodic films,
# 3.0–3.3 g/cm³) is 3.1 / 101.96 g/mol × N_A × 5 atoms ≈ 91.5.
_AL2O3_DENSITY_G_CM3 = 3.1
_AL2O3_MOLAR_MASS = 101.96
_AVOGADRO = 6.02214076e23
# Closest approach of projected "columns" in the amorphous oxide (≈ the Al–O bond, 0.18 nm,
# shortened by projection) and of columns from two grains meeting at a boundary.
_OXIDE_MIN_SPACING_NM = 0.15
_BOUNDARY_MIN_SPACING_NM = 0.12

PIXEL_SIZE_NM = 0.03
HAADF_EXPONENT = 1.7  # Z-contrast exponent for a typical 70–200 mrad HAADF detector
# Effective column image width: an aberration-corrected probe (≈ 0.08–0.1 nm FWHM) widened
# by channelling; σ = 0.05 nm (0.12 nm FWHM) resolves Ni [001]'s 0.176 nm spacing, as real
# HAADF images do.
PROBE_SIGMA_NM = 0.05
_PROBE_TAIL_SIGMA_NM = 0.25  # broad probe tail (residual aberrations, source size)
_PROBE_TAIL_FRACTION = 0.1
_HAADF_OFFSET = 0.05  # diffuse/detector background, as a fraction of the Ni level
_THICKNESS_RMS = 0.02  # relative rms of the smooth thickness variation

BEAM_ENERGY_KEV = 200.0
FWHM_MNKA_EV = 130.0
N_CHANNELS = 512
CHANNEL_KEV = 0.02
# Detector efficiency exp(-(E_abs/E)^3): photo-absorption (∝ E^-3) in the window and dead
# layer; E_abs = 0.4 keV passes ≈ 64 % at O Ka and ≈ 90 % at Ni La.
_ABSORPTION_KEV = 0.4
# The database weights lines within a family only; these rough K : L : M production ratios
# per atom for a 200 kV TEM rank the families against each other.
_FAMILY_FACTOR = {"K": 1.0, "L": 0.35, "M": 0.1}
_BACKGROUND_FRACTION_NI = 0.3  # share of bremsstrahlung in a pure Ni spectrum
_ZERO_PEAK_FRACTION = 0.02  # share of the noise peak at 0 keV

# Low-resolution grid on which the smooth random fields are drawn (then interpolated).
_FIELD_GRID = 64
_MIN_REGION_FRACTION = 0.18


def region_elements() -> dict[str, list[str]]:
    """Return the elements of each demo class.

    Returns
    -------
    dict of str to list of str
        Class name → chemical symbols, e.g. ``{"Ni matrix": ["Ni"], ...}``.

    Examples
    --------
    >>> region_elements()["CoCu precipitate"]
    ['Co', 'Cu']
    """
    return {name: list(comp) for name, comp in zip(CLASSES, _COMPOSITION, strict=True)}


# --------------------------------------------------------------------------------- fields
def _smooth_field(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Unit-rms Gaussian random field of shape (size, size); ``sigma`` in field-grid cells."""
    g = _FIELD_GRID
    f = ndimage.gaussian_filter(rng.standard_normal((g, g)), sigma, mode="wrap")
    f = (f - f.mean()) / f.std()
    # Interpolate the coarse field at pixel centres, so any size gives a smooth map.
    c = (np.arange(size) + 0.5) * g / size - 0.5
    yy, xx = np.meshgrid(c, c, indexing="ij")
    return ndimage.map_coordinates(f, [yy, xx], order=1, mode="wrap")


def _region_map(rng: np.random.Generator, size: int) -> np.ndarray:
    """Label map (size, size) of 4 regions: argmax of smooth fields, balanced in area."""
    k = len(CLASSES)
    fields = np.stack(
        [_smooth_field(rng, size, 5.0) + 0.3 * _smooth_field(rng, size, 1.5) for _ in range(k)]
    )
    # Shift each field until no region is smaller than the floor (a few steps suffice).
    bias = np.zeros(k)
    for _ in range(100):
        labels = np.argmax(fields + bias[:, None, None], axis=0)
        frac = np.bincount(labels.ravel(), minlength=k) / labels.size
        if frac.min() >= _MIN_REGION_FRACTION:
            break
        bias -= 0.5 * (frac - 1.0 / k)
    return labels.astype(np.int64)


# ------------------------------------------------------------------------------- columns
def _lattice_columns(
    lo: float, hi: float, cell: np.ndarray, basis: np.ndarray, angle: float, origin: np.ndarray
) -> np.ndarray:
    """Column positions (n, 2) in nm as (y, x) covering the square ``[lo, hi]²`` nm.

    ``cell`` holds the two lattice vectors (2, 2) and ``basis`` the column offsets (m, 2),
    both as (y, x) before the in-plane rotation by ``angle`` (radians).
    """
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    reach = max(abs(lo), abs(hi)) * np.sqrt(2) + np.abs(origin).max()
    n = int(np.ceil(reach / np.linalg.norm(cell, axis=1).min())) + 2
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    nodes = i.reshape(-1, 1) * cell[0] + j.reshape(-1, 1) * cell[1]
    pos = (nodes[:, None, :] + basis[None]).reshape(-1, 2) @ rot.T + origin
    return pos[np.all((pos >= lo) & (pos <= hi), axis=1)]


def _fcc001() -> tuple[np.ndarray, np.ndarray, float]:
    """Return cell, basis, atoms/nm per column of fcc [001]: square, a/2; 1 atom per a."""
    a = A_NI_NM
    return np.array([[a / 2, 0.0], [0.0, a / 2]]), np.zeros((1, 2)), 1.0 / a


def _fcc011() -> tuple[np.ndarray, np.ndarray, float]:
    """Return cell, basis, atoms/nm per column of fcc [011]: centred a × a/√2; 1 atom per a/√2."""
    a = A_NI_NM
    cell = np.array([[a / np.sqrt(2), 0.0], [0.0, a]])
    basis = np.array([[0.0, 0.0], [a / (2 * np.sqrt(2)), a / 2]])
    return cell, basis, np.sqrt(2) / a


def _drop_close(pos: np.ndarray, min_spacing: float) -> np.ndarray:
    """Boolean mask (n,) keeping the earlier point of every pair closer than ``min_spacing``."""
    keep = np.ones(len(pos), dtype=bool)
    pairs = cKDTree(pos).query_pairs(min_spacing, output_type="ndarray")
    keep[np.unique(pairs.max(axis=1))] = False
    return keep


def _amorphous_columns(
    rng: np.random.Generator, lo: float, hi: float, min_spacing: float
) -> np.ndarray:
    """Random column positions (n, 2) in nm in ``[lo, hi]²``, none closer than ``min_spacing``.

    A few rounds of vectorised dart throwing fill the area close to random sequential
    adsorption's jamming density (≈ 0.55 of the plane covered by the exclusion discs).
    """
    area = (hi - lo) ** 2
    pos = np.empty((0, 2))
    for _ in range(6):
        darts = rng.uniform(lo, hi, size=(rng.poisson(1.5 * area / min_spacing**2), 2))
        if len(pos):
            dist, _ = cKDTree(pos).query(darts, distance_upper_bound=min_spacing)
            darts = darts[np.isinf(dist)]
        pos = np.concatenate([pos, darts[_drop_close(darts, min_spacing)]])
    return pos


def _columns(
    rng: np.random.Generator, labels: np.ndarray, pad: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (n, 2) in pixels (y, x) and HAADF weights (n,) of all atomic columns.

    Columns cover the image plus ``pad`` pixels each side (so the probe blur sees the
    neighbours of edge columns); outside the image a column takes the nearest edge label.
    """
    size = labels.shape[0]
    lo, hi = -pad * PIXEL_SIZE_NM, (size + pad) * PIXEL_SIZE_NM
    z_exp = [
        sum(c * atomic_number(el) for el, c in comp.items()) ** HAADF_EXPONENT
        for comp in _COMPOSITION
    ]
    theta_matrix = np.deg2rad(rng.uniform(-10.0, 10.0))
    theta_grain = theta_matrix + np.deg2rad(rng.uniform(25.0, 65.0))
    origin_matrix = rng.uniform(0, A_NI_NM, 2)
    origin_grain = rng.uniform(0, A_NI_NM, 2)

    cell, basis, per_nm = _fcc001()
    matrix = _lattice_columns(lo, hi, cell, basis, theta_matrix, origin_matrix)
    cell, basis, per_nm_grain = _fcc011()
    grain = _lattice_columns(lo, hi, cell, basis, theta_grain, origin_grain)
    oxide = _amorphous_columns(rng, lo, hi, _OXIDE_MIN_SPACING_NM)

    # Oxide columns share the atoms of the film evenly, with a random spread in column
    # length; the mean signal per area is then (atoms per nm³) × Z^1.7 as for the crystals.
    n_oxide = _AL2O3_DENSITY_G_CM3 / _AL2O3_MOLAR_MASS * _AVOGADRO * 5 / 1e21  # atoms/nm³
    oxide_w = n_oxide * (hi - lo) ** 2 / len(oxide) * rng.gamma(8.0, 1.0 / 8.0, len(oxide))

    pos, weight = [], []
    for cls, p, w in (
        (0, matrix, np.full(len(matrix), per_nm)),
        (1, matrix, np.full(len(matrix), per_nm)),
        (2, grain, np.full(len(grain), per_nm_grain)),
        (3, oxide, oxide_w),
    ):
        px = p / PIXEL_SIZE_NM
        iy = np.clip(np.rint(px[:, 0]).astype(int), 0, size - 1)
        ix = np.clip(np.rint(px[:, 1]).astype(int), 0, size - 1)
        mine = labels[iy, ix] == cls
        pos.append(px[mine])
        weight.append(w[mine] * z_exp[cls])
    pos_all, weight_all = np.concatenate(pos), np.concatenate(weight)
    # Where two grains meet, atoms cannot sit on top of each other: of two columns from
    # different regions closer than the boundary spacing, one (chosen at random, so neither
    # side is favoured) goes. The few lost columns leave the boundary slightly dark, as real
    # grain boundaries in HAADF are; the coherent matrix/precipitate interface loses none.
    order = rng.permutation(len(pos_all))
    pos_all, weight_all = pos_all[order], weight_all[order]
    keep = _drop_close(pos_all * PIXEL_SIZE_NM, _BOUNDARY_MIN_SPACING_NM)
    return pos_all[keep], weight_all[keep]


def _splat(pos: np.ndarray, weight: np.ndarray, size: int) -> np.ndarray:
    """Deposit weights at sub-pixel positions (n, 2) onto a (size, size) grid, bilinearly."""
    y0 = np.floor(pos[:, 0]).astype(np.int64)
    x0 = np.floor(pos[:, 1]).astype(np.int64)
    fy, fx = pos[:, 0] - y0, pos[:, 1] - x0
    out = np.zeros((size + 2) * (size + 2))
    for dy, dx, w in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        yy, xx = y0 + dy + 1, x0 + dx + 1  # +1: a one-pixel margin catches edge columns
        ok = (yy >= 0) & (yy < size + 2) & (xx >= 0) & (xx < size + 2)
        out += np.bincount(
            yy[ok] * (size + 2) + xx[ok], weights=(weight * w)[ok], minlength=out.size
        )
    return out.reshape(size + 2, size + 2)[1:-1, 1:-1]


def _haadf(
    rng: np.random.Generator, labels: np.ndarray, thickness: np.ndarray, electrons: float
) -> np.ndarray:
    """Noisy HAADF image (size, size), float32 counts with mean ``electrons`` per pixel."""
    size = labels.shape[0]
    sigma = PROBE_SIGMA_NM / PIXEL_SIZE_NM
    tail = _PROBE_TAIL_SIGMA_NM / PIXEL_SIZE_NM
    pad = int(np.ceil(4 * tail))  # render beyond the edges so edge pixels are not darkened
    pos, weight = _columns(rng, labels, pad)
    sharp = _splat(pos + pad, weight, size + 2 * pad)
    image = (1 - _PROBE_TAIL_FRACTION) * ndimage.gaussian_filter(sharp, sigma)
    image += _PROBE_TAIL_FRACTION * ndimage.gaussian_filter(sharp, tail)
    image = image[pad:-pad, pad:-pad]
    ni_level = 4.0 / A_NI_NM**3 * PIXEL_SIZE_NM**2 * atomic_number("Ni") ** HAADF_EXPONENT
    expected = (image + _HAADF_OFFSET * ni_level) * thickness
    expected *= electrons / expected.mean()
    return rng.poisson(expected).astype(np.float32)


# ----------------------------------------------------------------------------------- EDS
def _channel_gaussian(energy: np.ndarray, centre: float, fwhm: float) -> np.ndarray:
    """Fraction of a unit-area Gaussian line falling in each channel (channel centres)."""
    half = 0.5 * (energy[1] - energy[0])
    s = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0))) * np.sqrt(2.0)
    return 0.5 * (erf((energy + half - centre) / s) - erf((energy - half - centre) / s))


def _efficiency(energy: np.ndarray) -> np.ndarray:
    """Detector efficiency (E,) with its low-energy absorption roll-off."""
    e = np.maximum(energy, 1e-3)
    return np.exp(-((_ABSORPTION_KEV / e) ** 3))


def _line_spectrum(energy: np.ndarray, composition: dict[str, float]) -> np.ndarray:
    """Characteristic X-ray counts (E,) per atom fraction, before normalisation."""
    out = np.zeros_like(energy)
    for element, fraction in composition.items():
        for name, e_line, weight in xray_lines(element, max_energy=energy[-1] + 0.5):
            family = name.split("_", 1)[1][0]
            strength = fraction * _FAMILY_FACTOR.get(family, 0.0) * weight
            strength *= _efficiency(np.array([e_line]))[0]
            fwhm = float(fwhm_at_energy(e_line, fwhm_mnka=FWHM_MNKA_EV))
            out += strength * _channel_gaussian(energy, e_line, fwhm)
    return out


def _bremsstrahlung(energy: np.ndarray, mean_z: float) -> np.ndarray:
    """Kramers continuum Z (E0 − E) / E seen through the detector efficiency, (E,)."""
    e = np.maximum(energy, 1e-3)
    return mean_z * np.clip(BEAM_ENERGY_KEV - e, 0, None) / e * _efficiency(energy)


def region_spectra(energy: np.ndarray, *, counts: float = 20.0) -> np.ndarray:
    """Return the expected EDS spectrum of each demo class (unit thickness).

    Parameters
    ----------
    energy : ndarray, shape (E,), keV
        Channel centres (uniform spacing).
    counts : float
        Total expected counts of each spectrum.

    Returns
    -------
    ndarray of float64, shape (4, E)
        Expected counts per channel for the classes in :data:`CLASSES` order.

    Examples
    --------
    >>> s = region_spectra(np.arange(512) * 0.02)
    >>> s.shape, bool(np.allclose(s.sum(axis=1), 20.0)), bool(np.array_equal(s[0], s[2]))
    ((4, 512), True, True)
    """
    energy = np.asarray(energy, dtype=np.float64)
    # One bremsstrahlung scale for all classes, set by the Ni peak-to-background ratio; the
    # continuum then follows each class's mean Z (Kramers).
    ni_lines = _line_spectrum(energy, {"Ni": 1.0})
    ni_brems = _bremsstrahlung(energy, atomic_number("Ni"))
    k_brems = _BACKGROUND_FRACTION_NI / (1 - _BACKGROUND_FRACTION_NI) * ni_lines.sum()
    k_brems /= ni_brems.sum()
    zero = _channel_gaussian(energy, 0.0, float(fwhm_at_energy(0.0, fwhm_mnka=FWHM_MNKA_EV)))
    spectra = []
    for comp in _COMPOSITION:
        mean_z = sum(c * atomic_number(el) for el, c in comp.items())
        s = _line_spectrum(energy, comp) + k_brems * _bremsstrahlung(energy, mean_z)
        s *= (1 - _ZERO_PEAK_FRACTION) / s.sum()
        s += _ZERO_PEAK_FRACTION * zero / zero.sum()
        spectra.append(counts * s)
    return np.stack(spectra)


def _eds_cube(
    rng: np.random.Generator,
    labels: np.ndarray,
    thickness: np.ndarray,
    binning: int,
    counts: float,
    energy: np.ndarray,
) -> np.ndarray:
    """Poisson EDS cube (size//b, size//b, E), uint16, mixing regions by area per pixel."""
    k = len(CLASSES)
    n = labels.shape[0] // binning
    crop = labels[: n * binning, : n * binning]
    onehot = np.stack([crop == c for c in range(k)], axis=-1).astype(np.float64)
    frac = onehot.reshape(n, binning, n, binning, k).mean(axis=(1, 3))
    t = thickness[: n * binning, : n * binning].reshape(n, binning, n, binning).mean(axis=(1, 3))
    expected = (frac * t[..., None]) @ region_spectra(energy, counts=counts)
    # uint16 holds any realistic dose; switch to int32 only where a channel could overflow.
    dtype = np.uint16 if expected.max() < 30000 else np.int32
    return rng.poisson(expected).astype(dtype)


# ---------------------------------------------------------------------------------- demo
def _check(size: int, eds_binning: int, counts: float, electrons: float) -> None:
    if int(size) != size or size < 64:
        raise InputError(f"size must be an integer ≥ 64 pixels; got {size!r}.")
    if int(eds_binning) != eds_binning or not 1 <= eds_binning <= size // 16:
        raise InputError(
            f"eds_binning must be an integer from 1 to size/16 = {size // 16}; got {eds_binning!r}."
        )
    for name, value in (("counts_per_pixel", counts), ("electrons_per_pixel", electrons)):
        if not (np.isfinite(value) and value > 0):
            raise InputError(f"{name} must be a positive number; got {value!r}.")


def demo(
    *,
    size: int = 512,
    seed: int = 0,
    eds_binning: int = 4,
    counts_per_pixel: float = 20.0,
    electrons_per_pixel: float = 200.0,
) -> Dataset:
    """Generate the demo HAADF + EDS dataset: Ni matrix, CoCu precipitate, Ni grain, oxide.

    Offline and deterministic: the same arguments give identical arrays. See the module
    docstring for the physics; classes 0/1 differ only in EDS, 0/2 only in the image.

    Parameters
    ----------
    size : int
        Image side in pixels (≥ 64); pixels are 0.03 nm, so 512 px is 15.4 nm.
    seed : int
        Seed of the random region layout, lattice rotations and noise.
    eds_binning : int
        Image pixels per EDS pixel along each axis (EDS map is ``size // eds_binning``).
    counts_per_pixel : float
        Mean expected X-ray counts per EDS pixel (5–50 is a realistic low dose).
    electrons_per_pixel : float
        Mean detected HAADF electrons per image pixel (sets the shot noise).

    Returns
    -------
    Dataset
        ``image`` float32 (size, size) counts; ``eds`` (size//b, size//b, 512) counts,
        uint16 (int32 only at extreme doses);
        ``energy_axis`` (512,) keV, 0–10.22 keV in 20 eV channels; ``pixel_size`` 0.03 nm;
        ``ground_truth`` int64 (size, size) with values 0–3 naming ``truth_classes``;
        ``metadata`` with the region fractions and the model parameters.

    Raises
    ------
    InputError
        If a parameter is out of range.

    Examples
    --------
    >>> ds = demo(size=128, seed=1)
    >>> ds.image.shape, ds.eds.shape, ds.truth_classes[1]
    ((128, 128), (32, 32, 512), 'CoCu precipitate')
    """
    _check(size, eds_binning, counts_per_pixel, electrons_per_pixel)
    size, b = int(size), int(eds_binning)
    rng = np.random.default_rng(seed)
    labels = _region_map(rng, size)
    thickness = 1.0 + _THICKNESS_RMS * _smooth_field(rng, size, 6.0)
    image = _haadf(rng, labels, thickness, electrons_per_pixel)
    energy = np.arange(N_CHANNELS) * CHANNEL_KEV
    eds = _eds_cube(rng, labels, thickness, b, counts_per_pixel, energy)
    fractions = np.bincount(labels.ravel(), minlength=len(CLASSES)) / labels.size
    metadata = {
        "seed": seed,
        "region_fractions": {c: float(f) for c, f in zip(CLASSES, fractions, strict=True)},
        "region_elements": region_elements(),
        "lattice_parameter_nm": A_NI_NM,
        "probe_sigma_nm": PROBE_SIGMA_NM,
        "beam_energy_keV": BEAM_ENERGY_KEV,
        "fwhm_mnka_eV": FWHM_MNKA_EV,
        "counts_per_pixel": counts_per_pixel,
        "electrons_per_pixel": electrons_per_pixel,
    }
    return Dataset(
        image,
        eds=eds,
        energy_axis=energy,
        eds_binning=b,
        pixel_size=PIXEL_SIZE_NM,
        eds_pixel_size=PIXEL_SIZE_NM * b,
        pixel_unit="nm",
        name="demo: Ni / CoCu / Ni[011] / Al2O3",
        ground_truth=labels,
        truth_classes=list(CLASSES),
        metadata=metadata,
    )
