"""Does following ``suggest()`` save clicks? Accuracy curves against random picking.

From 1 support per class (drawn as in the evaluation suite), add one chip at a time, either
the first of ``Result.suggest()`` or a random unlabelled chip, each labelled with its true
majority class (a boundary chip gets its majority, as a user in a hurry would). Pixel
accuracy of the chip-level map after +0, +4, +8 and +16 clicks, mean over draws; the pixel
refinement is left out to keep it fast.

    python benchmarks/suggest_curves.py [--quick] [--draws 5] [--cases a,b] [--case-seed N]

Writes ``benchmarks/results/suggest_curves.{json,md}`` and ``docs/suggest_curves.png``;
with ``--case-seed N`` (other instances of the generated cases, see
``benchmarks/suite/README.md``) ``suggest_curves_seedN.{json,md}`` and no plot.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import stem_fsl_widgets as sfw  # noqa: E402
from benchmarks.suite.cases import build_cases  # noqa: E402
from benchmarks.suite.run import draw_support_sets, grid_for, pixel_accuracy  # noqa: E402
from stem_fsl_widgets.evaluate import chip_truth  # noqa: E402

STEPS = (0, 4, 8, 16)
STRATEGIES = ("suggest", "random")


def _accuracy(session, case) -> float:
    r = session.result
    ids = np.array([case.class_names.index(n) for n in r.classes])
    lab = np.asarray(r.label_map)
    return pixel_accuracy(np.where(lab >= 0, ids[np.clip(lab, 0, None)], -1), case.truth)


def curve(case, strategy: str, start: dict[int, int], seed: int) -> list[float]:
    """Accuracy after each of :data:`STEPS` extra clicks."""
    s = sfw.Session(case.dataset(), chip_size=case.chip_size, stride=case.stride, pixel_maps=False)
    truth, _ = chip_truth(case.truth, s.grid)
    for c in sorted(set(start.values())):
        s.label_many([i for i, cc in start.items() if cc == c], case.class_names[c])
    rng = np.random.default_rng(seed)
    out = [_accuracy(s, case)]
    for step in range(1, STEPS[-1] + 1):
        r = s.result
        if r.is_support.all():  # a small image: every chip labelled already
            chip = -1
        elif strategy == "suggest":
            chip = int(r.suggest(1)[0])
        else:
            chip = int(rng.choice(np.flatnonzero(~r.is_support & (truth >= 0))))
        if chip >= 0 and truth[chip] >= 0:
            s.label(chip, case.class_names[truth[chip]])
        if step in STEPS:
            out.append(_accuracy(s, case))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--cases", default="")
    ap.add_argument("--case-seed", type=int, default=None,
                    help="other instances of the generated cases (held out: never tuned on)")
    args = ap.parse_args(argv)
    names = [n for n in args.cases.split(",") if n] or None
    rows = []
    t0 = time.perf_counter()
    for case in build_cases(args.quick, names, seed=args.case_seed):
        grid = grid_for(case)
        sets = draw_support_sets(case, grid, 1, args.draws, seed=0)
        res = {st: np.mean([curve(case, st, sup, 100 + d) for d, sup in enumerate(sets)], axis=0)
               for st in STRATEGIES}
        rows.append({"case": case.name, **{st: [float(v) for v in res[st]] for st in STRATEGIES}})
        cells = "  ".join(f"{st} " + "/".join(f"{v:.3f}" for v in res[st]) for st in STRATEGIES)
        print(f"{case.name:20s} {cells}", flush=True)
    print(f"{len(rows)} cases in {time.perf_counter() - t0:.0f} s")
    out = ROOT / "benchmarks" / "results"
    tag = ("_quick" if args.quick else "") + (f"_seed{args.case_seed}" if args.case_seed is not None else "")
    (out / f"suggest_curves{tag}.json").write_text(json.dumps({"steps": STEPS, "rows": rows}, indent=1))
    lines = ["| case | " + " | ".join(f"{st} +{k}" for k in STEPS[1:] for st in STRATEGIES) + " |",
             "|---|" + "---|" * (len(STEPS) - 1) * len(STRATEGIES)]
    for r in rows:
        lines.append(f"| {r['case']} | " + " | ".join(f"{r[st][j]:.3f}" for j in range(1, len(STEPS))
                                                     for st in STRATEGIES) + " |")
    mean = {st: np.mean([r[st] for r in rows], axis=0) for st in STRATEGIES}
    lines.append("| **mean** | " + " | ".join(f"**{mean[st][j]:.3f}**" for j in range(1, len(STEPS))
                                              for st in STRATEGIES) + " |")
    (out / f"suggest_curves{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.case_seed is not None:
        return 0
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for st, style in zip(STRATEGIES, ("-o", ":^"), strict=True):
        ax.plot(STEPS, mean[st], style, label=st)
    ax.set_xlabel("clicks added after 1 per class")
    ax.set_ylabel(f"mean pixel accuracy over {len(rows)} suite cases")
    ax.set_title("Following suggest() vs random picking")
    ax.legend()
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / f"suggest_curves{tag}.png", dpi=100)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
