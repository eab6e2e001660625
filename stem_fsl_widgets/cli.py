"""Command line: ``stem-fsl demo | segment | dashboard | serve | bench``.

Each subcommand is thin glue over the package's functions; heavy imports happen inside the
subcommand that needs them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["main", "run_demo"]


def run_demo(out: str | os.PathLike = "out", *, k: int = 3, seed: int = 0, encoder: str | None = None,
             eds_weight: str = "auto") -> dict:
    """Segment the built-in demo data from ``k`` supports per class and write the maps.

    The supports stand in for a user's clicks: ``k`` chips drawn at random (``seed``) inside
    each ground-truth region. Prints accuracy, class fractions and the uncertain fraction;
    writes ``demo_labels.png`` and ``demo_entropy.png`` (and TIFFs) into ``out``.

    Returns
    -------
    dict
        accuracy, macro_f1, entropy_auroc, eds_weight, fractions, files.
    """
    import numpy as np

    from .datasets import demo
    from .evaluate import chip_truth, draw_supports, score_result
    from .export import write_maps
    from .session import Session

    ds = demo()
    weight = eds_weight if eds_weight == "auto" else float(eds_weight)
    s = Session(ds, chip_size=32, encoder=encoder, eds_weight=weight)
    truth, purity = chip_truth(ds.ground_truth, s.grid)
    for c in ds.truth_classes:
        s.add_class(c)
    sup = draw_supports(truth, purity, k, np.random.default_rng(seed))
    result = None
    for i, c in sup.items():
        result = s.label(i, ds.truth_classes[c])
    score = score_result(result, truth, [ds.truth_classes.index(c) for c in result.classes])
    out = Path(out)
    files = write_maps(result, ds, out / "demo", formats=("png", "tif"))
    print(f"{ds!r}\n{s.n_chips} chips of {s.settings.chip_size} px, encoder {s.settings.encoder}, "
          f"{k} supports per class, EDS weight {result.eds_weight:.2f}")
    print(f"chip accuracy {score.accuracy:.3f}   macro-F1 {score.macro_f1:.3f}   "
          f"entropy AUROC for wrong chips {score.entropy_auroc:.3f}")
    print(result.summary())
    print("wrote", ", ".join(str(f) for f in files))
    return {"accuracy": score.accuracy, "macro_f1": score.macro_f1,
            "entropy_auroc": score.entropy_auroc, "eds_weight": result.eds_weight,
            "fractions": result.fractions, "files": [str(f) for f in files]}


def _dashboard(args: argparse.Namespace) -> int:
    nb = Path(__file__).resolve().parent.parent / "notebooks" / "dashboard.ipynb"
    if not nb.exists():
        print(f"The dashboard notebook is not at {nb}; run from a source checkout.", file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "voila", str(nb), f"--port={args.port}", "--Voila.ip=127.0.0.1"]
    if args.no_browser:
        cmd.append("--no-browser")
    return subprocess.call(cmd)


def _serve(args: argparse.Namespace) -> int:
    from .apps.panel_app import serve

    serve(port=args.port, address=args.address, show=not args.no_browser)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(["--quick"] if args.quick else [])


def _segment(argv: list[str]) -> int:
    from .batch import cli_segment

    return cli_segment(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``stem-fsl``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "segment":  # batch mode parses its own arguments
        return _segment(argv[1:])
    parser = argparse.ArgumentParser(prog="stem-fsl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="segment the built-in demo data and write PNG/TIFF maps")
    p.add_argument("--out", default="out")
    p.add_argument("-k", type=int, default=3, help="supports per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encoder", default=None)
    p.add_argument("--eds-weight", default="auto")
    sub.add_parser("segment", help="apply a saved session to many images (see stem-fsl segment -h)")
    p = sub.add_parser("dashboard", help="the Voilà dashboard on 127.0.0.1")
    p.add_argument("--port", type=int, default=8866)
    p.add_argument("--no-browser", action="store_true")
    p = sub.add_parser("serve", help="the Panel app on 127.0.0.1")
    p.add_argument("--port", type=int, default=5006)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--no-browser", action="store_true")
    p = sub.add_parser("bench", help="engine benchmark (prints figures, writes benchmarks/results)")
    p.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "demo":
        run_demo(args.out, k=args.k, seed=args.seed, encoder=args.encoder, eds_weight=args.eds_weight)
        return 0
    return {"dashboard": _dashboard, "serve": _serve, "bench": _bench}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
