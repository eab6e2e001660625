"""Benchmark: peak memory and time of map exports on large images, banded vs the old code.

Usage::

    python benchmarks/large_images.py                 # 4k² and 8k²
    python benchmarks/large_images.py --sizes 4096 8192 16384

For each size, a synthetic image and a Result on 64-px chips (random probabilities over 4
classes, no encoding: exports only see the Result) are built; then each export runs in its own
child process and reports the peak of Python-tracked allocations (``tracemalloc``: NumPy
registers its buffers there; Pillow's own buffers are not) and the growth of the process's peak
RSS (``ru_maxrss``, which does see Pillow) above the image + Result already in memory, and the
wall time:

- ``write_maps`` PNG (label overlay + entropy) and TIFF (labels + entropy), as now (colouring
  in bands of rows, files written straight into a temp file beside the target);
- the same with the export code of the last commit (``git show HEAD:...export.py``: whole-image
  float64 colouring, files built in memory first), for comparison;
- ``export_zip`` (what a hosted app sends as one download).

Writes ``benchmarks/results/large_images.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import importlib.util, json, os, resource, sys, tempfile, time, tracemalloc
from pathlib import Path
import numpy as np
import stem_fsl_widgets as sfw
from stem_fsl_widgets.classify import Result
from stem_fsl_widgets import export as new

size, what, old_src = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = np.random.default_rng(0)
image = rng.random((size, size), dtype=np.float32)
ds = sfw.Dataset(image, pixel_size=0.1, pixel_unit="nm", name="big")
grid = sfw.ChipGrid(size, size, 64)
p = rng.dirichlet(np.ones(4), grid.n_chips)
res = Result(classes=list("abcd"), colours=list(sfw.PALETTE[:4]), probabilities=p,
             is_support=np.zeros(grid.n_chips, bool), threshold=0.5, grid=grid, eds_weight=None, notes=[])
res.label_map, res.entropy_map  # cached maps: part of the Result a session already holds
mod = new
if what.startswith("old"):
    text = Path(old_src).read_text().replace("from .session import _atomic_write",
                                               "from .atomic import atomic_write as _atomic_write")
    spec = importlib.util.spec_from_loader("stem_fsl_widgets._old_export", loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "stem_fsl_widgets"
    exec(compile(text, "old_export.py", "exec"), mod.__dict__)
out = Path(tempfile.mkdtemp())
rss0 = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
t = time.perf_counter()
if what.endswith("png"):
    mod.write_maps(res, ds, out / "x", formats=("png",))
elif what.endswith("tif"):
    mod.write_maps(res, ds, out / "x", formats=("tif",))
else:
    mod.export_zip(res, ds, ("labels.png", "entropy.png", "labels.tif", "entropy.tif"))
dt = time.perf_counter() - t
peak = tracemalloc.get_traced_memory()[1] - base
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0  # Linux: KiB
print(json.dumps({"size": size, "what": what, "peak_mb": peak / 2**20, "rss_mb": max(rss, 0) / 2**20,
                  "seconds": dt,
                  "image_mb": image.nbytes / 2**20}))
"""


def run(size: int, what: str, old_src: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(size), what, old_src], capture_output=True,
                         text=True, cwd=ROOT)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["?"])[-1]
        return {"size": size, "what": what, "error": tail}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    args = ap.parse_args(argv)
    old = subprocess.run(["git", "show", "HEAD:stem_fsl_widgets/export.py"], capture_output=True,
                         text=True, cwd=ROOT)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(old.stdout)
        old_src = fh.name
    rows = []
    for size in args.sizes:
        for what in ("png", "old png", "tif", "old tif", "zip"):
            r = run(size, what, old_src)
            rows.append(r)
            if "error" in r:
                print(f"{size:>6}² {what:8s} failed: {r['error']}")
            else:
                print(f"{size:>6}² {what:8s} peak {r['peak_mb']:7.0f} MB traced, RSS +{r['rss_mb']:6.0f} MB "
                      f"above image+result (image {r['image_mb']:.0f} MB)  {r['seconds']:6.1f} s")
    Path(old_src).unlink()
    res = ROOT / "benchmarks" / "results" / "large_images.json"
    res.parent.mkdir(parents=True, exist_ok=True)
    res.write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=1))
    print("wrote", res.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
