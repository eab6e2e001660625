"""Score segmentation methods on the suite's cases: pixel accuracy over random support draws.

A *method* is either

- a callable ``method(case, supports, grid) -> label_map`` where ``supports`` maps chip index
  → class id and ``label_map`` is an (H, W) int array of class ids; or
- a dict of :class:`stem_fsl_widgets.Session` settings (``{}`` = the defaults,
  ``{"eds_weight": 0.0}`` = image only, ...). The session is built once per case with the
  case's chip size and stride; each draw clears its supports and labels the drawn chips with
  ``Session.label_many`` (one call per class, in class-id order), then scores
  ``session.result.label_map``.

Supports: ``k`` random chips per class among the chips ≥ 90 % pure
(:func:`stem_fsl_widgets.evaluate.draw_supports`), from a generator seeded by
``(seed, k, draw)``, so every method sees the same supports. Accuracy: the share of scored
pixels (truth ≥ 0) whose predicted class is right, support chips included. Pure-chip
accuracy: the share of non-support chips ≥ 90 % pure whose majority predicted class is their
true class.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from stem_fsl_widgets.chips import ChipGrid
from stem_fsl_widgets.evaluate import chip_truth, draw_supports

from .cases import BUILDERS, Case, build_cases

__all__ = ["DEFAULT_METHODS", "rf_peer", "chip_majority_ceiling", "draw_support_sets", "pixel_accuracy",
           "evaluate_case", "run_suite", "markdown_table", "text_table"]

PURE = 0.9

Method = Callable[[Case, dict, ChipGrid], np.ndarray] | dict


def grid_for(case: Case) -> ChipGrid:
    """The chip grid a session with the case's chip size and stride would use."""
    h, w = case.image.shape
    return ChipGrid(h, w, case.chip_size, case.stride)


def pixel_accuracy(label_map: np.ndarray, truth: np.ndarray) -> float:
    """Share of pixels with ``truth >= 0`` whose label is right (uncovered pixels count wrong)."""
    m = truth >= 0
    return float(np.mean(np.asarray(label_map)[m] == truth[m]))


def draw_support_sets(case: Case, grid: ChipGrid, k: int, draws: int, seed: int = 0) -> list[dict[int, int]]:
    """``draws`` support sets of ``k`` chips per class (≥ 90 % pure where possible), seeded."""
    truth, purity = chip_truth(case.truth, grid)
    out = []
    for d in range(draws):
        sup = draw_supports(truth, purity, k, np.random.default_rng([seed, k, d]), min_purity=PURE)
        out.append({i: c for i, c in sup.items() if c >= 0})
    return out


def _pure_chip_accuracy(label_map: np.ndarray, case: Case, grid: ChipGrid, supports: dict) -> float:
    truth, purity = chip_truth(case.truth, grid)
    pred, _ = chip_truth(np.asarray(label_map, np.int64), grid)
    sel = (purity >= PURE) & (truth >= 0)
    sel[list(supports)] = False
    return float(np.mean(pred[sel] == truth[sel])) if sel.any() else float("nan")


# ---------------------------------------------------------------------- methods
def chip_majority_ceiling(case: Case, grid: ChipGrid | None = None) -> float:
    """Pixel accuracy of the best chip-level answer: every chip its true majority class.

    The map is made the way :attr:`Result.label_map` makes any map (overlapping chips
    averaged), from one-hot probabilities.
    """
    from stem_fsl_widgets.classify import Result

    grid = grid or grid_for(case)
    truth, _ = chip_truth(case.truth, grid)
    probs = np.zeros((grid.n_chips, case.n_classes))
    probs[np.arange(grid.n_chips), np.clip(truth, 0, None)] = 1.0
    r = Result(classes=list(case.class_names), colours=["#000000"] * case.n_classes, probabilities=probs,
               is_support=np.zeros(grid.n_chips, bool), threshold=0.5, grid=grid)
    return pixel_accuracy(r.label_map, case.truth)


_RF_FEATURES: dict[tuple, np.ndarray] = {}


