"""The suite's cases: images (and EDS cubes) unlike the demo data, each with a pixel ground truth.

Every case is built by a function of this module from a fixed seed, from sources the engine
was not tuned on: scikit-image's photographs, exSpy's measured spectra, crystal structures
from ASE, and real experimental STEM files shipped inside package wheels
(:mod:`stem_fsl_widgets.datasets.real`). :func:`build_cases` builds them once and caches each
as ``.npz`` under ``<cache>/suite/`` (``$SFW_DATA_DIR`` or ``~/.cache/stem_fsl_widgets``).
How each truth is defined is in its builder's docstring and in ``benchmarks/suite/README.md``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from . import fields, lattices, spectra

#: Bump when a builder changes, so cached cases are rebuilt.
CASES_VERSION = 2

#: Seed of every case (each builder derives its own stream from it and its name).
SEED = 20261130



@dataclass
class Case:
    """One evaluation case.

    Attributes
    ----------
    name : str
        Short identifier (``--cases`` picks by it).
    kind : str
        What kind of data it stands for, in a few words.
    image : ndarray of float32, shape (H, W)
    eds : ndarray of float32, shape (Ye, Xe, E), or None
        EDS counts; ``eds_binning`` image pixels per EDS pixel.
    energy : ndarray, shape (E,), keV, or None
    eds_binning : int
    truth : ndarray of int64, shape (H, W)
        Class id 0..K-1 per pixel; -1 = ignored (not scored).
    class_names : list of str
    chip_size : int
    stride : int or None
    pixel_size : float or None
    pixel_unit : str
    source : str
        Where the data come from (package, version, licence).
    truth_rule : str
        How the ground truth was defined.
    """

    name: str
    kind: str
    image: np.ndarray
    truth: np.ndarray
    class_names: list[str]
    chip_size: int
    eds: np.ndarray | None = None
    energy: np.ndarray | None = None
    eds_binning: int = 1
    stride: int | None = None
    pixel_size: float | None = None
    pixel_unit: str = "px"
    source: str = ""
    truth_rule: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        """Number of classes K."""
        return len(self.class_names)

    @property
    def fractions(self) -> np.ndarray:
        """Area fraction of each class among the scored pixels."""
        return fields.class_fractions(self.truth, self.n_classes)

    def dataset(self):
        """The case as a :class:`stem_fsl_widgets.Dataset` (with its ground truth)."""
        from stem_fsl_widgets import Dataset

        eds_kw = {}
        if self.eds is not None:
            eds_kw = {"eds": self.eds, "energy_axis": self.energy, "eds_binning": self.eds_binning}
        return Dataset(self.image, pixel_size=self.pixel_size, pixel_unit=self.pixel_unit, name=self.name,
                       ground_truth=self.truth, truth_classes=list(self.class_names), **eds_kw)

    # ------------------------------------------------------------------ cache
    def save(self, path: Path) -> None:
        """Write the case as one ``.npz`` (arrays + JSON metadata)."""
        meta = {k: getattr(self, k) for k in ("name", "kind", "class_names", "chip_size", "eds_binning",
                                               "stride", "pixel_size", "pixel_unit", "source", "truth_rule")}
        meta["meta"] = self.meta
        arrays = {"image": self.image, "truth": self.truth, "meta": np.array(json.dumps(meta))}
        if self.eds is not None:
            arrays.update(eds=self.eds, energy=self.energy)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Case:
        """Read a case written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            extra = meta.pop("meta", {})
            eds = z["eds"] if "eds" in z else None
            energy = z["energy"] if "energy" in z else None
            return cls(image=z["image"], truth=z["truth"], eds=eds, energy=energy, meta=extra, **meta)


# ---------------------------------------------------------------------- helpers
def _rng(name: str, seed: int = SEED) -> np.random.Generator:
    return np.random.default_rng([seed, sum(map(ord, name))])


