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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .atomic import atomic_write
from .chips import ChipGrid, chip_spectra
from .classify import (
    Result,
    chip_probabilities,
    require_two_classes,
)
from .colours import normalise_colour
from .dataset import Dataset
from .distances import prototypes, squared_distances, temperature
from .eds import EDSEncoder
from .encoders import DEFAULT_ENCODER, chip_windows, encode_chips, get_encoder, robust_normalise
from .errors import ConcurrentWriterError, InputError, SessionFileError, SFWError
from .fusion import DEFAULT_EDS_WEIGHT, Scaler, auto_weight, mean_feature_variance, support_feature_weights
from .refine import (
    PixelFeatures,
    eds_pixel_features,
    pixel_features,
    pixel_map_note,
    refine_probabilities,
)
from .sessionfile import SCHEMA_VERSION, arrays_path, migrate, read_state, sha256
from .settings import Settings, as_index, make_grid
from .suggest import expected_changes, support_purity, typicality, view_disagreement

__all__ = ["Session", "SessionEvent", "Settings", "PALETTE", "SCHEMA_VERSION", "EVENT_KINDS"]

#: Without a progress callback, encoding this many chips or more shows a tqdm bar in a terminal.
TQDM_MIN_CHIPS = 2048

#: Okabe–Ito colour-blind-safe palette (black left out: it vanishes on dark HAADF areas).
PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#999999"]

_GRID_KEYS = {"chip_size", "stride", "edge"}

#: Longest class name accepted (names reach file names, CSV headers and legends).
MAX_CLASS_NAME = 100


#: Kinds of :class:`SessionEvent`: what a change touched.
EVENT_KINDS = frozenset({"grid", "classes", "supports", "settings", "result", "progress"})


@dataclass(frozen=True)
class SessionEvent:
    """A typed change of a :class:`Session`, passed to :meth:`Session.on_event` listeners.

    Attributes
    ----------
    session : Session
    kinds : frozenset of str
        Subset of :data:`EVENT_KINDS`: ``grid`` (chip size, stride or edge: new chip
        geometry), ``classes`` (names or colours), ``supports``, ``settings``, ``result``
        (a new classification, or None), ``progress`` (a long step advanced).
    what : str
        For ``progress``: the step, e.g. "encoding image chips".
    fraction : float
        For ``progress``: done fraction in [0, 1].
    """

    session: Session
    kinds: frozenset
    what: str = ""
    fraction: float = 1.0


