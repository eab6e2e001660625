"""Benchmark: reading files, an EDS cube larger than memory, and batch throughput.

Usage::

    python benchmarks/io_batch.py            # full run (writes a 4 GiB cube to a temp dir)
    python benchmarks/io_batch.py --quick    # smoke test: small cube, few images

Prints, and writes to ``benchmarks/results/io_batch.json`` (``io_batch_quick.json`` with
``--quick``):

1. load time per format for small files written here (the demo image; EDS where the format
   can hold it), median of 5 reads after one warm-up read;
2. a synthetic 1024×1024×2048 uint16 EDS cube (4 GiB, uncompressed ``.hspy``, written chunk
   by chunk from a dask array, deleted afterwards) with a 1024×1024 image: open it with
   ``stem_fsl_widgets.load``, encode it through a ``Session`` (image chips + chip spectra +
   EDS PCA) and classify from two clicks — wall time and the peak RSS of the child process
   that did only this (``ru_maxrss``), so the figure is clean;
3. batch throughput of ``segment_files`` on demo images (512×512 HAADF + 128×128×512 EDS)
   with 1 and 2 local worker processes, and in-process for reference (also with chip-level
   maps), in images/minute, with the pixel accuracy of the written maps
   (pool start-up included: that is what a user waits for).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
E_KEV_PER_CHANNEL = 0.01
LINES_KEV = (7.478, 1.487)  # Ni Kα on the left half, Al Kα on the right half
COUNTS_PER_PIXEL = 20.0


# ----------------------------------------------------------------------------- 1. formats
def _write_formats(folder: Path, ds) -> dict[str, tuple[Path, dict]]:
    """The demo data in every format this machine can write, with the load() arguments."""
    import tifffile
    from PIL import Image

    from stem_fsl_widgets import io

    hs = io._hyperspy()
    img = hs.signals.Signal2D(ds.image)
    img.metadata.General.title = "HAADF"
    for ax in img.axes_manager.signal_axes:
        ax.scale, ax.units = ds.pixel_size, ds.pixel_unit
    eds = hs.signals.Signal1D(np.asarray(ds.eds))
    eds.set_signal_type("EDS_TEM")
    for ax in eds.axes_manager.navigation_axes:
        ax.scale, ax.units = ds.pixel_size * ds.eds_binning, ds.pixel_unit
    e = eds.axes_manager.signal_axes[0]
    e.offset, e.scale, e.units = float(ds.energy_axis[0]), float(np.diff(ds.energy_axis[:2])[0]), "keV"
    out: dict[str, tuple[Path, dict]] = {}
    for ext in (".hspy", ".zspy", ".emd"):
        img.save(folder / f"img{ext}", overwrite=True)
        out[f"{ext[1:]} image"] = (folder / f"img{ext}", {})
    for ext in (".hspy", ".zspy"):
        eds.save(folder / f"si{ext}", overwrite=True)
        out[f"{ext[1:]} image + {ext[1:]} EDS"] = (folder / f"img{ext}", {"eds_path": folder / f"si{ext}"})
    tifffile.imwrite(folder / "img.tif", ds.image, imagej=True, metadata={"unit": "nm"},
                     resolution=(1 / ds.pixel_size, 1 / ds.pixel_size))
    out["tif image (ImageJ)"] = (folder / "img.tif", {})
    lo, hi = np.percentile(ds.image, [0.5, 99.5])
    grey = (np.clip((ds.image - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    Image.fromarray(grey).save(folder / "img.png")
    out["png image (8-bit)"] = (folder / "img.png", {})
    np.save(folder / "img.npy", ds.image)
    out["npy image"] = (folder / "img.npy", {})
    io.save_npz(ds, folder / "all.npz")
    out["npz image + EDS (one file)"] = (folder / "all.npz", {})
    return out


def _size(path: Path) -> int:
    """Bytes of a file, or of every file in a folder (.zspy)."""
    return sum(f.stat().st_size for f in ([path] if path.is_file() else path.rglob("*")) if f.is_file())


def bench_formats(quick: bool) -> list[dict]:
    import stem_fsl_widgets as sfw
    from stem_fsl_widgets.datasets import demo

    ds = demo(size=256 if quick else 512)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = _write_formats(Path(tmp), ds)
        for name, (path, kw) in files.items():
            sfw.load(path, **kw)  # warm-up: imports, page cache
            times = []
            for _ in range(3 if quick else 5):
                t = time.perf_counter()
                loaded = sfw.load(path, **kw)
                times.append(time.perf_counter() - t)
            size = _size(path) + (_size(kw["eds_path"]) if "eds_path" in kw else 0)
            rows.append({"format": name, "ms": round(1000 * statistics.median(times), 1),
                         "MiB": round(size / 2**20, 2), "eds": loaded.has_eds,
                         "pixel_size": loaded.pixel_size})
            print(f"  {name:32s} {rows[-1]['ms']:8.1f} ms  ({rows[-1]['MiB']:.1f} MiB, "
                  f"EDS: {loaded.has_eds})")
    return rows


# ----------------------------------------------------------------------------- 2. big cube
def _spectrum(n_channels: int, line_kev: float) -> np.ndarray:
    """Probability per channel: a Kramers-like background plus one Gaussian line."""
    e = (np.arange(n_channels) + 0.5) * E_KEV_PER_CHANNEL
    e0 = n_channels * E_KEV_PER_CHANNEL
    background = np.clip((e0 - e) / e, 0, 50) * (1 - np.exp(-e / 0.8))
    line = np.exp(-0.5 * ((e - line_kev) / 0.06) ** 2)
    p = background / background.sum() + 0.5 * line / line.sum()
    return p / p.sum()


def _cube_block(shape_xy: tuple[int, int], n_channels: int, block_info=None) -> np.ndarray:
    """One chunk of the synthetic cube, seeded by its position (any chunk order gives one cube)."""
    info = block_info[None]
    (y0, y1), (x0, x1), _ = info["array-location"]
    rng = np.random.default_rng([y0, x0])
    by, bx = y1 - y0, x1 - x0
    # Sparse like real EDS: ~20 counts per pixel, each in one channel drawn from its phase's spectrum.
    n = rng.poisson(COUNTS_PER_PIXEL, by * bx)
    pix = np.repeat(np.arange(by * bx), n)
    right = (x0 + pix % bx) >= shape_xy[1] // 2
    chan = np.empty(pix.size, np.int64)
    for k, line in enumerate(LINES_KEV):
        sel = right == bool(k)
        chan[sel] = rng.choice(n_channels, size=int(sel.sum()), p=_spectrum(n_channels, line))
    flat = np.bincount(pix * n_channels + chan, minlength=by * bx * n_channels)
    return flat.astype(np.uint16).reshape(by, bx, n_channels)


def _image(size: int) -> np.ndarray:
    """Two lattices, fine on the left half and coarse on the right, with shot noise."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    fine = (np.cos(np.pi * xx / 5) * np.cos(np.pi * yy / 5)) ** 8
    u, v = 0.88 * xx + 0.48 * yy, -0.48 * xx + 0.88 * yy
    coarse = (np.cos(np.pi * u / 9) * np.cos(np.pi * v / 9)) ** 8
    img = np.where(xx < size // 2, fine, coarse)
    return np.random.default_rng(0).poisson(img * 50 + 10).astype(np.float32)


def write_big_cube(folder: Path, size: int, n_channels: int) -> tuple[Path, Path, float]:
    """Write image.hspy and cube.hspy (uncompressed, chunk by chunk); return paths, seconds."""
    import dask
    import dask.array as da

    from stem_fsl_widgets import io

    hs = io._hyperspy()
    t = time.perf_counter()
    img = hs.signals.Signal2D(_image(size))
    for ax in img.axes_manager.signal_axes:
        ax.scale, ax.units = 0.05, "nm"
    img.metadata.General.title = "HAADF"
    img.save(folder / "image.hspy", overwrite=True)
    rows = min(32, size)
    chunks = (rows, min(256, size), n_channels)
    blocks = da.core.normalize_chunks(chunks, shape=(size, size, n_channels))
    data = da.map_blocks(_cube_block, (size, size), n_channels, dtype=np.uint16, chunks=blocks)
    cube = hs.signals.Signal1D(data).as_lazy()
    cube.set_signal_type("EDS_TEM")
    for ax in cube.axes_manager.navigation_axes:
        ax.scale, ax.units = 0.05, "nm"
    e = cube.axes_manager.signal_axes[0]
    e.offset, e.scale, e.units = 0.0, E_KEV_PER_CHANNEL, "keV"
    with dask.config.set(scheduler="threads", num_workers=2):
        cube.save(folder / "cube.hspy", overwrite=True, compression=None, shuffle=False,
                  chunks=chunks, show_progressbar=False)
    return folder / "image.hspy", folder / "cube.hspy", time.perf_counter() - t


def child_cube(image: str, cube: str, lazy: bool | None) -> None:
    """Runs in a fresh process: load (lazily), encode through a Session, classify; print JSON."""
    import stem_fsl_widgets as sfw

    t0 = time.perf_counter()
    ds = sfw.load(image, eds_path=cube, lazy=lazy)  # None: lazy because the file is big
    t_load = time.perf_counter() - t0
    s = sfw.Session(ds, chip_size=32)
    t1 = time.perf_counter()
    s.image_embeddings()
    t_image = time.perf_counter() - t1
    t1 = time.perf_counter()
    s.eds_embeddings()
    t_eds = time.perf_counter() - t1
    t1 = time.perf_counter()
    h, w = ds.shape
    s.label(int(s.grid.chip_at(h // 4, w // 4)), "left")
    r = s.label(int(s.grid.chip_at(h // 4, 3 * w // 4)), "right")
    t_classify = time.perf_counter() - t1
    truth = (s.grid.boxes[:, 1] + 16 >= w // 2).astype(int)
    print(json.dumps({
        "lazy": bool(hasattr(ds.eds, "compute")),
        "eds_chunk": [int(c[0]) for c in ds.eds.chunks] if hasattr(ds.eds, "chunks") else None,
        "n_chips": s.n_chips, "load_s": round(t_load, 2), "encode_image_s": round(t_image, 2),
        "chip_spectra_and_eds_encode_s": round(t_eds, 2), "two_clicks_s": round(t_classify, 3),
        "total_s": round(time.perf_counter() - t0, 2),
        "chip_accuracy": round(float((r.labels == truth).mean()), 4),
        "eds_weight": round(float(r.eds_weight), 3),
        "peak_rss_MiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


def bench_big_cube(quick: bool, workdir: str | None) -> dict:
    size, n_channels = (256, 1024) if quick else (1024, 2048)
    folder = Path(tempfile.mkdtemp(prefix="sfw_cube_", dir=workdir))
    try:
        image, cube, t_write = write_big_cube(folder, size, n_channels)
        gib = cube.stat().st_size / 2**30
        print(f"  wrote {size}×{size}×{n_channels} uint16 cube: {gib:.2f} GiB on disk in {t_write:.0f} s")
        env = {**os.environ, "OMP_NUM_THREADS": "2"}
        cmd = [sys.executable, "-W", "ignore", __file__, "--child-cube", str(image), str(cube)]
        # The quick cube is below io.LAZY_THRESHOLD: force the lazy path it is meant to test.
        out = subprocess.run(cmd + (["--force-lazy"] if quick else []), capture_output=True,
                             text=True, env=env, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"child failed:\n{out.stderr[-3000:]}")
        res = json.loads(out.stdout.strip().splitlines()[-1])
        res.update(shape=[size, size, n_channels], cube_GiB=round(gib, 3), write_s=round(t_write, 1))
        print(f"  load {res['load_s']} s, image chips {res['encode_image_s']} s, chip spectra + EDS "
              f"{res['chip_spectra_and_eds_encode_s']} s, two clicks {res['two_clicks_s']} s; "
              f"total {res['total_s']} s; peak RSS {res['peak_rss_MiB']} MiB; "
              f"chip accuracy {res['chip_accuracy']}")
        return res
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ----------------------------------------------------------------------------- 3. batch
def bench_batch(quick: bool) -> dict:
    import tifffile

    import stem_fsl_widgets as sfw
    from stem_fsl_widgets import io
    from stem_fsl_widgets.batch import segment_files
    from stem_fsl_widgets.datasets import demo
    from stem_fsl_widgets.evaluate import chip_truth, draw_supports

    n_images = 4 if quick else 16
    size = 256 if quick else 512
    res: dict = {"n_images": n_images, "image": f"{size}×{size} + EDS {size // 4}×{size // 4}×512"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ref = demo(size=size, seed=0)
        s = sfw.Session(ref, chip_size=32)
        truth, purity = chip_truth(ref.ground_truth, s.grid)
        for i, c in draw_supports(truth, purity, 3, np.random.default_rng(0)).items():
            s.label(i, ref.truth_classes[c])
        s.save(tmp / "session.json", arrays=True)
        truths = [demo(size=size, seed=k + 1).ground_truth for k in range(n_images)]
        files = [io.save_npz(demo(size=size, seed=k + 1), tmp / f"demo{k}.npz") for k in range(n_images)]
        sync = {"scheduler": "synchronous"}
        for label, kw in (("in-process, chip maps", {**sync, "pixel_maps": False}),
                          ("in-process", sync), ("1 worker", {"workers": 1}),
                          ("2 workers", {"workers": 2})):
            out = tmp / label.replace(" ", "_").replace(",", "")
            t = time.perf_counter()
            rows = segment_files(tmp / "session.json", files, out, progress=False, formats=("tif",), **kw)
            dt = time.perf_counter() - t
            ok = sum(r["status"] == "ok" for r in rows)
            # Pixel accuracy of the written label maps against each image's own truth.
            acc = [float((tifffile.imread(out / f"demo{k}_labels.tif") == truths[k]).mean())
                   for k in range(n_images)]
            res[label] = {"seconds": round(dt, 2), "images_per_min": round(60 * ok / dt, 1), "ok": ok,
                          "accuracy_mean": round(float(np.mean(acc)), 3),
                          "accuracy_worst": round(float(np.min(acc)), 3)}
            print(f"  {label:21s} {dt:6.1f} s for {ok} images → {60 * ok / dt:6.1f} images/min, "
                  f"pixel accuracy {np.mean(acc):.3f} mean / {np.min(acc):.3f} worst")
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small cube and few images (smoke test)")
    p.add_argument("--workdir", help="where to write the temporary cube (default: system temp)")
    p.add_argument("--skip-cube", action="store_true")
    p.add_argument("--only-batch", action="store_true", help="only part 3 (batch throughput)")
    p.add_argument("--child-cube", nargs=2, metavar=("IMAGE", "CUBE"), help=argparse.SUPPRESS)
    p.add_argument("--force-lazy", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child_cube:
        child_cube(*args.child_cube, True if args.force_lazy else None)
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    results: dict = {"quick": args.quick, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                     "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}
    if not args.only_batch:
        print("1. load time per format")
        results["load"] = bench_formats(args.quick)
    if not (args.skip_cube or args.only_batch):
        print("2. lazy EDS cube through a Session")
        results["big_cube"] = bench_big_cube(args.quick, args.workdir)
    print("3. batch throughput (segment_files, demo data)")
    results["batch"] = bench_batch(args.quick)
    out = ROOT / "benchmarks" / "results" / ("io_batch_quick.json" if args.quick else "io_batch.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.only_batch and out.exists():  # keep the other parts' last figures
        results = {**json.loads(out.read_text()), **results}
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"written {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
