"""The state a user builds — classes, supports, settings — and the classification it drives.

A :class:`Session` encodes each (image, chip size, stride, encoder) once and caches the
embeddings; a click (:meth:`Session.label`) only changes the support set and re-runs
prototypes → distances → probabilities. Sessions serialise to JSON (+ .npz for arrays),
schema-versioned, written atomically; no pickle anywhere.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .chips import ChipGrid, chip_spectra
from .classify import (
    DEFAULT_THRESHOLD,
    Result,
    prototype_probabilities,
    require_two_classes,
)
from .dataset import Dataset
from .eds import DEFAULT_WINDOW, EDSEncoder
from .encoders import DEFAULT_ENCODER, encode_chips, get_encoder
from .errors import FileFormatError, InputError, NotEnoughSupportsError, SessionFileError, WeightsError
from .fusion import Scaler, auto_weight

__all__ = ["Session", "Settings", "PALETTE", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1

#: Without a progress callback, encoding this many chips or more shows a tqdm bar in a terminal.
TQDM_MIN_CHIPS = 2048

#: Okabe–Ito colour-blind-safe palette (black left out: it vanishes on dark HAADF areas).
PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999"]

_GRID_KEYS = {"chip_size", "stride", "edge"}
_IMAGE_KEYS = _GRID_KEYS | {"encoder"}
_EDS_KEYS = _GRID_KEYS | {"eds_window", "eds_rebin", "eds_components", "elements"}


@dataclass
class Settings:
    """User-adjustable settings; every field is JSON-serialisable.

    Attributes
    ----------
    chip_size : int
        Chip side, px.
    stride : int or None
        Step between chips, px (None = chip_size, no overlap).
    edge : str
        Edge policy of the grid ("shift" or "drop").
    encoder : str
        Image encoder name (see :func:`stem_fsl_widgets.encoders.available_encoders`).
    eds_weight : float or "auto"
        0 = image only, 1 = EDS only; "auto" weighs each modality by how well it separates
        the supports.
    fusion : str
        "early" (weighted concatenation) or "late" (weighted log-probabilities).
    metric : str
        "sqeuclidean" or "cosine".
    threshold : float
        Normalised entropy above which a chip is uncertain.
    eds_window : list of two floats or None
        Energy window in keV.
    eds_rebin : int
    eds_components : int or None
    elements : list of str
        Elements whose lines are added to the EDS features and shown in the spectrum view.
    """

    chip_size: int = 32
    stride: int | None = None
    edge: str = "shift"
    encoder: str = DEFAULT_ENCODER
    eds_weight: float | str = "auto"
    fusion: str = "early"
    metric: str = "sqeuclidean"
    threshold: float = DEFAULT_THRESHOLD
    eds_window: list = field(default_factory=lambda: list(DEFAULT_WINDOW))
    eds_rebin: int = 1
    eds_components: int | None = 12
    elements: list = field(default_factory=list)

    def validate(self) -> None:
        """Raise :class:`InputError` for values out of range."""
        if isinstance(self.eds_weight, str):
            if self.eds_weight != "auto":
                raise InputError(f"eds_weight must be a number in [0, 1] or 'auto', not {self.eds_weight!r}.")
        elif not 0.0 <= float(self.eds_weight) <= 1.0:
            raise InputError(f"eds_weight must be in [0, 1]; got {self.eds_weight}.")
        if self.fusion not in ("early", "late"):
            raise InputError(f"fusion must be 'early' or 'late', not {self.fusion!r}.")
        if self.metric not in ("sqeuclidean", "cosine"):
            raise InputError(f"metric must be 'sqeuclidean' or 'cosine', not {self.metric!r}.")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise InputError(f"threshold is a normalised entropy in [0, 1]; got {self.threshold}.")


@dataclass
class _Features:
    """Cached per-grid features: raw and scaled embeddings of each modality."""

    image_raw: np.ndarray
    image: np.ndarray
    image_scaler: Scaler
    spectra: np.ndarray | None = None
    eds_raw: np.ndarray | None = None
    eds: np.ndarray | None = None
    eds_scaler: Scaler | None = None
    eds_encoder: EDSEncoder | None = None


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class Session:
    """What a user has built on one dataset: classes, supports, settings, latest result.

    Parameters
    ----------
    dataset : Dataset or ndarray
        The data; a bare 2-D array is wrapped in a :class:`Dataset`.
    chip_size, stride : int
        Grid geometry in pixels (stride None = chip_size).
    encoder : str, optional
        Image encoder name; default :data:`stem_fsl_widgets.encoders.DEFAULT_ENCODER`.
    eds_weight : float or "auto"
        Image↔EDS weight (ignored without EDS).
    autosave : str or Path, optional
        JSON file written atomically after every change.
    progress : callable, optional
        ``progress(what, fraction)`` during encoding (the widgets' progress bar). Without
        one, jobs of ≥ :data:`TQDM_MIN_CHIPS` chips show a tqdm bar when run in a terminal.
    **settings
        Any other :class:`Settings` field (fusion, metric, threshold, eds_window, ...).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> img = np.concatenate([rng.normal(0, 1, (64, 32)), rng.normal(0, 4, (64, 32))], 1)
    >>> s = Session(img, chip_size=16)
    >>> _ = s.label(0, "calm"); r = s.label(3, "rough")
    >>> r.classes, int(r.labels[4]), int(r.labels[7])
    (['calm', 'rough'], 0, 1)
    """

    def __init__(
        self,
        dataset: Dataset | np.ndarray,
        chip_size: int = 32,
        stride: int | None = None,
        encoder: str | None = None,
        eds_weight: float | str = "auto",
        *,
        autosave: str | os.PathLike | None = None,
        progress: Callable[[str, float], None] | None = None,
        **settings: Any,
    ) -> None:
        self.dataset = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
        self.settings = Settings(
            chip_size=int(chip_size), stride=stride, encoder=encoder or DEFAULT_ENCODER,
            eds_weight=eds_weight, **settings,
        )
        self.settings.validate()
        self.grid = self._make_grid(self.settings)
        self.classes: dict[str, str] = {}
        self.supports: dict[int, str] = {}
        self._undo: list[tuple[dict, dict, dict]] = []
        self._redo: list[tuple[dict, dict, dict]] = []
        self._cache: dict[tuple, Any] = {}
        self.result: Result | None = None
        self.previous: Result | None = None
        self.autosave = Path(autosave) if autosave else None
        self.progress = progress
        self._listeners: list[Callable[[Session], None]] = []

    # ------------------------------------------------------------------ geometry
    def _make_grid(self, st: Settings) -> ChipGrid:
        h, w = self.dataset.shape
        return ChipGrid(h, w, st.chip_size, st.stride, st.edge)

    @property
    def n_chips(self) -> int:
        """Number of chips on the current grid."""
        return self.grid.n_chips

    # ------------------------------------------------------------------ features
    def _report(self, what: str, frac: float) -> None:
        if self.progress is not None:
            self.progress(what, frac)
        elif self.n_chips >= TQDM_MIN_CHIPS and sys.stderr.isatty():
            self._tqdm(what, frac)  # a script on a big image: a terminal progress bar

    def _tqdm(self, what: str, frac: float) -> None:
        from tqdm.auto import tqdm

        bar = getattr(self, "_bar", None)
        if bar is None or bar.desc != what:
            bar = self._bar = tqdm(total=100, desc=what, unit="%", leave=False)
        bar.update(round(100 * frac) - bar.n)
        if frac >= 1.0:
            bar.close()
            self._bar = None

    def _grid_key(self) -> tuple:
        st = self.settings
        return (self.dataset.content_hash, st.chip_size, self.grid.stride, st.edge)

    def image_embeddings(self) -> tuple[np.ndarray, np.ndarray, Scaler]:
        """Raw and scaled image embeddings of every chip (cached), plus the fitted scaler."""
        key = ("image", *self._grid_key(), self.settings.encoder)
        if key not in self._cache:
            enc = get_encoder(self.settings.encoder)
            raw = encode_chips(self.dataset.image, self.grid, enc,
                               progress=lambda f: self._report("encoding image chips", f))
            if not np.all(np.isfinite(raw)):
                raise InputError(f"Encoder {enc.key} produced non-finite embeddings on this image.")
            scaler = Scaler(per_feature=True).fit(raw)
            self._cache[key] = (raw, scaler.transform(raw), scaler)
        return self._cache[key]

    def chip_spectra(self) -> np.ndarray | None:
        """Summed EDS counts per chip, shape (N, E), cached; None without EDS."""
        if not self.dataset.has_eds:
            return None
        key = ("spectra", *self._grid_key())
        if key not in self._cache:
            self._cache[key] = chip_spectra(
                self.dataset.eds, self.grid, self.dataset.eds_binning,
                progress=lambda f: self._report("summing chip spectra", f),
            )
        return self._cache[key]

    def eds_embeddings(self) -> tuple[np.ndarray, np.ndarray, Scaler, EDSEncoder] | None:
        """Raw and scaled EDS embeddings (cached), the scaler and the fitted encoder."""
        spectra = self.chip_spectra()
        if spectra is None:
            return None
        st = self.settings
        enc = EDSEncoder(window=tuple(st.eds_window), rebin=st.eds_rebin,
                         n_components=st.eds_components, elements=tuple(st.elements))
        key = ("eds", *self._grid_key(), enc.key)
        if key not in self._cache:
            raw = enc.encode(spectra, self.dataset.energy_axis)
            scaler = Scaler(per_feature=False).fit(raw)
            self._cache[key] = (raw, scaler.transform(raw), scaler, enc)
        return self._cache[key]

    def encode(self) -> None:
        """Compute (or fetch from cache) every embedding the current settings need."""
        self.image_embeddings()
        self.eds_embeddings()

    # ------------------------------------------------------------------ classes and supports
    def _snapshot(self) -> tuple[dict, dict, dict]:
        return dict(self.classes), dict(self.supports), asdict(self.settings)

    def _push_undo(self) -> None:
        self._undo.append(self._snapshot())
        del self._undo[:-500]
        self._redo.clear()

    def add_class(self, name: str, colour: str | None = None) -> str:
        """Add a class (no-op if it exists); returns its name. Colour from :data:`PALETTE`."""
        name = str(name).strip()
        if not name:
            raise InputError("A class needs a non-empty name.")
        if name not in self.classes:
            self._push_undo()
            self.classes[name] = colour or self._next_colour()
            self._changed(classify=False)
        return name

    def _next_colour(self) -> str:
        used = set(self.classes.values())
        free = [c for c in PALETTE if c not in used]
        return free[0] if free else PALETTE[len(self.classes) % len(PALETTE)]

    def rename_class(self, old: str, new: str) -> None:
        """Rename a class, keeping its supports and colour."""
        new = str(new).strip()
        if old not in self.classes:
            raise InputError(f"No class named {old!r}; classes are {list(self.classes)}.")
        if not new or (new in self.classes and new != old):
            raise InputError(f"Cannot rename {old!r} to {new!r}: empty or already used.")
        self._push_undo()
        self.classes = {(new if k == old else k): v for k, v in self.classes.items()}
        self.supports = {i: (new if c == old else c) for i, c in self.supports.items()}
        self._changed()

    def remove_class(self, name: str) -> None:
        """Delete a class and its supports."""
        if name not in self.classes:
            raise InputError(f"No class named {name!r}; classes are {list(self.classes)}.")
        self._push_undo()
        del self.classes[name]
        self.supports = {i: c for i, c in self.supports.items() if c != name}
        self._changed()

    def set_colour(self, name: str, colour: str) -> None:
        """Change a class's display colour."""
        if name not in self.classes:
            raise InputError(f"No class named {name!r}.")
        self._push_undo()
        self.classes[name] = colour
        self._changed(classify=False)

    def _check_chip(self, chip: int) -> int:
        chip = int(chip)
        if not 0 <= chip < self.n_chips:
            raise InputError(f"Chip {chip} does not exist; this grid has chips 0..{self.n_chips - 1}.")
        return chip

    def label(self, chip: int, cls: str) -> Result | None:
        """Make ``chip`` a support of ``cls`` (created if new) and reclassify.

        Returns
        -------
        Result or None
            The new result, or None while fewer than two classes have supports.
        """
        chip = self._check_chip(chip)
        cls = str(cls).strip()
        if not cls:
            raise InputError("A class needs a non-empty name.")
        if self.supports.get(chip) == cls:
            return self.result
        self._push_undo()
        if cls not in self.classes:
            self.classes[cls] = self._next_colour()
        self.supports = {**self.supports, chip: cls}
        return self._changed()

    def label_many(self, chips, cls: str) -> Result | None:
        """Label several chips at once (one undo step), e.g. a drag."""
        chips = [self._check_chip(c) for c in chips]
        cls = str(cls).strip()
        new = [c for c in chips if self.supports.get(c) != cls]
        if not new:
            return self.result
        self._push_undo()
        if cls not in self.classes:
            self.classes[cls] = self._next_colour()
        self.supports = {**self.supports, **{c: cls for c in new}}
        return self._changed()

    def unlabel(self, chip: int) -> Result | None:
        """Remove ``chip`` from the support set (no-op if it is not a support)."""
        chip = self._check_chip(chip)
        if chip not in self.supports:
            return self.result
        self._push_undo()
        self.supports = {i: c for i, c in self.supports.items() if i != chip}
        return self._changed()

    def toggle(self, chip: int, cls: str) -> Result | None:
        """Click semantics: label ``chip`` as ``cls``, or remove it if it already is."""
        if self.supports.get(int(chip)) == cls:
            return self.unlabel(chip)
        return self.label(chip, cls)

    def clear(self) -> Result | None:
        """Remove every support (classes stay)."""
        if self.supports:
            self._push_undo()
            self.supports = {}
        return self._changed()

    def _restore(self, snap: tuple[dict, dict, dict]) -> None:
        classes, supports, settings = snap
        new_settings = Settings(**settings)
        regrid = any(getattr(new_settings, k) != getattr(self.settings, k) for k in _GRID_KEYS)
        self.settings = new_settings
        if regrid:
            self.grid = self._make_grid(new_settings)
        self.classes, self.supports = dict(classes), dict(supports)

    def undo(self) -> Result | None:
        """Revert the last change of classes, supports or settings."""
        if not self._undo:
            return self.result
        self._redo.append(self._snapshot())
        self._restore(self._undo.pop())
        return self._changed()

    def redo(self) -> Result | None:
        """Re-apply the last undone change."""
        if not self._redo:
            return self.result
        self._undo.append(self._snapshot())
        self._restore(self._redo.pop())
        return self._changed()

    @property
    def can_undo(self) -> bool:
        """Whether :meth:`undo` has something to revert."""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """Whether :meth:`redo` has something to re-apply."""
        return bool(self._redo)

    def support_counts(self) -> dict[str, int]:
        """Number of supports per class (every class listed)."""
        counts = {c: 0 for c in self.classes}
        for c in self.supports.values():
            counts[c] = counts.get(c, 0) + 1
        return counts

    @property
    def ready(self) -> bool:
        """True when at least two classes have at least one support."""
        return sum(n > 0 for n in self.support_counts().values()) >= 2

    def status(self) -> str:
        """A sentence for the user: what the session still needs, or what it shows."""
        counts = self.support_counts()
        if not self.ready:
            have = ", ".join(f"{c}: {n}" for c, n in counts.items()) or "no classes yet"
            return f"Label at least one chip in each of two classes to segment ({have})."
        empty = [c for c, n in counts.items() if n == 0]
        note = f" Classes without labels are left out: {', '.join(empty)}." if empty else ""
        return f"{len(self.supports)} labelled chips in {len(counts) - len(empty)} classes.{note}"

    # ------------------------------------------------------------------ settings
    def configure(self, **changes: Any) -> Result | None:
        """Change settings; re-grids/re-encodes only when the change needs it.

        Supports survive a chip size or stride change: each is moved to the new chip under
        its old chip's centre.
        """
        unknown = set(changes) - {f.name for f in fields(Settings)}
        if unknown:
            known = [f.name for f in fields(Settings)]
            raise InputError(f"Unknown setting(s) {sorted(unknown)}; known: {known}.")
        new = replace(self.settings, **changes)
        new.validate()
        if new == self.settings:
            return self.result
        regrid = any(getattr(new, k) != getattr(self.settings, k) for k in _GRID_KEYS)
        grid = self._make_grid(new) if regrid else self.grid
        if new.encoder != self.settings.encoder:
            get_encoder(new.encoder)  # unknown name → clear error before anything changes
        self._push_undo()
        if grid is not self.grid:
            moved: dict[int, str] = {}
            for i, c in self.supports.items():
                y0, x0, y1, x1 = self.grid.box(i)
                moved[int(grid.chip_at((y0 + y1) / 2, (x0 + x1) / 2))] = c
            self.supports = moved
            self.grid = grid
        self.settings = new
        return self._changed()

    # ------------------------------------------------------------------ classification
    def on_change(self, callback: Callable[[Session], None], remove: bool = False) -> None:
        """Register ``callback(session)`` to run after every change (views redraw from it)."""
        if remove:
            self._listeners = [c for c in self._listeners if c is not callback]
        else:
            self._listeners.append(callback)

    def _changed(self, classify: bool = True) -> Result | None:
        if classify:
            try:
                result = self.classify() if self.ready else None
            except Exception:
                self._rollback()
                raise
            self.previous, self.result = self.result, result
        self._good = self._snapshot()
        if self.autosave is not None:
            self.save(self.autosave)
        for cb in list(self._listeners):
            cb(self)
        return self.result

    def _rollback(self) -> None:
        """Put back the last state that classified, so a failing change costs no labels."""
        good = getattr(self, "_good", None)
        if good is None:
            return
        if self._undo and self._undo[-1] == good:
            self._undo.pop()  # the failed change leaves no undo step behind
        self._restore(good)

    def _supports_arrays(self, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        index = {c: k for k, c in enumerate(classes)}
        items = sorted((i, index[c]) for i, c in self.supports.items() if c in index)
        idx = np.array([i for i, _ in items], dtype=np.int64)
        lab = np.array([k for _, k in items], dtype=np.int64)
        return idx, lab

    def resolved_eds_weight(self) -> float | None:
        """The EDS weight in use (computed from the supports when "auto"); None without EDS."""
        if not self.dataset.has_eds:
            return None
        w = self.settings.eds_weight
        if w != "auto":
            return float(w)
        classes = [c for c, n in self.support_counts().items() if n > 0]
        if len(classes) < 2:
            return 0.5
        idx, lab = self._supports_arrays(classes)
        return auto_weight(self.image_embeddings()[1], self.eds_embeddings()[1], idx, lab, len(classes))

    def classify(self) -> Result:
        """Classify every chip from the current supports (cached embeddings; no re-encoding).

        Raises
        ------
        NotEnoughSupportsError
            While fewer than two classes have a labelled chip.
        """
        counts = self.support_counts()
        require_two_classes(counts)
        classes = [c for c, n in counts.items() if n > 0]
        k = len(classes)
        idx, lab = self._supports_arrays(classes)
        img = self.image_embeddings()[1]
        eds = self.eds_embeddings()
        w = self.resolved_eds_weight()
        e = None if eds is None else eds[1]
        probs = prototype_probabilities(
            img, img[idx], lab, k, eds_emb=e, support_eds=None if e is None else e[idx],
            eds_weight=w or 0.0, fusion=self.settings.fusion, metric=self.settings.metric)
        probs[idx] = 0.0
        probs[idx, lab] = 1.0  # supports keep the label the user gave
        is_support = np.zeros(self.n_chips, dtype=bool)
        is_support[idx] = True
        empty = [c for c, n in counts.items() if n == 0]
        notes = [f"Classes without labels left out: {', '.join(empty)}"] if empty else []
        return Result(classes=classes, colours=[self.classes[c] for c in classes],
                      probabilities=probs, is_support=is_support,
                      threshold=float(self.settings.threshold), grid=self.grid,
                      eds_weight=w, notes=notes)

    def suggest(self, n: int = 5) -> np.ndarray:
        """The ``n`` most uncertain unlabelled chips (empty until the session is ready)."""
        return self.result.suggest(n) if self.result is not None else np.array([], dtype=np.int64)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        """JSON-ready state (schema :data:`SCHEMA_VERSION`)."""
        from . import __version__

        ds = self.dataset
        return {
            "format": "stem_fsl_widgets.session",
            "schema_version": SCHEMA_VERSION,
            "created_with": __version__,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "dataset": {
                "name": ds.name, "content_hash": ds.content_hash, "shape": list(ds.shape),
                "has_eds": ds.has_eds, "pixel_size": ds.pixel_size, "pixel_unit": ds.pixel_unit,
                "eds_binning": ds.eds_binning,
            },
            "settings": asdict(self.settings),
            "classes": [{"name": c, "colour": col} for c, col in self.classes.items()],
            "supports": [
                {"chip": i, "class": c, "box": list(self.grid.box(i))}
                for i, c in sorted(self.supports.items())
            ],
        }

    def reference_arrays(self) -> dict[str, np.ndarray]:
        """What applying this session to other images needs: support features and fitted scalers."""
        idx = np.array(sorted(self.supports), dtype=np.int64)
        raw, _, scaler = self.image_embeddings()
        out = {"support_chips": idx, "image_raw": raw[idx],
               "image_mean": scaler.mean_, "image_scale": scaler.scale_}
        eds = self.eds_embeddings()
        if eds is not None:
            eraw, _, escaler, enc = eds
            out.update(eds_raw=eraw[idx], eds_mean=escaler.mean_, eds_scale=escaler.scale_,
                       eds_encoder_mean=enc.mean_, energy_axis=np.asarray(self.dataset.energy_axis))
            if enc.components_ is not None:
                out["eds_components"] = enc.components_
            if self.ready:  # "auto" is resolved on the reference image's chips; keep the value
                out["eds_weight"] = np.float64(self.resolved_eds_weight())
        return out

    def save(self, path: str | os.PathLike, *, arrays: bool = False) -> Path:
        """Write the session JSON atomically (and ``.npz`` reference arrays if ``arrays``).

        The previous file is kept as ``<name>.bak`` so a crash mid-write can never leave the
        user with nothing.
        """
        path = Path(path)
        data = json.dumps(self.to_dict(), indent=1).encode()
        json.loads(data)  # never write something we could not read back
        if path.exists():
            try:
                old = path.read_bytes()
                json.loads(old)
                # Copy (not move): if the write below fails, the good file stays where it was.
                _atomic_write(path.with_name(path.name + ".bak"), old)
            except (OSError, ValueError):
                pass  # the old file is corrupt: do not promote it to the backup
        _atomic_write(path, data)
        if arrays and self.supports:
            import io

            buf = io.BytesIO()
            np.savez_compressed(buf, **self.reference_arrays())
            _atomic_write(path.with_suffix(".npz"), buf.getvalue())
        return path

    @classmethod
    def from_dict(cls, state: dict, dataset: Dataset, *, check_data: bool = True, **kwargs: Any) -> Session:
        """Rebuild a session from :meth:`to_dict` output on ``dataset``.

        Raises
        ------
        SessionFileError
            Malformed state, a newer schema, data that does not match, or chips out of range.
        """
        state = _migrate(state)
        try:
            settings = dict(state["settings"])
            known = {f.name for f in fields(Settings)}
            settings = {k: v for k, v in settings.items() if k in known}
            saved = state["dataset"]
            if check_data and saved.get("content_hash") != dataset.content_hash:
                raise SessionFileError(
                    f"This session was made on {saved.get('name')!r} (hash {saved.get('content_hash')}, "
                    f"shape {saved.get('shape')}), not on this data ({dataset.name!r}, hash "
                    f"{dataset.content_hash}, shape {list(dataset.shape)}). Open it with the image it "
                    "was made on, or use batch mode to apply it to new images."
                )
            chip_size = settings.pop("chip_size")
            stride = settings.pop("stride")
            s = cls(dataset, chip_size=chip_size, stride=stride, **settings, **kwargs)
            autosave, s.autosave = s.autosave, None  # restoring is not a user change
            for c in state["classes"]:
                s.classes[str(c["name"])] = str(c["colour"])
            supports = {}
            for sup in state["supports"]:
                chip, name = int(sup["chip"]), str(sup["class"])
                if not 0 <= chip < s.n_chips:
                    raise SessionFileError(
                        f"Support chip {chip} is out of range for a grid of {s.n_chips} chips; the "
                        "file does not belong to this image or grid."
                    )
                if name not in s.classes:
                    s.classes[name] = s._next_colour()
                supports[chip] = name
            s.supports = supports
            s.autosave = autosave
        except SessionFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise SessionFileError(
                f"The session file is malformed ({type(err).__name__}: {err}). It may be truncated "
                "or hand-edited; a backup may exist next to it as .bak."
            ) from None
        try:
            s._changed()
        except (TypeError, ValueError) as err:  # e.g. a hand-edited encoder name or EDS window
            raise SessionFileError(
                f"The saved settings cannot be applied to this data ({type(err).__name__}: {err}). "
                "Fix or remove them in the file, or try the .bak next to it."
            ) from None
        return s

    @classmethod
    def load(cls, path: str | os.PathLike, dataset: Dataset, **kwargs: Any) -> Session:
        """Open a session file saved by :meth:`save` on ``dataset``."""
        path = Path(path)
        try:
            state = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise SessionFileError(f"No session file at {path}.") from None
        except (ValueError, UnicodeDecodeError) as err:
            raise SessionFileError(f"{path} is not valid JSON ({err}); try {path.name}.bak.") from None
        except OSError as err:
            raise SessionFileError(f"Cannot read {path} ({err.strerror or err}).") from None
        if not isinstance(state, dict):
            raise SessionFileError(f"{path} does not hold a session (top level is not an object).")
        return cls.from_dict(state, dataset, **kwargs)

    def copy(self) -> Session:
        """An independent copy sharing the (read-only) embeddings cache."""
        new = copy.copy(self)
        new.classes, new.supports = dict(self.classes), dict(self.supports)
        new.settings = replace(self.settings)
        new._undo, new._redo, new._listeners = list(self._undo), list(self._redo), []
        return new

    def __repr__(self) -> str:
        return (f"Session({self.dataset!r}, chips={self.n_chips} of {self.settings.chip_size}px, "
                f"encoder={self.settings.encoder}, classes={self.support_counts()})")


def _migrate(state: dict) -> dict:
    """Bring an older session dict up to :data:`SCHEMA_VERSION`; refuse newer ones."""
    if not isinstance(state, dict) or state.get("format") != "stem_fsl_widgets.session":
        raise SessionFileError("This is not a stem_fsl_widgets session file (missing 'format').")
    version = state.get("schema_version")
    if not isinstance(version, int):
        raise SessionFileError("The session file has no integer 'schema_version'.")
    if version > SCHEMA_VERSION:
        raise SessionFileError(
            f"The session file uses schema {version}, newer than this version of stem_fsl_widgets "
            f"understands ({SCHEMA_VERSION}). Upgrade the package to open it."
        )
    if version < 1:
        raise SessionFileError(f"Unknown session schema {version}.")
    return state


# Errors a GUI should show as a message rather than a traceback: every SFWError (bad files
# and weights too), so one except clause keeps the user's labels and shows str(err).
USER_ERRORS = (InputError, NotEnoughSupportsError, SessionFileError, FileFormatError, WeightsError)