class SupportMetric(NamedTuple):
    """The metric a set of supports defines (see :meth:`Session._support_metric`)."""

    weights: np.ndarray      #: (D,) per-feature factors applied to embeddings
    image: np.ndarray        #: (N, D) every chip's scaled embedding times ``weights``
    support: np.ndarray      #: (S, D) each support's shifted views, averaged, times ``weights``
    purity: np.ndarray       #: (S,) each support's weight in its prototype
    protos: np.ndarray       #: (K, D) unweighted prototypes that the purity is measured against
    temperature: float       #: median nearest-prototype squared distance of the chips


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
        JSON file written atomically after every change. A write that fails (full,
        read-only or missing folder) or that would overwrite another writer's file changes
        nothing the user did: the change stands, listeners run, :attr:`autosave_error` says
        why autosave is off, and the next change tries again.
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
        known = {f.name for f in fields(Settings)} - {"chip_size", "stride", "encoder", "eds_weight"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise InputError(f"Unknown setting(s) {unknown}; known: {sorted(known)}.")
        if chip_size is None:
            raise InputError("chip_size must be a whole number of pixels (default 32), not None.")
        self.settings = Settings(
            chip_size=chip_size, stride=stride, encoder=encoder or DEFAULT_ENCODER,
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
        self.autosave = autosave
        self.progress = progress
        self._listeners: list[Callable[[Session], None]] = []
        self._event_listeners: list[Callable[[SessionEvent], None]] = []
        self._seen: tuple | None = None  # (grid, classes, supports, settings, result) last announced

    # ------------------------------------------------------------------ geometry
    def _make_grid(self, st: Settings) -> ChipGrid:
        return make_grid(self.dataset.shape, st)

    @property
    def n_chips(self) -> int:
        """Number of chips on the current grid."""
        return self.grid.n_chips

    # ------------------------------------------------------------------ features
    def _report(self, what: str, frac: float) -> None:
        self._emit(SessionEvent(self, frozenset({"progress"}), what, float(frac)))
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

    def pixel_features(self) -> PixelFeatures:
        """Per-pixel features of the image (and EDS) for the pixel-resolution maps (cached)."""
        key = ("pixels", self.dataset.content_hash)
        if key not in self._cache:
            self._cache[key] = pixel_features(self.dataset.image)
        pf = self._cache[key]
        eds = self.eds_embeddings()
        if eds is None:
            return pf
        key = ("pixels+eds", *self._grid_key(), eds[3].key)
        if key not in self._cache:
            ds = self.dataset
            self._cache[key] = eds_pixel_features(ds.eds, ds.energy_axis, eds[3], ds.eds_binning, pf)
        return self._cache[key]

    def _refine(self, result: Result) -> np.ndarray:
        info: dict = {}
        prob = refine_probabilities(self.pixel_features(), result, info=info)
        note = pixel_map_note(info, result.classes)
        if note:
            result.notes.append(note)
        return prob

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
        """Add a class (no-op if it exists); returns its name.

        ``colour``: hex or a CSS name (stored as ``#RRGGBB``, see
        :func:`~stem_fsl_widgets.colours.normalise_colour`); default the next of :data:`PALETTE`.
        """
        name = _class_name(name)
        colour = None if colour is None else normalise_colour(colour)
        if name not in self.classes:
            self._push_undo()
            self.classes[name] = colour or self._next_colour()
            self._changed(classify=False)
        return name

    def _next_colour(self) -> str:
        used = {c.lower() for c in self.classes.values()}
        free = [c for c in PALETTE if c.lower() not in used]
        return free[0] if free else PALETTE[len(self.classes) % len(PALETTE)]

    def rename_class(self, old: str, new: str) -> None:
        """Rename a class, keeping its supports and colour."""
        new = _class_name(new)
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
        colour = normalise_colour(colour)
        if self.classes[name] == colour:
            return
        self._push_undo()
        self.classes[name] = colour
        self._changed(classify=False)

    def _check_chip(self, chip: int) -> int:
        chip = as_index(chip, "chip")
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
        cls = _class_name(cls)
        if self.supports.get(chip) == cls:
            return self.result
        self._push_undo()
        if cls not in self.classes:
            self.classes[cls] = self._next_colour()
        self.supports = {**self.supports, chip: cls}
        return self._changed()

    def label_many(self, chips, cls: str) -> Result | None:
        """Label several chips at once (one undo step), e.g. a drag."""
        if isinstance(chips, (str, bytes)) or not hasattr(chips, "__iter__"):
            raise InputError(f"label_many needs a list of chip indices, not {chips!r}.")
        chips = [self._check_chip(c) for c in chips]
        cls = _class_name(cls)
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
        if self.supports.get(self._check_chip(chip)) == cls:
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
            self._listeners = [c for c in self._listeners if c != callback]  # bound methods: ==
        else:
            self._listeners.append(callback)

    def on_event(self, callback: Callable[[SessionEvent], None], remove: bool = False) -> None:
        """Register ``callback(event)`` for typed change events (:class:`SessionEvent`).

        Views redraw only the parts named in ``event.kinds`` instead of comparing objects to
        notice what changed; every listener also gets the encoding progress.
        """
        if remove:
            self._event_listeners = [c for c in self._event_listeners if c != callback]
        else:
            self._event_listeners.append(callback)

    def _emit(self, event: SessionEvent) -> None:
        for cb in list(self._event_listeners):
            cb(event)

    def _change_kinds(self) -> frozenset[str]:
        """What changed since the last announced state (all kinds the first time)."""
        now = (self.grid, dict(self.classes), dict(self.supports), asdict(self.settings), self.result)
        seen, self._seen = self._seen, now
        if seen is None:
            return EVENT_KINDS - {"progress"}
        names = ("grid", "classes", "supports", "settings", "result")
        # Grid and result are replaced, never mutated: identity says whether they changed.
        return frozenset(n for k, n in enumerate(names)
                         if ((now[k] is not seen[k]) if k in (0, 4) else now[k] != seen[k]))

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
            self._write_autosave()
        self._emit(SessionEvent(self, self._change_kinds()))
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

    def support_views(self, idx: np.ndarray) -> np.ndarray:
        """Scaled image embeddings of each support and of its windows shifted by a quarter chip.

        Shape (5, S, D): the chip itself, then up/down/left/right. Encoded once per chip and
        cached, so a click encodes at most the few chips it added.
        """
        raw_all, scaled, scaler = self.image_embeddings()
        key = ("views", *self._grid_key(), self.settings.encoder)
        cache = self._cache.setdefault(key, {})
        todo = [int(i) for i in idx if int(i) not in cache]
        if todo:
            enc = get_encoder(self.settings.encoder)
            norm = self._cache.get(("norm", self.dataset.content_hash))
            if norm is None:
                norm = self._cache[("norm", self.dataset.content_hash)] = robust_normalise(self.dataset.image)
            d = max(1, self.grid.size // 4)
            ctx = int(getattr(enc, "context", 1))
            shifts = ((-d, 0), (d, 0), (0, -d), (0, d))
            windows = np.concatenate([chip_windows(norm, self.grid, np.array(todo), ctx, sh)
                                      for sh in shifts])
            shifted = enc.encode(windows).reshape(len(shifts), len(todo), -1)  # one batch per click
            for j, i in enumerate(todo):
                cache[i] = shifted[:, j]
        raw = np.stack([raw_all[np.asarray(idx, dtype=np.int64)]]
                       + [np.stack([cache[int(i)][v] for i in idx]) for v in range(4)])
        return scaler.transform(raw.reshape(-1, raw.shape[-1])).reshape(raw.shape)

    def _support_metric(self, idx: np.ndarray, lab: np.ndarray) -> SupportMetric:
        """The metric the supports define, the supports in it, and how pure each support is.

        Features are weighted by :func:`fusion.support_feature_weights` (the factors are the
        square roots, applied to embeddings), and each support is the mean of its shifted
        views (a steadier prototype than one window). Each support's weight in its prototype
        is :func:`.suggest.support_purity` of its view disagreement, measured against the
        unweighted prototypes on the scale of the median nearest-prototype distance.
        """
        views = self.support_views(idx)
        emb = self.image_embeddings()[1]
        key = ("mean variance", *self._grid_key(), self.settings.encoder)
        if key not in self._cache:  # of the image's chips: the same at every click
            self._cache[key] = mean_feature_variance(emb)
        weights = np.sqrt(support_feature_weights(views, lab, emb, mean_variance=self._cache[key]))
        weights = weights.astype(np.float32)
        support = views.mean(axis=0) * weights
        # In float64 once: every distance to the prototypes is taken in float64 from it.
        img = emb * weights.astype(np.float64)
        k = int(lab.max()) + 1
        protos = prototypes(support, np.arange(lab.size), lab, k)
        temp = temperature(squared_distances(img, protos))
        purity = support_purity(view_disagreement(views * weights, protos, temp))
        return SupportMetric(weights, img, support, purity, protos, temp)

    def _disagreement(self, metric: SupportMetric) -> Callable[[np.ndarray], np.ndarray]:
        """``chips -> view disagreement`` in this classification's metric, for the suggestions.

        Encodes the shifted windows of the chips asked about (cached per chip); on another
        grid or encoder than the classification's it answers zeros (no reordering).
        """
        key = (*self._grid_key(), self.settings.encoder)

        def disagreement(chips: np.ndarray) -> np.ndarray:
            chips = np.asarray(chips, dtype=np.int64)
            if (*self._grid_key(), self.settings.encoder) != key or chips.size == 0:
                return np.zeros(chips.size)
            return view_disagreement(self.support_views(chips) * metric.weights, metric.protos,
                                     metric.temperature)

        return disagreement

    def _impact(self, metric: SupportMetric, lab: np.ndarray, k: int, eds: np.ndarray | None,
                idx: np.ndarray, w: float | None, arrays: dict, is_support: np.ndarray,
                disagreement: Callable[[np.ndarray], np.ndarray],
                ) -> Callable[[np.ndarray], np.ndarray] | None:
        """``chips -> expected class changes`` if each were labelled, for the suggestions.

        In the classification's own metric (the weighted image embeddings and, fused early,
        the EDS), each candidate weighted by the purity its ``disagreement`` (the result's view
        check, shared so its encodes are cached once) would give it as a support. None where
        the distances are not squared Euclidean early-fused ones (cosine or late fusion).
        """
        w = float(w or 0.0)
        if self.settings.metric != "sqeuclidean" or (eds is not None and 0.0 < w < 1.0
                                                     and self.settings.fusion != "early"):
            return None
        mods = [(1.0 - w, metric.image, metric.support)]
        if eds is not None and w > 0.0:
            mods.append((w, eds, eds[idx]))
        probs = arrays["soft_probabilities"]
        labels = np.argmax(arrays["probabilities"], axis=1)

        def impact(chips: np.ndarray) -> np.ndarray:
            chips = np.asarray(chips, dtype=np.int64)
            return expected_changes(mods, lab, metric.purity, k, labels, ~is_support, probs, chips,
                                    chip_weights=support_purity(disagreement(chips)))

        return impact

    def resolved_eds_weight(self) -> float | None:
        """The EDS weight in use (computed from the supports when "auto"); None without EDS."""
        if not self.dataset.has_eds:
            return None
        w = self.settings.eds_weight
        if w != "auto":
            return float(w)
        classes = [c for c, n in self.support_counts().items() if n > 0]
        if len(classes) < 2:
            return DEFAULT_EDS_WEIGHT
        idx, lab = self._supports_arrays(classes)
        m = self._support_metric(idx, lab)
        return self._auto_weight(idx, lab, len(classes), m)

    def _auto_weight(self, idx: np.ndarray, lab: np.ndarray, k: int, metric: SupportMetric) -> float:
        eds = self.eds_embeddings()[1]
        g = self.grid
        return auto_weight(metric.image, eds, metric.support, eds[idx], lab, k, grid_shape=g.shape,
                           step=-(-g.size // g.stride), support_weights=metric.purity)

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
        metric = self._support_metric(idx, lab)
        img, sup_img = metric.image, metric.support
        eds = self.eds_embeddings()
        e = None if eds is None else eds[1]
        w = self.settings.eds_weight
        if e is None:
            w = None
        elif w == "auto":
            w = self._auto_weight(idx, lab, k, metric)
        else:
            w = float(w)
        arrays = chip_probabilities(
            img, sup_img, lab, k, eds_emb=e, support_eds=None if e is None else e[idx],
            eds_weight=w or 0.0, fusion=self.settings.fusion, metric=self.settings.metric,
            support_weights=metric.purity)
        if not all(np.all(np.isfinite(a)) for a in arrays.values() if a is not None):
            raise InputError("The classification gave non-finite probabilities; the embeddings hold "
                             "NaN or infinite values. Check the image and EDS data for NaN/inf.")
        for p in arrays.values():
            if p is not None:
                p[idx] = 0.0
                p[idx, lab] = 1.0  # supports keep the label the user gave
        is_support = np.zeros(self.n_chips, dtype=bool)
        is_support[idx] = True
        disagreement = self._disagreement(metric)
        empty = [c for c, n in counts.items() if n == 0]
        notes = [f"Classes without labels left out: {', '.join(empty)}"] if empty else []
        return Result(classes=classes, colours=[self.classes[c] for c in classes],
                      **arrays, is_support=is_support,
                      threshold=float(self.settings.threshold), grid=self.grid,
                      eds_weight=w, notes=notes,
                      refiner=self._refine if self.settings.pixel_maps else None,
                      features=self.image_embeddings()[1], typicality=self.chip_typicality,
                      disagreement=disagreement,
                      impact=self._impact(metric, lab, k, e, idx, w, arrays, is_support, disagreement))

    def chip_typicality(self) -> np.ndarray:
        """How typical each chip is among the image's chips (cached; see :func:`.suggest.typicality`)."""
        key = ("typicality", *self._grid_key(), self.settings.encoder)
        if key not in self._cache:
            self._cache[key] = typicality(self.image_embeddings()[1])
        return self._cache[key]

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
        """What applying this session to other images needs: support features and fitted scalers.

        With two classes labelled, also the supports' image features exactly as
        :meth:`classify` compares them (``image_support_scaled``: mean of shifted views,
        weighted), the per-feature weights (``image_weights``) that new images' chips get, and
        each support's weight in its prototype (``image_support_purity``).
        """
        idx = np.array(sorted(self.supports), dtype=np.int64)
        raw, scaled, scaler = self.image_embeddings()
        out = {"support_chips": idx, "image_raw": raw[idx],
               "image_mean": scaler.mean_, "image_scale": scaler.scale_}
        if self.ready:
            classes = [c for c, n in self.support_counts().items() if n > 0]
            sidx, lab = self._supports_arrays(classes)  # sorted by chip, as ``idx``
            m = self._support_metric(sidx, lab)
            out.update(image_weights=m.weights, image_support_scaled=m.support,
                       image_support_purity=m.purity)
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

    # ------------------------------------------------------------------ autosave
    @property
    def autosave(self) -> Path | None:
        """The file written after every change, or None.

        Setting it starts a fresh claim on the file: if it already holds other work, autosave
        pauses (see :attr:`autosave_error`) rather than overwrite it.
        """
        return self._autosave

    @autosave.setter
    def autosave(self, path: str | os.PathLike | None) -> None:
        self._autosave = Path(path) if path else None
        self._autosave_sig: tuple | None = None  # the file as this session last wrote or read it
        self._autosave_last: dict | None = None  # the work in it then
        #: Why autosave is off (a sentence for the user), or None while it works.
        self.autosave_error: str | None = None

    def _write_autosave(self) -> None:
        """Autosave; on failure keep everything and say why in :attr:`autosave_error`."""
        path = self._autosave
        try:
            current = _stat_sig(path)
            if current is not None and current != self._autosave_sig and self._foreign_work(path):
                raise ConcurrentWriterError(self._conflict_message(path))
            self.save(path)
            self._autosave_sig = _stat_sig(path)
            self._autosave_last = _work(self.to_dict())
            self.autosave_error = None
        except ConcurrentWriterError as err:
            self.autosave_error = str(err)
        except OSError as err:  # WriteError, or the .bak's read failing
            reason = getattr(err, "reason", "") or err.strerror or type(err).__name__
            self.autosave_error = (
                f"Autosave is off: {path} cannot be written ({reason}). "
                "Your labels are kept in this window and autosave tries again at the next change; "
                "free some disk space or fix the folder's permissions, or save the session by hand.")

    def _foreign_work(self, path: Path) -> bool:
        """Whether ``path`` holds a readable session with other labels than this one's.

        A truncated or corrupt file (a crash, a full disk) is nobody's work: it is replaced,
        and never promoted to ``.bak``.
        """
        try:
            saved = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return False
        if not isinstance(saved, dict) or saved.get("format") != "stem_fsl_widgets.session":
            return not isinstance(saved, dict) or bool(saved)  # other JSON: leave it alone
        theirs = _work(saved)
        # Ours as last written, or as now (a copy tool or `touch` changes the file, not its work).
        return theirs != getattr(self, "_autosave_last", None) and theirs != _work(self.to_dict())

    def _conflict_message(self, path: Path) -> str:
        try:
            saved = json.loads(path.read_bytes()).get("saved_at", "")
        except (OSError, ValueError, AttributeError):
            saved = ""
        when = f" (saved {str(saved)[11:16]})" if len(str(saved)) >= 16 else ""
        if self._autosave_sig is None:
            return (f"Autosave is paused: {path} already holds other work{when} that this window did "
                    "not open, and it was not overwritten. Restore it, set it aside with 'start over', "
                    "or save this session under another name.")
        return (f"Autosave is paused: another window, tab or user saved to {path}{when} since this "
                "window last did; neither is overwritten. Your labels are kept here: save them under "
                "another name, or reload to continue from the other copy.")

    def take_over_autosave(self) -> None:
        """Claim the autosave file as it is now (the user chose to keep this window's work) and save."""
        if self._autosave is None:
            return
        self._autosave_sig = _stat_sig(self._autosave)
        self._write_autosave()

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike, *, arrays: bool = False) -> Path:
        """Write the session JSON atomically (and ``.npz`` reference arrays if ``arrays``).

        The previous file is kept as ``<name>.bak`` so a crash mid-write can never leave the
        user with nothing. The arrays (``<stem>.npz``) are written first and their SHA-256 is
        recorded in the JSON, so a pair interrupted between the two writes is detected on
        reading (:func:`stem_fsl_widgets.sessionfile.read_arrays`).

        Raises
        ------
        InputError
            When ``path`` ends in ``.npz`` (the arrays' own name).
        WriteError
            (an OSError) When the folder cannot be written; nothing is half-written.
        """
        path = Path(path)
        npz = arrays_path(path)
        state = self.to_dict()
        if arrays and self.supports:
            import io

            buf = io.BytesIO()
            np.savez_compressed(buf, **self.reference_arrays())
            blob = buf.getvalue()
            atomic_write(npz, blob)
            state["arrays"] = {"file": npz.name, "sha256": sha256(blob)}
        data = json.dumps(state, indent=1).encode()
        json.loads(data)  # never write something we could not read back
        if path.exists():
            try:
                old = path.read_bytes()
                json.loads(old)
                # Copy (not move): if the write below fails, the good file stays where it was.
                atomic_write(path.with_name(path.name + ".bak"), old)
            except (OSError, ValueError):
                pass  # the old file is corrupt: do not promote it to the backup
        atomic_write(path, data)
        return path

    @classmethod
    def from_dict(cls, state: dict, dataset: Dataset, *, check_data: bool = True, **kwargs: Any) -> Session:
        """Rebuild a session from :meth:`to_dict` output on ``dataset``.

        Raises
        ------
        SessionFileError
            Malformed state, a newer schema, data that does not match, invalid settings,
            colours or class names, chips out of range or saved boxes that are not the
            chips' boxes on this grid.
        """
        state = migrate(state)
        autosave = kwargs.pop("autosave", None)
        try:
            raw = state["settings"]
            if not isinstance(raw, dict):
                raise TypeError("'settings' is not an object")
            known = {f.name for f in fields(Settings)}
            settings = {k: v for k, v in raw.items() if k in known}
            saved = state["dataset"]
            if check_data and saved.get("content_hash") != dataset.content_hash:
                raise SessionFileError(
                    f"This session was made on {saved.get('name')!r} (hash {saved.get('content_hash')}, "
                    f"shape {saved.get('shape')}), not on this data ({dataset.name!r}, hash "
                    f"{dataset.content_hash}, shape {list(dataset.shape)}). Open it with the image it "
                    "was made on, or use batch mode to apply it to new images."
                )
            chip_size = settings.pop("chip_size")
            stride = settings.pop("stride", None)
            s = cls(dataset, chip_size=chip_size, stride=stride, **settings, **kwargs)
            for c in state["classes"]:
                s.classes[_class_name(c["name"])] = normalise_colour(c["colour"])
            supports = {}
            for sup in state["supports"]:
                chip, name = as_index(sup["chip"], "support chip"), _class_name(sup["class"])
                if not 0 <= chip < s.n_chips:
                    raise SessionFileError(
                        f"Support chip {chip} is out of range for a grid of {s.n_chips} chips; the "
                        "file does not belong to this image or grid."
                    )
                box = sup.get("box")
                here = [int(v) for v in s.grid.box(chip)]
                if box is not None and [as_index(v, "box") for v in box] != here:
                    raise SessionFileError(
                        f"Support chip {chip} was saved with the box {list(box)} (y0, x0, y1, x1), but on "
                        f"this grid it is {list(s.grid.box(chip))}: the file was made on another grid, so "
                        "its labels would land on other chips. Open it with the version and settings it "
                        "was saved with, or relabel."
                    )
                if name not in s.classes:
                    s.classes[name] = s._next_colour()
                supports[chip] = name
            s.supports = supports
        except SessionFileError:
            raise
        except InputError as err:  # a hand-edited value: name it
            raise SessionFileError(
                f"The saved settings cannot be applied to this data ({err}). Fix or remove them in "
                "the file, or try the .bak next to it."
            ) from None
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise SessionFileError(
                f"The session file is malformed ({type(err).__name__}: {err}). It may be truncated "
                "or hand-edited; a backup may exist next to it as .bak."
            ) from None
        try:
            s._changed()  # autosave is still off: restoring is not a user change
        except SFWError as err:
            raise SessionFileError(
                f"The saved session cannot be applied to this data ({type(err).__name__}: {err}). "
                "Fix or remove the settings in the file, or try the .bak next to it."
            ) from None
        except (TypeError, ValueError) as err:  # e.g. a hand-edited EDS window
            raise SessionFileError(
                f"The saved settings cannot be applied to this data ({type(err).__name__}: {err}). "
                "Fix or remove them in the file, or try the .bak next to it."
            ) from None
        s.autosave = autosave
        return s

    @classmethod
    def load(cls, path: str | os.PathLike, dataset: Dataset, **kwargs: Any) -> Session:
        """Open a session file saved by :meth:`save` on ``dataset``.

        With ``autosave=path`` (the same file) the session continues that file: later changes
        overwrite it unless someone else writes it in between (see :attr:`autosave_error`).
        """
        path = Path(path)
        sig = _stat_sig(path)
        state = read_state(path)
        s = cls.from_dict(state, dataset, **kwargs)
        if s.autosave is not None and sig is not None and _same_file(s.autosave, path):
            s._autosave_sig, s._autosave_last = sig, _work(state)
        return s

    def copy(self) -> Session:
        """An independent copy sharing the (read-only) embeddings cache."""
        new = copy.copy(self)
        new.classes, new.supports = dict(self.classes), dict(self.supports)
        new.settings = replace(self.settings)
        new._undo, new._redo, new._listeners = list(self._undo), list(self._redo), []
        new._event_listeners = []
        return new

    def __repr__(self) -> str:
        return (f"Session({self.dataset!r}, chips={self.n_chips} of {self.settings.chip_size}px, "
                f"encoder={self.settings.encoder}, classes={self.support_counts()})")


def _stat_sig(path: Path) -> tuple | None:
    """What identifies one version of a file (atomic writes give each a new inode), or None."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _work(state: dict) -> dict:
    """The part of a session dict that is the user's work (not when or by what it was saved)."""
    return {k: state.get(k) for k in ("classes", "supports", "settings", "dataset")}


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _class_name(name: Any) -> str:
    """A class name as typed, stripped; refuses non-text, empty, overlong or control characters."""
    if not isinstance(name, str):
        raise InputError(f"A class name must be text, not {type(name).__name__} {name!r}.")
    name = name.strip()
    if not name:
        raise InputError("A class needs a non-empty name.")
    if len(name) > MAX_CLASS_NAME:
        raise InputError(f"A class name may have at most {MAX_CLASS_NAME} characters; this one has "
                         f"{len(name)}.")
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise InputError(f"The class name {name!r} contains control characters (line breaks, tabs); "
                         "type it on one line.")
    return name