def _texture(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``size``² crop of a scikit-image photograph, grey, mean 0 and std 1.

    Mean and spread are equalised so that the classes differ by texture, not by brightness
    (phases of equal mean HAADF signal).
    """
    import skimage.data
    from skimage.color import rgb2gray

    img = getattr(skimage.data, name)()
    img = rgb2gray(img) if img.ndim == 3 else img.astype(float)
    h, w = img.shape
    y0, x0 = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    crop = img[y0 : y0 + size, x0 : x0 + size].astype(float)
    return (crop - crop.mean()) / crop.std()


def _compose(layers: list[np.ndarray], truth: np.ndarray) -> np.ndarray:
    out = np.zeros(truth.shape)
    for c, layer in enumerate(layers):
        out[truth == c] = layer[truth == c]
    return out


def _add_minor(rng: np.random.Generator, truth: np.ndarray, cls: int, lo: float, hi: float,
               radii=(30, 40)) -> np.ndarray:
    """Paint blobs of class ``cls`` onto ``truth`` until it covers ``lo``..``hi`` of the area."""
    for _ in range(50):
        mask = np.zeros(truth.shape, bool)
        while (mask.mean() < lo):
            r = rng.uniform(*radii)
            add = fields.blobs(rng, truth.shape, [r], margin=4)
            if (mask | add).mean() > hi:
                break
            mask |= add
        if lo <= mask.mean() <= hi:
            out = truth.copy()
            out[mask] = cls
            return out
    raise RuntimeError("could not place the minor class")  # pragma: no cover


def _drop_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    lab, n = ndimage.label(mask)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep = sizes >= min_size
    keep[0] = False
    return keep[lab]


def _clean(mask: np.ndarray, min_size: int) -> np.ndarray:
    """Remove objects, then fill holes, smaller than ``min_size`` px (scipy: stable across skimage)."""
    mask = _drop_small(mask, min_size)
    return ~_drop_small(~mask, min_size)


def _opening(mask: np.ndarray, radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return ndimage.binary_opening(mask, structure=yy**2 + xx**2 <= radius**2)


def _bin(img: np.ndarray, b: int) -> np.ndarray:
    h, w = (img.shape[0] // b) * b, (img.shape[1] // b) * b
    return img[:h, :w].reshape(h // b, b, w // b, b).mean(axis=(1, 3))


def _scaled(img: np.ndarray, lo: float = 100.0, spread: float = 20.0) -> np.ndarray:
    """Detector-like counts: mean ``lo``, std ``spread`` per unit of the input, float32."""
    return (lo + spread * img).astype(np.float32)


# ---------------------------------------------------------------------- builders
def textures3_flat_eds(quick: bool, seed: int = SEED) -> Case:
    """Three photographed textures (brick, grass, gravel); EDS with no class information.

    Image: scikit-image's ``brick``, ``grass`` and ``gravel`` photographs, each equalised to
    mean 0 / std 1, composed by a Voronoi map of 7 cells with wavy boundaries. EDS: exSpy's
    measured FePt spectrum everywhere (20 counts per EDS pixel, 4× binning, Poisson), so it
    carries no class information. Truth: the Voronoi map itself.
    """
    rng = _rng("textures3_flat_eds", seed)
    n = 256 if quick else 512
    truth = fields.voronoi_regions(rng, (n, n), 7, 3)
    img = _compose([_texture(t, n, rng) for t in ("brick", "grass", "gravel")], truth)
    sp = spectra.measured_spectra()
    eds = spectra.poisson_cube(rng, np.ones((n, n, 1)), sp["FePt"][None], 4, 20.0)
    return Case("textures3_flat_eds", "photo textures, EDS uninformative", _scaled(img), truth,
                ["brick", "grass", "gravel"], 32, eds=eds, energy=spectra.ENERGY, eds_binning=4,
                source="scikit-image data (BSD-3); exSpy EDS_TEM_FePt_nanoparticles (GPL-3)",
                truth_rule="Voronoi map used to compose the textures")


def textures4_spectra(quick: bool, seed: int = SEED) -> Case:
    """Four classes, one of them 5-7 % of the area: textures + measured spectra mixed per class.

    Image: ``brick``, ``grass``, ``moon`` (Voronoi, 5 cells) and ``gravel`` blobs (the minor
    class, 5-7 % of the area), textures equalised in mean and std. EDS: each class a mix of
    exSpy's two measured spectra, FePt (TEM) and TM002 (SEM), with TM002 shares 0, 0.35, 0.7
    and 1.0; 15 counts per EDS pixel, 4× binning, Poisson; mixed over each EDS pixel's
    footprint. Truth: the composition map.
    """
    rng = _rng("textures4_spectra", seed)
    n = 256 if quick else 512
    truth = fields.voronoi_regions(rng, (n, n), 5, 3, warp=0.05)
    radii = (22, 28) if quick else (45, 55)
    truth = _add_minor(rng, truth, 3, 0.05, 0.07, radii)
    img = _compose([_texture(t, n, rng) for t in ("brick", "grass", "moon", "gravel")], truth)
    sp = spectra.measured_spectra()
    share = np.array([0.0, 0.35, 0.7, 1.0])
    cls_spec = (1 - share)[:, None] * sp["FePt"][None] + share[:, None] * sp["TM002"][None]
    onehot = (truth[..., None] == np.arange(4)).astype(float)
    eds = spectra.poisson_cube(rng, onehot, cls_spec, 4, 15.0)
    return Case("textures4_spectra", "4 textures + measured spectra, minor class 6 %", _scaled(img), truth,
                ["brick", "grass", "moon", "gravel (minor)"], 32, eds=eds, energy=spectra.ENERGY,
                eds_binning=4, source="scikit-image data (BSD-3); exSpy EDS_SEM_TM002 and "
                "EDS_TEM_FePt_nanoparticles (GPL-3)", truth_rule="composition map")


def camera_otsu(quick: bool) -> Case:
    """scikit-image's ``camera`` photograph; truth = dark vs bright by Otsu's threshold.

    Truth: Otsu threshold of the image smoothed by a Gaussian (σ = 4 px), then objects and
    holes under 256 px removed. Class "dark" is the coat, camera and tripod (and dark
    grass), "bright" the sky, buildings and light grass. Quick: 2× binned.
    """
    import skimage.data
    from skimage.filters import threshold_otsu

    img = skimage.data.camera().astype(float)
    if quick:
        img = _bin(img, 2)
    sm = ndimage.gaussian_filter(img, 4 if not quick else 2)
    bright = _clean(sm > threshold_otsu(sm), 256 if not quick else 64)
    return Case("camera_otsu", "natural photo, intensity-defined truth", img.astype(np.float32),
                bright.astype(np.int64), ["dark", "bright"], 32, source="scikit-image data camera (public domain)",
                truth_rule="Otsu threshold of Gaussian(σ=4)-smoothed image, objects/holes < 256 px removed")


def coins_otsu(quick: bool) -> Case:
    """scikit-image's ``coins`` photograph; truth = coins vs background, 16-px chips.

    Truth: Otsu threshold of the image smoothed by a Gaussian (σ = 2 px), holes filled,
    objects under 100 px removed. Coins are 40-60 px across, so 16-px chips resolve them.
    """
    import skimage.data
    from skimage.filters import threshold_otsu

    img = skimage.data.coins().astype(float)
    sm = ndimage.gaussian_filter(img, 2)
    coin = ndimage.binary_fill_holes(_clean(sm > threshold_otsu(sm), 100))
    return Case("coins_otsu", "natural photo, small objects", img.astype(np.float32), coin.astype(np.int64),
                ["background", "coin"], 16, source="scikit-image data coins (Greek coins, public domain)",
                truth_rule="Otsu threshold of Gaussian(σ=2)-smoothed image, holes filled, objects < 100 px removed")


def haadf_lattices(quick: bool, seed: int = SEED) -> Case:
    """Four crystal projections from ASE structures, HAADF model, 64-px chips.

    SrTiO3 [001], La-doped SrTiO3 [001] (30 % La on Sr sites, binomial per column, so the
    A columns are brighter and uneven), Ge [110] (dumbbells) and SrTiO3 [001] rotated 30° in
    plane; 80 Å thick, 0.16 Å/px, Gaussian probe σ = 0.45 Å with a weak tail, 40 e⁻ per
    mean pixel, Poisson noise, scan-line jitter. Regions: Voronoi map of 4 cells with seeds
    on a jittered grid. Truth: that map. Chips of 64 px at a stride of 32 px (overlapping).
    """
    rng = _rng("haadf_lattices", seed)
    n = 256 if quick else 512
    truth = fields.voronoi_regions(rng, (n, n), 4, 4, jittered_grid=True, warp=0.05)
    px = 0.16
    phases = [lattices.column_image(lattices.srtio3_001(), (n, n), px, rng),
              lattices.column_image(lattices.srtio3_001(), (n, n), px, rng, dopant=("Sr", "La", 0.3)),
              lattices.column_image(lattices.ge_110(), (n, n), px, rng),
              lattices.column_image(lattices.srtio3_001(), (n, n), px, rng, angle_deg=30.0)]
    ref = phases[0].mean()
    ideal = _compose([p / ref for p in phases], truth)
    img = lattices.detector(rng, ideal)
    return Case("haadf_lattices", "simulated HAADF lattices (ASE structures)", img, truth,
                ["SrTiO3 [001]", "La:SrTiO3 [001]", "Ge [110]", "SrTiO3 [001] rot 30°"], 64, stride=32,
                pixel_size=px / 10, pixel_unit="nm", source="structures: ASE (LGPL-2.1); image model: "
                "incoherent Z^1.7 columns + Gaussian probe (this suite)", truth_rule="Voronoi map of the phases")


def fept_particles(quick: bool, seed: int = SEED) -> Case:
    """FePt-like particles (8-25 px across) on amorphous carbon, with real EDS; 64-px chips.

    Image: particles with a spherical thickness profile, 3-5× the support's brightness with
    a random factor per particle, scattered singly and in a few agglomerates, on an
    amorphous support (fine speckle plus slow thickness variation), 25 e⁻ per support pixel,
    Poisson. EDS (4× binning): particles emit exSpy's measured FePt spectrum in proportion to
    their thickness, the support the continuum of that spectrum (peaks removed).
    Truth: particle where the particle thickness is > 0. Most particles are smaller than a
    chip, so the chip-majority ceiling is well below 1.
    """
    rng = _rng("fept_particles", seed)
    n = 256 if quick else 512
    yy, xx = np.mgrid[0:n, 0:n]
    thick = np.zeros((n, n))
    glow = np.zeros((n, n))
    centres = [rng.uniform(15, n - 15, 2) for _ in range(n * n // 2600)]
    for _ in range(3 if not quick else 1):  # agglomerates: many particles in a disc of ~60 px
        c0 = rng.uniform(70, n - 70, 2) if not quick else rng.uniform(40, n - 40, 2)
        for _ in range(28):
            centres.append(c0 + rng.normal(0, 22, 2))
    for cy, cx in centres:
        r = rng.uniform(4, 12.5)
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        prof = np.sqrt(np.clip(r * r - d2, 0, None)) / 12.5
        thick = np.maximum(thick, prof)
        glow = np.maximum(glow, prof * rng.uniform(3, 5))
    particle = thick > 0
    support = 1.0 + 0.2 * fields.smooth_field(rng, (n, n), 60) + 0.25 * fields.smooth_field(rng, (n, n), 1.0)
    ideal = np.clip(support, 0.2, None) + 2.0 * glow
    ideal = ndimage.gaussian_filter(ideal, 0.8)
    img = (rng.poisson(ideal * 25) / 25.0).astype(np.float32)
    sp = spectra.measured_spectra()
    weights = np.stack([np.ones((n, n)), 6.0 * thick], axis=-1)
    eds = spectra.poisson_cube(rng, weights, np.stack([sp["FePt continuum"], sp["FePt"]]), 4, 8.0)
    return Case("fept_particles", "particles smaller than a chip + real FePt EDS", img, particle.astype(np.int64),
                ["support", "FePt particle"], 64, eds=eds, energy=spectra.ENERGY, eds_binning=4,
                pixel_size=0.3, pixel_unit="nm", source="exSpy EDS_TEM_FePt_nanoparticles (GPL-3); "
                "particle image model (this suite)", truth_rule="particle thickness > 0")


def minor_class(quick: bool, seed: int = SEED) -> Case:
    """A class of ≤ 5 % of the area: brick inclusions in a moon/gravel mosaic.

    Textures equalised in mean and std; the two major classes by a Voronoi map of 8 cells;
    the minor class painted as wobbly discs (r 30-40 px) until it covers 3.5-5 % of the
    area. No EDS. Truth: the composition map.
    """
    rng = _rng("minor_class", seed)
    n = 256 if quick else 512
    truth = fields.voronoi_regions(rng, (n, n), 8, 2)
    radii = (15, 20) if quick else (30, 40)
    truth = _add_minor(rng, truth, 2, 0.035, 0.05, radii)
    img = _compose([_texture(t, n, rng) for t in ("moon", "gravel", "brick")], truth)
    return Case("minor_class", "minor class ≤ 5 %", _scaled(img), truth, ["moon", "gravel", "brick (minor)"], 32,
                source="scikit-image data (BSD-3)", truth_rule="composition map")


def ramp_textures(quick: bool, seed: int = SEED) -> Case:
    """Two textures (grass, brick) under a strong intensity ramp across the field.

    Textures equalised in mean and std, composed by a 6-cell Voronoi map; then the image is
    multiplied by a gain that rises linearly from 0.4 to 1.6 and offset by a background
    that rises by 1.5 std, both along a 30° direction: the brightness says where a chip is,
    not what it is. Truth: the composition map.
    """
    rng = _rng("ramp_textures", seed)
    n = 256 if quick else 512
    truth = fields.voronoi_regions(rng, (n, n), 6, 2)
    img = _compose([_texture(t, n, rng) for t in ("grass", "brick")], truth)
    r = fields.ramp((n, n), 30.0)
    img = img * (0.4 + 1.2 * r) + 1.5 * r
    return Case("ramp_textures", "intensity ramp over two textures", _scaled(img), truth, ["grass", "brick"], 32,
                source="scikit-image data (BSD-3)", truth_rule="composition map")


def thickness_lattice(quick: bool, seed: int = SEED) -> Case:
    """SrTiO3 [001] next to GaAs [110] in a wedge: HAADF ∝ thickness, thickness 0.3→1 exp. ramp.

    Both phases rendered at the same thickness (ASE structures, Z^1.7 columns, probe as in
    ``haadf_lattices``), composed by a 4-cell Voronoi map, then multiplied by a thickness
    profile ``exp(-1.2 (1 - r))`` with r rising 0→1 along 60°, plus 40 e⁻ Poisson noise.
    Truth: the phase map. 64-px chips.
    """
    rng = _rng("thickness_lattice", seed)
    n = 256 if quick else 512
    truth = fields.voronoi_regions(rng, (n, n), 4, 2, jittered_grid=True, warp=0.05)
    px = 0.16
    phases = [lattices.column_image(lattices.srtio3_001(), (n, n), px, rng, angle_deg=10.0),
              lattices.column_image(lattices.gaas_110(), (n, n), px, rng, angle_deg=-5.0)]
    ref = phases[0].mean()
    ideal = _compose([p / ref for p in phases], truth) * np.exp(-1.2 * (1 - fields.ramp((n, n), 60.0)))
    img = lattices.detector(rng, ideal)
    return Case("thickness_lattice", "HAADF lattices under a thickness gradient", img, truth,
                ["SrTiO3 [001]", "GaAs [110]"], 64, pixel_size=px / 10, pixel_unit="nm",
                source="structures: ASE (LGPL-2.1); image model (this suite)", truth_rule="phase map")


def real_au(quick: bool) -> Case:
    """Real HAADF-STEM image of Au nanoparticles on carbon (temul-toolkit's example .emd).

    File: ``temul/example_data/experimental/example_Au_nanoparticle.emd`` from the
    temul-toolkit 0.1.9 wheel (GPL-3.0), 2048² px at 0.0075 nm/px, read by
    ``stem_fsl_widgets.load``; binned 2× to 1024² (quick: 4× to 512²).
    Truth: Otsu threshold of the binned image smoothed by a Gaussian (σ = 3 px at 1024²),
    then a binary opening (disk radius 2) and objects/holes under 256 px removed; classes
    support (dark) / particle (bright). Particle rims are therefore where a smoothed
    intensity crosses Otsu's level: a reproducible, not a hand-drawn, boundary.
    """
    from skimage.filters import threshold_otsu

    import stem_fsl_widgets as sfw
    from stem_fsl_widgets.datasets.real import real_file

    ds = sfw.load(real_file("au_nanoparticles"))
    b = 4 if quick else 2
    img = _bin(ds.image.astype(float), b)
    s = 3.0 * 2 / b
    sm = ndimage.gaussian_filter(img, s)
    part = _clean(_opening(sm > threshold_otsu(sm), 2), int(256 * (2 / b) ** 2))
    return Case("real_au", "REAL HAADF: Au particles on carbon", img.astype(np.float32), part.astype(np.int64),
                ["support", "Au particle"], 32, pixel_size=(ds.pixel_size or 0.0075) * b, pixel_unit="nm",
                source="temul-toolkit 0.1.9 wheel, example_Au_nanoparticle.emd (GPL-3.0)",
                truth_rule="Otsu of Gaussian(σ=3 px)-smoothed 1024² image, opening r=2, objects/holes < 256 px removed")


def real_mos2(quick: bool) -> Case:
    """Real atomic-resolution ADF image of Se-implanted monolayer MoS2 with adsorbate patches.

    File: ``temul/example_data/experimental/example_Se_implanted_MoS2.dm3`` from the
    temul-toolkit 0.1.9 wheel (GPL-3.0), 1024² px at 0.0127 nm/px; binned 2× to 512²
    (quick: the top-left 256² of that). The monolayer lattice is covered in places by
    thin amorphous adsorbate (hydrocarbon) that raises the local mean signal by a few %.
    Truth: Otsu threshold of the image smoothed by a Gaussian (σ = 8 px, ≈ 4 lattice
    periods, which removes the lattice), objects/holes under 1024 px removed; classes
    clean (darker) / covered (brighter). Pixels whose smoothed value lies within 0.15 std of
    the threshold are ignored (-1): there the truth is not defined well enough to score.
    """
    from skimage.filters import threshold_otsu

    import stem_fsl_widgets as sfw
    from stem_fsl_widgets.datasets.real import real_file

    ds = sfw.load(real_file("se_mos2"))
    img = _bin(ds.image.astype(float), 2)
    if quick:
        img = img[:256, :256]
    sm = ndimage.gaussian_filter(img, 8)
    t = threshold_otsu(sm)
    covered = _clean(sm > t, 1024)
    truth = covered.astype(np.int64)
    truth[np.abs(sm - t) < 0.15 * sm.std()] = -1
    return Case("real_mos2", "REAL ADF: MoS2 lattice, clean vs covered", img.astype(np.float32), truth,
                ["clean MoS2", "adsorbate-covered"], 32, pixel_size=(ds.pixel_size or 0.0127) * 2, pixel_unit="nm",
                source="temul-toolkit 0.1.9 wheel, example_Se_implanted_MoS2.dm3 (GPL-3.0)",
                truth_rule="Otsu of Gaussian(σ=8 px)-smoothed image, objects/holes < 1024 px removed, "
                "|smoothed - threshold| < 0.15 std ignored")


#: Every case builder, in table order.
BUILDERS: dict[str, Callable[[bool], Case]] = {
    f.__name__: f
    for f in (textures3_flat_eds, textures4_spectra, camera_otsu, coins_otsu, haadf_lattices, fept_particles,
              minor_class, ramp_textures, thickness_lattice, real_au, real_mos2)
}

#: The cases drawn from a generator (their builders take a ``seed``; a new one makes new
#: instances); the others are fixed images (scikit-image photographs, real microscope files).
GENERATED = tuple(n for n, f in BUILDERS.items() if "seed" in inspect.signature(f).parameters)


def cache_dir() -> Path:
    """Where built cases are cached: ``<data dir>/suite``."""
    from stem_fsl_widgets.datasets.real import data_dir

    return data_dir() / "suite"


def build_case(name: str, quick: bool = False, *, rebuild: bool = False, seed: int | None = None) -> Case:
    """Build (or load from the cache) one case by name.

    ``seed`` (default :data:`SEED`) draws other instances of the :data:`GENERATED` cases:
    new region maps, texture crops, particles and noise that the engine was never tuned on.
    The fixed images are the same whatever the seed.
    """
    if name not in BUILDERS:
        raise KeyError(f"Unknown case {name!r}; known: {', '.join(BUILDERS)}")
    seed = SEED if seed is None else int(seed)
    tag = f"_s{seed}" if seed != SEED and name in GENERATED else ""
    path = cache_dir() / f"{name}{'_quick' if quick else ''}_v{CASES_VERSION}{tag}.npz"
    if path.is_file() and not rebuild:
        return Case.load(path)
    case = BUILDERS[name](quick, seed) if name in GENERATED else BUILDERS[name](quick)
    case.image = np.asarray(case.image, np.float32)
    case.truth = np.asarray(case.truth, np.int64)
    case.save(path)
    return case


def build_cases(quick: bool = False, names: list[str] | None = None, *, rebuild: bool = False,
                seed: int | None = None) -> list[Case]:
    """Build every case (or the named ones), cached as ``.npz`` after the first build.

    A real-data case whose file cannot be fetched (offline, empty cache) is left out with a
    note on stderr rather than failing the whole suite.
    """
    import sys

    from stem_fsl_widgets.datasets.real import RealDataError

    out = []
    for name in names or list(BUILDERS):
        try:
            out.append(build_case(name, quick, rebuild=rebuild, seed=seed))
        except RealDataError as err:
            print(f"[suite] case {name} left out: {err}", file=sys.stderr)
    return out