def _rf_features(case: Case) -> np.ndarray:
    from skimage.feature import multiscale_basic_features

    key = (case.name, case.image.shape, float(case.image.sum()))
    if key not in _RF_FEATURES:
        _RF_FEATURES.clear()  # one image's features at a time (80 MB at 1024²)
        img = case.image.astype(np.float32)
        img = (img - img.mean()) / img.std()
        _RF_FEATURES[key] = multiscale_basic_features(img, intensity=True, edges=True, texture=True,
                                                      sigma_min=1, sigma_max=16).astype(np.float32)
    return _RF_FEATURES[key]


def rf_peer(case: Case, supports: dict[int, int], grid: ChipGrid) -> np.ndarray:
    """The classical peer: a pixel random forest trained on the support chips' pixels.

    scikit-image's trainable segmentation (``multiscale_basic_features``: intensity, edges and
    texture at σ = 1-16 px; scikit-learn ``RandomForestClassifier``, 50 trees, depth ≤ 10,
    5 % of the training pixels per tree), i.e. the ilastik/Weka method, trained on every pixel
    of the same support chips the engine gets, predicting a pixel map directly.
    """
    from skimage.future import fit_segmenter, predict_segmenter
    from sklearn.ensemble import RandomForestClassifier

    feats = _rf_features(case)
    labels = np.zeros(case.image.shape, np.int32)
    for i, c in supports.items():
        y0, x0, y1, x1 = grid.box(i)
        labels[y0:y1, x0:x1] = c + 1
    clf = RandomForestClassifier(n_estimators=50, n_jobs=-1, max_depth=10, max_samples=0.05, random_state=0)
    clf = fit_segmenter(labels, feats, clf)
    return predict_segmenter(feats, clf) - 1


def _needs_eds(method: Method) -> bool:
    if isinstance(method, dict):
        w = method.get("eds_weight")
        return isinstance(w, (int, float)) and float(w) == 1.0
    return bool(getattr(method, "needs_eds", False))


#: The table's methods (the ceiling is always computed).
DEFAULT_METHODS: dict[str, Method] = {
    "RF": rf_peer,
    "image": {"eds_weight": 0.0},
    "EDS": {"eds_weight": 1.0},
    "default": {},
}


class _SessionRunner:
    """One Session per (case, settings); each draw clears the supports and labels anew."""

    def __init__(self, case: Case, settings: dict):
        import stem_fsl_widgets as sfw

        self.case = case
        t = time.perf_counter()
        self.session = sfw.Session(case.dataset(), chip_size=case.chip_size, stride=case.stride, **settings)
        self.session.encode()
        self.encode_s = time.perf_counter() - t
        self.eds_weights: list[float] = []
        self.flagged: list[tuple[float, float, float]] = []
        self._chip_truth: np.ndarray | None = None  # the same for every draw

    def __call__(self, case: Case, supports: dict[int, int], grid: ChipGrid) -> np.ndarray:
        s = self.session
        if s.grid.n_chips != grid.n_chips:
            raise RuntimeError(f"session grid has {s.grid.n_chips} chips, the suite's {grid.n_chips}")
        if s.supports:
            s.clear()
        for c in sorted(set(supports.values())):
            s.label_many([i for i, cc in supports.items() if cc == c], case.class_names[c])
        r = s.result
        ids = np.array([case.class_names.index(n) for n in r.classes])
        if r.eds_weight is not None:
            self.eds_weights.append(float(r.eds_weight))
        if self._chip_truth is None:
            self._chip_truth = chip_truth(case.truth, grid)[0]
        self.flagged.append(_flag_record(r, ids, self._chip_truth))
        lab = np.asarray(r.label_map)
        return np.where(lab >= 0, ids[np.clip(lab, 0, None)], -1)


def _flag_record(r, ids: np.ndarray, truth: np.ndarray) -> tuple[float, float, float, float, float]:
    """How the uncertain flag reads on one draw, over the non-support chips that have a truth.

    ``truth``: each chip's true majority class (suite ids, -1 for none; see ``chip_truth``).
    Returns the share of chips whose class is not their true majority class (errors), the
    share flagged uncertain, the share of the errors that are flagged (NaN without errors),
    the mean top probability, and the expected calibration error (|top probability − share
    right| in ten bins of the top probability, weighted by the chips in each).
    """
    free = ~r.is_support & (truth >= 0)
    err = (ids[r.labels] != truth)[free]
    flag = r.uncertain[free]
    top = r.confidence[free]
    bins = np.clip((top * 10).astype(int), 0, 9)
    ece = sum(abs(top[b == bins].mean() - (1.0 - err[b == bins].mean())) * np.mean(b == bins)
              for b in np.unique(bins))
    return (float(err.mean()), float(flag.mean()), float(flag[err].mean()) if err.any() else float("nan"),
            float(top.mean()), float(ece))


