"""The evaluation suite of issue 8 in one command.

    python benchmarks/eval_suite.py [--quick] [--k 1 3 5] [--draws 5] [--cases a,b] [--methods RF,default]
                                    [--settings NAME='{"eds_weight": 0.3}'] [--tag NAME]

Prints one table (pixel accuracy, mean / worst over the draws, per case and k: chip-majority
ceiling, the scikit-image RF peer, image only, EDS only, default, and the default's accuracy
on pure chips) and writes ``benchmarks/results/suite[_TAG].json`` and ``.md``. The cases are
built on first use and cached (see benchmarks/suite/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.suite.cases import BUILDERS  # noqa: E402
from benchmarks.suite.run import (  # noqa: E402
    DEFAULT_METHODS,
    markdown_table,
    run_suite,
    text_table,
    uncertainty_table,
)


def engine_state() -> str:
    """The commit and the engine files changed since it (read-only git), for the results header."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.rstrip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    skip = ("widgets/", "apps/", "viewmodel/", "datasets/real.py")
    dirty = [p for line in git("status", "--porcelain", "--", "stem_fsl_widgets").splitlines()
             if not (p := line[3:].removeprefix("stem_fsl_widgets/")).startswith(skip)]
    return f"commit {head}" + (f" + uncommitted changes in {', '.join(dirty)}" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small versions of the cases (256² / 512² real)")
    ap.add_argument("--k", type=int, nargs="+", default=[3], help="supports per class (default 3)")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="seed of the support draws")
    ap.add_argument("--case-seed", type=int, default=None,
                    help="build other instances of the generated cases (held out: never tuned on)")
    ap.add_argument("--cases", default="", help=f"comma-separated subset of: {','.join(BUILDERS)}")
    ap.add_argument("--methods", default="", help=f"comma-separated subset of: {','.join(DEFAULT_METHODS)}")
    ap.add_argument("--settings", action="append", default=[], metavar="NAME=JSON",
                    help="an extra Session method, e.g. late='{\"fusion\": \"late\"}' (repeatable)")
    ap.add_argument("--tag", default=None, help="results file suffix (default: none for a full run, "
                    "'quick' for --quick, 'partial' for a subset)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)

    methods = dict(DEFAULT_METHODS)
    if args.methods:
        wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in DEFAULT_METHODS]
        if unknown:
            ap.error(f"unknown method(s) {unknown}; known: {list(DEFAULT_METHODS)}")
        methods = {m: DEFAULT_METHODS[m] for m in wanted}
    for spec in args.settings:
        name, _, js = spec.partition("=")
        methods[name] = json.loads(js)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()] or list(BUILDERS)
    unknown = [c for c in cases if c not in BUILDERS]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; known: {list(BUILDERS)}")

    engine = engine_state()
    t0 = time.perf_counter()
    rows = run_suite(methods, cases, args.k, args.draws, seed=args.seed, quick=args.quick,
                     case_seed=args.case_seed)
    elapsed = time.perf_counter() - t0
    names = list(methods)
    print()
    print(text_table(rows, names))
    print(f"\n{len(rows)} rows in {elapsed:.0f} s")

    partial = args.cases or args.methods or args.settings or args.case_seed is not None
    tag = args.tag if args.tag is not None else ("quick" if args.quick else "partial" if partial else "")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"suite_{tag}" if tag else "suite"
    meta = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "quick": args.quick, "ks": args.k,
            "draws": args.draws, "seed": args.seed, "case_seed": args.case_seed,
            "seconds": round(elapsed, 1), "engine": engine,
            "methods": {n: (m if isinstance(m, dict) else getattr(m, "__name__", str(m))) for n, m in methods.items()}}
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    md = [f"# Evaluation suite ({'quick' if args.quick else 'full'}: k = {', '.join(map(str, args.k))}; "
          f"{args.draws} draws; {elapsed:.0f} s on {meta['machine']})", "", f"Engine: {engine}.", "",
          *([f"Generated cases built from seed {args.case_seed}: instances the engine was never tuned on.", ""]
            if args.case_seed is not None else []),
          "Pixel accuracy of the label map against the pixel ground truth, mean / worst over the support "
          "draws. Ceiling: every chip its true majority class (the limit of a chip-level map; a pixel-refined "
          "map can exceed it). Pure-chip: the default's accuracy on "
          "non-support chips ≥ 90 % one class. See benchmarks/suite/README.md.", "",
          markdown_table(rows, names)]
    if "default" in names:
        md += ["## The default's probabilities and uncertain flag", "",
               "Chip level, non-support chips: right = the chip's true majority class; top probability = "
               "the probability of the class given; calibration error = |top probability − share right| "
               "in ten bins of the top probability (0 = honest); flagged = normalised entropy above the "
               "threshold (0.5). Honest probabilities give a mean top probability near the share right; "
               "a useful flag catches most wrong chips while flagging few.", "", uncertainty_table(rows)]
    (out / f"{stem}.md").write_text("\n".join(md))
    print(f"written to {out / stem}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
