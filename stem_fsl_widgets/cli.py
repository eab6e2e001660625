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
    from .errors import InputError

    try:
        weight = eds_weight if eds_weight == "auto" else float(eds_weight)
    except ValueError:
        raise InputError(f"--eds-weight must be 'auto' or a number in [0, 1], not {eds_weight!r}.") from None
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


#: Voilà flags that shut down the kernel of a closed or reloaded tab: a kernel with no
#: connection, idle for 5 min, is culled (checked every minute); open tabs are never culled.
#: ``make dashboard`` passes the same (its CULL_IDLE / CULL_INTERVAL variables).
VOILA_CULLING = (
    "--MappingKernelManager.cull_idle_timeout=300",
    "--MappingKernelManager.cull_interval=60",
    "--MappingKernelManager.cull_connected=False",
    "--MappingKernelManager.cull_busy=False",
)


def _dashboard(args: argparse.Namespace) -> int:
    nb = Path(__file__).resolve().parent / "apps" / "dashboard.ipynb"  # ships in the wheel
    if not nb.exists():
        print(f"stem-fsl dashboard: the dashboard notebook is missing from the installed package "
              f"({nb}); reinstall stem_fsl_widgets.", file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "voila", str(nb), f"--port={args.port}", "--Voila.ip=127.0.0.1",
           *VOILA_CULLING]
    if args.no_browser:
        cmd.append("--no-browser")
    return subprocess.call(cmd)


def _serve(args: argparse.Namespace) -> int:
    from .apps.panel_app import serve

    dataset = None
    if args.image:
        from .io import load

        dataset = load(args.image, eds_path=args.eds)  # a bad file: one line, exit code 2
    print(f"Serving the Panel app on http://{args.address}:{args.port} (Ctrl+C stops it).")
    serve(dataset, port=args.port, address=args.address, show=not args.no_browser)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(["--quick"] if args.quick else [])


def _segment(argv: list[str]) -> int:
    from .batch import cli_segment

    return cli_segment(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``stem-fsl``."""
    from .batch import OneLineParser, one_line
    from .errors import SFWError

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "segment":  # batch mode parses its own arguments
        return _segment(argv[1:])
    parser = OneLineParser(prog="stem-fsl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="segment the built-in demo data and write PNG/TIFF maps")
    p.add_argument("--out", default="out")
    p.add_argument("-k", type=int, default=3, help="supports per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encoder", default=None)
    p.add_argument("--eds-weight", default="auto")
    sub.add_parser("segment", help="apply a saved session to many images (see stem-fsl segment -h)")
    p = sub.add_parser("dashboard", help="the Voilà dashboard on 127.0.0.1",
                       description="Serve the Voilà dashboard (demo data or uploads) on 127.0.0.1.")
    p.add_argument("--port", type=int, default=8866, help="TCP port (default 8866)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    p = sub.add_parser("serve", help="the Panel app on 127.0.0.1 (optionally on IMAGE [EDS])",
                       description="Serve the Panel app. Without IMAGE it opens the demo data; "
                                   "the page also takes uploads.")
    p.add_argument("image", nargs="?", default=None,
                   help="image file to open (.dm3/.dm4/.emd/.bcf/.tif/.hspy/.zspy/.npy/.npz/.png)")
    p.add_argument("eds", nargs="?", default=None,
                   help="EDS spectrum-image file of the same area (optional)")
    p.add_argument("--port", type=int, default=5006, help="TCP port (default 5006)")
    p.add_argument("--address", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    p = sub.add_parser("bench", help="engine benchmark (prints figures, writes benchmarks/results)")
    p.add_argument("--quick", action="store_true")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # -h, or a usage error already printed on one line
        return int(exc.code or 0)
    try:
        if args.command == "demo":
            run_demo(args.out, k=args.k, seed=args.seed, encoder=args.encoder, eds_weight=args.eds_weight)
            return 0
        return {"dashboard": _dashboard, "serve": _serve, "bench": _bench}[args.command](args)
    except KeyboardInterrupt:
        return 130
    except SFWError as err:
        print(f"stem-fsl {args.command}: {one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # an output folder that is a file, a full disk...
        print(f"stem-fsl {args.command}: {one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