def evaluate_case(case: Case, method: Method, k: int = 3, draws: int = 5, seed: int = 0) -> dict[str, Any]:
    """Score one method on one case over ``draws`` support draws of ``k`` chips per class.

    Returns
    -------
    dict
        ``acc`` (list, pixel accuracy per draw), ``mean``, ``worst``, ``pure`` (mean pure-chip
        accuracy), ``seconds`` (mean per draw), ``encode_s`` (Session methods),
        ``eds_weight`` (mean weight used, Session methods on cases with EDS), ``supports``
        (mean supports per draw: fewer than k × K when a class has too few pure chips),
        ``chip_error``, ``flagged`` and ``errors_flagged`` (Session methods: mean share of the
        non-support chips that are wrong, that are flagged uncertain, and of the wrong ones
        that are flagged), ``top_probability`` and ``calibration_error`` (their mean top
        probability and its expected calibration error; see :func:`_flag_record`).
    """
    grid = grid_for(case)
    sets = draw_support_sets(case, grid, k, draws, seed)
    runner: Callable = _SessionRunner(case, method) if isinstance(method, dict) else method
    acc, pure, secs = [], [], []
    for sup in sets:
        t = time.perf_counter()
        lab = runner(case, sup, grid)
        secs.append(time.perf_counter() - t)
        acc.append(pixel_accuracy(lab, case.truth))
        pure.append(_pure_chip_accuracy(lab, case, grid, sup))
    out: dict[str, Any] = {"acc": acc, "mean": float(np.mean(acc)), "worst": float(np.min(acc)),
                           "pure": float(np.nanmean(pure)) if np.isfinite(pure).any() else float("nan"),
                           "seconds": float(np.mean(secs)),
                           "supports": float(np.mean([len(s) for s in sets]))}
    if isinstance(runner, _SessionRunner):
        out["encode_s"] = runner.encode_s
        if runner.eds_weights:
            out["eds_weight"] = float(np.mean(runner.eds_weights))
        flags = np.array(runner.flagged, dtype=float)
        out["chip_error"], out["flagged"] = float(flags[:, 0].mean()), float(flags[:, 1].mean())
        out["top_probability"] = float(flags[:, 3].mean())
        out["calibration_error"] = float(flags[:, 4].mean())
        caught = flags[:, 2][np.isfinite(flags[:, 2])]
        out["errors_flagged"] = float(caught.mean()) if caught.size else float("nan")
    return out


def run_suite(methods: dict[str, Method] | None = None, cases: Iterable[str | Case] | None = None,
              ks: Iterable[int] = (3,), draws: int = 5, *, seed: int = 0, quick: bool = False,
              verbose: bool = True, case_seed: int | None = None) -> list[dict[str, Any]]:
    """Run methods × cases × k; one row per (case, k).

    Parameters
    ----------
    methods : dict, optional
        Name → callable or Session settings dict; default :data:`DEFAULT_METHODS`.
    cases : iterable of str or Case, optional
        Case names (built/cached by :func:`build_cases`) or Case objects; default all.
    ks : iterable of int
        Supports per class.
    draws : int
        Support draws per (case, k).
    quick : bool
        Use the small versions of the cases.
    case_seed : int, optional
        Build other instances of the generated cases (see :func:`.cases.build_case`).

    Returns
    -------
    list of dict
        ``{"case", "kind", "k", "ceiling", "fractions", "methods": {name: evaluate_case(...)}}``;
        a method that needs EDS is absent on a case without EDS, and a method that raised
        has ``{"error": message}``.
    """
    methods = DEFAULT_METHODS if methods is None else methods
    names = [c for c in (cases or list(BUILDERS)) if isinstance(c, str)]
    objs = [c for c in (cases or []) if isinstance(c, Case)]
    case_list = (build_cases(quick, names, seed=case_seed) if names else []) + objs
    rows = []
    for case in case_list:
        grid = grid_for(case)
        ceiling = chip_majority_ceiling(case, grid)
        for k in ks:
            row: dict[str, Any] = {"case": case.name, "kind": case.kind, "k": int(k), "ceiling": ceiling,
                                   "fractions": [round(float(f), 4) for f in case.fractions],
                                   "chip_size": case.chip_size, "shape": list(case.image.shape),
                                   "has_eds": case.eds is not None, "methods": {}}
            for name, m in methods.items():
                if _needs_eds(m) and case.eds is None:
                    continue
                try:
                    row["methods"][name] = evaluate_case(case, m, int(k), draws, seed)
                except Exception as err:  # a failing method must not hide the others' numbers
                    row["methods"][name] = {"error": f"{type(err).__name__}: {err}"}
            rows.append(row)
            if verbose:
                print(_text_row(row, list(methods)), flush=True)
    return rows


# ---------------------------------------------------------------------- tables
def _cell(m: dict | None) -> str:
    if m is None:
        return "–"
    if "error" in m:
        return "error"
    return f"{m['mean']:.3f} / {m['worst']:.3f}"


def _pure(row: dict, name: str = "default") -> str:
    m = row["methods"].get(name)
    return f"{m['pure']:.3f}" if m and "pure" in m and np.isfinite(m["pure"]) else "–"


def _text_row(row: dict, names: list[str]) -> str:
    cells = "  ".join(f"{_cell(row['methods'].get(n)):>13s}" for n in names)
    return f"{row['case']:20s} {row['k']:>3d}  {row['ceiling']:9.3f}  {cells}  {_pure(row):>17s}"


def text_table(rows: list[dict], names: list[str] | None = None) -> str:
    """The table as plain text (mean / worst pixel accuracy per method)."""
    names = names or _names(rows)
    head = f"{'case':20s} {'k':>3s}  {'ceiling':>9s}  " + "  ".join(f"{n:>13s}" for n in names)
    return "\n".join([head + "  default pure-chip", f"{'':37s}" + "  ".join(f"{'mean / worst':>13s}" for _ in names)]
                     + [_text_row(r, names) for r in rows])


def uncertainty_table(rows: list[dict], name: str = "default") -> str:
    """Markdown: how ``name``'s probabilities and uncertain flag read on each case, at chip level.

    Columns: share of the non-support chips that are right (their true majority class) and
    their mean top probability (equal when the probabilities are honest), the expected
    calibration error, the share flagged uncertain, and the share of the wrong chips that the
    flag catches.
    """
    lines = ["| case | k | chips right | mean top probability | calibration error | "
             "chips flagged uncertain | wrong chips flagged |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["methods"].get(name)
        if not m or "flagged" not in m:
            continue
        caught = f"{m['errors_flagged']:.2f}" if np.isfinite(m["errors_flagged"]) else "–"
        top = m.get("top_probability", float("nan"))
        ece = m.get("calibration_error", float("nan"))
        lines.append(f"| {r['case']} | {r['k']} | {1 - m['chip_error']:.2f} | {top:.2f} | {ece:.3f} | "
                     f"{m['flagged']:.2f} | {caught} |")
    return "\n".join(lines) + "\n"


def _names(rows: list[dict]) -> list[str]:
    out: list[str] = []
    for r in rows:
        out += [n for n in r["methods"] if n not in out]
    return out


def markdown_table(rows: list[dict], names: list[str] | None = None) -> str:
    """The table as Markdown: case, k, ceiling, mean / worst per method, default pure-chip."""
    names = names or _names(rows)
    lines = ["| case | kind | k | ceiling | " + " | ".join(f"{n} mean / worst" for n in names)
             + " | default pure-chip |", "|---|---|---|---|" + "---|" * len(names) + "---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['kind']} | {r['k']} | {r['ceiling']:.3f} | "
                     + " | ".join(_cell(r["methods"].get(n)) for n in names) + f" | {_pure(r)} |")
    return "\n".join(lines) + "\n"
