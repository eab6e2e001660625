"""Engine benchmark: ``python -m stem_fsl_widgets.bench [--quick]``.

Prints, and writes to ``benchmarks/results/engine.{json,md}``:

1. encoding throughput (chips/s, 32 and 64 px) per image encoder;
2. ``label() + classify()`` latency (median, p95) for 1,024 / 4,096 / 16,384 chips;
3. chip accuracy and macro-F1 for k = 1, 3, 5 supports per class × {image, EDS, early, late,
   auto} fusion, mean ± std over random support draws on the demo data, with the AUROC of
   entropy for telling wrong chips from right ones;
4. the peer on the same supports: scikit-image's trainable segmentation (random forest on
   ``multiscale_basic_features``, the ilastik/Weka method), chip accuracy by majority vote.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from .chips import ChipGrid
from .dataset import Dataset
from .encoders import get_encoder
from .evaluate import chip_truth, draw_supports, macro_f1, score_result
from .session import Session

__all__ = ["main"]

FUSIONS = {
    "image": {"eds_weight": 0.0},
    "EDS": {"eds_weight": 1.0},
    "early 0.5": {"eds_weight": 0.5, "fusion": "early"},
    "late 0.5": {"eds_weight": 0.5, "fusion": "late"},
    "early auto": {"eds_weight": "auto", "fusion": "early"},
}


def _resnet_with_local_weights(tmp: Path):
    """ResNet-18 with random weights saved here: ImageNet weights need a download, same compute."""
    import torch
    import torchvision

    path = tmp / "resnet18_random.pth"
    if not path.exists():
        torch.manual_seed(0)
        torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return get_encoder("resnet18", weights_path=path)


def bench_encoders(n_chips: int, tmp: Path) -> list[dict]:
    """Chips per second of each encoder at 32 and 64 px on random chips."""
    rows = []
    rng = np.random.default_rng(0)
    encoders = {name: get_encoder(name) for name in ("fourier", "fourier_oriented", "random_cnn")}
    encoders["resnet18 (input 96 px)"] = _resnet_with_local_weights(tmp)
    for name, enc in encoders.items():
        for size in (32, 64):
            n = n_chips if "resnet" not in name else max(32, n_chips // 8)
            chips = rng.normal(size=(n, size, size)).astype(np.float32)
            enc.encode(chips[:8])  # warm-up (model build, FFT plans)
            t = time.perf_counter()
            for start in range(0, n, enc.batch_size):
                enc.encode(chips[start : start + enc.batch_size])
            rate = n / (time.perf_counter() - t)
            rows.append({"encoder": name, "chip_px": size, "chips_per_s": rate})
            print(f"  {name:24s} {size:3d} px  {rate:9.0f} chips/s")
    return rows


def bench_latency(sizes: list[int], clicks: int) -> list[dict]:
    """Median/p95 of label()+classify() on synthetic images with EDS, 4 classes."""
    rows = []
    rng = np.random.default_rng(0)
    for n_chips in sizes:
        s = _latency_session(n_chips, rng)
        side = s.dataset.shape[0]
        t = time.perf_counter()
        s.encode()
        t_encode = time.perf_counter() - t
        for k, cls in enumerate("abcd"):
            s.label(k * (s.n_chips // 4) + 1, cls)
        times = []
        chips = rng.choice(s.n_chips, size=clicks, replace=False)
        for j, chip in enumerate(chips):
            t = time.perf_counter()
            s.label(int(chip), "abcd"[j % 4])
            times.append(time.perf_counter() - t)
        ms = np.array(times) * 1e3
        # Suggestions: the first computes the grid's typicality (cached); later ones reuse it.
        t = time.perf_counter()
        s.result.suggest(5)
        first = time.perf_counter() - t
        s.label(int(np.flatnonzero(~s.result.is_support)[0]), "a")
        t = time.perf_counter()
        s.result.suggest(5)
        again = time.perf_counter() - t
        row = {"n_chips": s.n_chips, "image_px": side, "encode_s": t_encode,
               "median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
               "suggest_first_ms": first * 1e3, "suggest_ms": again * 1e3}
        rows.append(row)
        print(f"  {s.n_chips:6d} chips ({side}² px + EDS): encode once {t_encode:6.2f} s, "
              f"click median {row['median_ms']:6.1f} ms, p95 {row['p95_ms']:6.1f} ms; "
              f"suggest 5 first {row['suggest_first_ms']:.0f} ms, then {row['suggest_ms']:.0f} ms")
    return rows


def _draws(ds: Dataset, encoder: str, k: int, draws: int, settings: dict) -> dict[str, np.ndarray]:
    """Score ``draws`` random support sets of ``k`` chips per class → arrays of each metric."""
    s = Session(ds, chip_size=32, encoder=encoder)
    s.settings.__dict__.update(settings)  # direct: no undo history or reclassification needed
    truth, purity = chip_truth(ds.ground_truth, s.grid)
    out: dict[str, list] = {"acc": [], "f1": [], "auc": [], "w": []}
    for d in range(draws):
        sup = draw_supports(truth, purity, k, np.random.default_rng(1000 + d))
        s.classes = {c: "#000000" for c in ds.truth_classes}
        s.supports = {i: ds.truth_classes[c] for i, c in sup.items()}
        r = s.classify()
        sc = score_result(r, truth, [ds.truth_classes.index(c) for c in r.classes])
        out["acc"].append(sc.accuracy)
        out["f1"].append(sc.macro_f1)
        out["auc"].append(sc.entropy_auroc)
        out["w"].append(r.eds_weight)
    return {key: np.asarray(v, dtype=float) for key, v in out.items()}


def bench_accuracy(ds: Dataset, draws: int, ks=(1, 3, 5)) -> list[dict]:
    """Accuracy/macro-F1/entropy AUROC per k and fusion mode on ``ds`` (with ground truth)."""
    rows = []
    for k in ks:
        for mode, settings in FUSIONS.items():
            m = _draws(ds, "fourier", k, draws, settings)
            row = {"k": k, "mode": mode, "acc_mean": m["acc"].mean(), "acc_std": m["acc"].std(),
                   "f1_mean": m["f1"].mean(), "f1_std": m["f1"].std(),
                   "entropy_auroc": float(np.nanmean(m["auc"])), "eds_weight": m["w"].mean()}
            rows.append({key: (float(v) if isinstance(v, np.floating) else v) for key, v in row.items()})
            print(f"  k={k} {mode:11s} acc {row['acc_mean']:.3f} ± {row['acc_std']:.3f}  "
                  f"F1 {row['f1_mean']:.3f} ± {row['f1_std']:.3f}  entropy AUROC {row['entropy_auroc']:.2f}"
                  f"  (EDS weight {row['eds_weight']:.2f})")
    return rows


def bench_encoder_choice(ds: Dataset, draws: int, k: int = 3) -> list[dict]:
    """Fused (auto) and image-only accuracy per offline encoder: how the default was chosen."""
    rows = []
    for name in ("fourier", "fourier_oriented", "random_cnn"):
        row: dict = {"encoder": name, "k": k}
        for mode, w in (("image", 0.0), ("fused", "auto")):
            acc = _draws(ds, name, k, draws, {"eds_weight": w})["acc"]
            row[f"{mode}_mean"], row[f"{mode}_std"] = float(acc.mean()), float(acc.std())
        rows.append(row)
        print(f"  {name:17s} k={k}  image-only {row['image_mean']:.3f} ± {row['image_std']:.3f}   "
              f"fused (auto) {row['fused_mean']:.3f} ± {row['fused_std']:.3f}")
    return rows


#: Other acquisitions of the demo materials: other layouts, a bigger field, lower doses.
VARIANTS = {
    "layout seed 1": {"seed": 1},
    "layout seed 2": {"seed": 2},
    "1024² field, seed 3": {"seed": 3, "size": 1024},
    "image dose 30 e⁻/px": {"electrons_per_pixel": 30},
    "EDS 5 counts/px": {"counts_per_pixel": 5},
    "both low dose": {"electrons_per_pixel": 30, "counts_per_pixel": 5},
}


def bench_robustness(draws: int, k: int = 3) -> list[dict]:
    """Fused (auto) accuracy of each offline encoder on other demo acquisitions (k=3)."""
    from .datasets import demo

    rows = []
    for label, kwargs in VARIANTS.items():
        ds = demo(**kwargs)
        row: dict = {"variant": label}
        for name in ("fourier", "fourier_oriented", "random_cnn"):
            acc = _draws(ds, name, k, draws, {"eds_weight": "auto"})["acc"]
            row[name] = float(acc.mean())
        rows.append(row)
        print(f"  {label:22s} " + "  ".join(f"{n} {row[n]:.3f}" for n in ("fourier", "fourier_oriented",
                                                                            "random_cnn")))
    return rows


def bench_peer(ds: Dataset, draws: int, ks=(1, 3, 5)) -> list[dict]:
    """scikit-image trainable segmentation (random forest) trained on the same support chips."""
    from functools import partial

    from skimage.feature import multiscale_basic_features
    from skimage.future import fit_segmenter, predict_segmenter
    from sklearn.ensemble import RandomForestClassifier

    grid = ChipGrid(*ds.shape, 32)
    truth, purity = chip_truth(ds.ground_truth, grid)
    t = time.perf_counter()
    feats = partial(multiscale_basic_features, intensity=True, edges=True, texture=True,
                    sigma_min=1, sigma_max=16)(ds.image)
    t_feat = time.perf_counter() - t
    rows = []
    for k in ks:
        acc, f1, times = [], [], []
        for d in range(draws):
            sup = draw_supports(truth, purity, k, np.random.default_rng(1000 + d))
            labels = np.zeros(ds.shape, np.uint8)
            for i, c in sup.items():
                y0, x0, y1, x1 = grid.box(i)
                labels[y0:y1, x0:x1] = c + 1
            t = time.perf_counter()
            clf = RandomForestClassifier(n_estimators=50, n_jobs=-1, max_depth=10, max_samples=0.05,
                                         random_state=d)
            clf = fit_segmenter(labels, feats, clf)
            pix = predict_segmenter(feats, clf) - 1
            times.append(time.perf_counter() - t + t_feat)
            pred, _ = chip_truth(pix, grid)  # majority vote of predicted pixels per chip
            free = np.ones(grid.n_chips, bool)
            free[list(sup)] = False
            acc.append(float(np.mean(pred[free] == truth[free])))
            f1.append(macro_f1(truth[free], pred[free], int(truth.max()) + 1))
        row = {"k": k, "mode": "skimage RF (image)", "acc_mean": float(np.mean(acc)),
               "acc_std": float(np.std(acc)), "f1_mean": float(np.mean(f1)),
               "f1_std": float(np.std(f1)), "seconds": float(np.mean(times))}
        rows.append(row)
        print(f"  k={k} skimage RF   acc {row['acc_mean']:.3f} ± {row['acc_std']:.3f}  "
              f"F1 {row['f1_mean']:.3f} ± {row['f1_std']:.3f}  {row['seconds']:.1f} s per run")
    return rows


def _markdown(results: dict) -> str:
    lines = ["| k | method | chip accuracy | macro-F1 | entropy AUROC (wrong chips) | EDS weight |",
             "|---|---|---|---|---|---|"]
    for r in results["accuracy"] + results["peer"]:
        auc = f"{r['entropy_auroc']:.2f}" if "entropy_auroc" in r else "–"
        w = f"{r['eds_weight']:.2f}" if r.get("eds_weight") is not None and "eds_weight" in r else "–"
        lines.append(f"| {r['k']} | {r['mode']} | {r['acc_mean']:.3f} ± {r['acc_std']:.3f} | "
                     f"{r['f1_mean']:.3f} ± {r['f1_std']:.3f} | {auc} | {w} |")
    lines += ["", "| chips | encode once (s) | click median (ms) | click p95 (ms) | first suggest (ms) "
              "| later suggest (ms) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['n_chips']} | {r['encode_s']:.2f} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} | "
              f"{r.get('suggest_first_ms', float('nan')):.0f} | {r.get('suggest_ms', float('nan')):.0f} |"
              for r in results["latency"]]
    lines += ["", "| offline encoder | image only (k=3) | fused auto (k=3) |", "|---|---|---|"]
    lines += [f"| {r['encoder']} | {r['image_mean']:.3f} ± {r['image_std']:.3f} | "
              f"{r['fused_mean']:.3f} ± {r['fused_std']:.3f} |" for r in results["encoder_choice"]]
    lines += ["", "| acquisition (fused auto, k=3) | fourier | fourier_oriented | random_cnn |",
              "|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['fourier']:.3f} | {r['fourier_oriented']:.3f} | {r['random_cnn']:.3f} |"
              for r in results["robustness"]]
    lines += ["", "| encoder | chip px | chips/s |", "|---|---|---|"]
    lines += [f"| {r['encoder']} | {r['chip_px']} | {r['chips_per_s']:.0f} |" for r in results["encoders"]]
    return "\n".join(lines) + "\n"


def _latency_session(n_chips: int, rng: np.random.Generator) -> Session:
    side = int(np.sqrt(n_chips)) * 32
    img = rng.normal(size=(side, side)).astype(np.float32)
    img[: side // 2] *= 3.0
    energy = np.linspace(0.1, 10.0, 128)
    eds = rng.poisson(0.2, size=(side // 4, side // 4, 128)).astype(np.uint16)
    return Session(Dataset(img, eds=eds, energy_axis=energy, eds_binning=4), chip_size=32)


def bench_many_supports(n_chips: int, supports: list[int], clicks: int) -> list[dict]:
    """Click median with many supports (drag-painting), EDS weight "auto", 4 classes."""
    rows = []
    rng = np.random.default_rng(1)
    s = _latency_session(n_chips, rng)
    s.encode()
    for n_sup in supports:
        s.clear()
        chips = rng.choice(s.n_chips, size=n_sup + clicks, replace=False)
        for k, cls in enumerate("abcd"):
            s.label_many(chips[k : n_sup : 4], cls)  # a drag per class
        times = []
        for j, chip in enumerate(chips[n_sup:]):
            t = time.perf_counter()
            s.label(int(chip), "abcd"[j % 4])
            times.append(time.perf_counter() - t)
        ms = np.array(times) * 1e3
        rows.append({"n_chips": s.n_chips, "supports": n_sup, "median_ms": float(np.median(ms)),
                     "p95_ms": float(np.percentile(ms, 95)), "eds_weight": s.result.eds_weight})
        print(f"  {s.n_chips} chips, {n_sup:4d} supports: click median {rows[-1]['median_ms']:6.1f} ms, "
              f"p95 {rows[-1]['p95_ms']:6.1f} ms (auto EDS weight {s.result.eds_weight:.2f})")
    return rows


def bench_refine(ds: Dataset) -> dict:
    """Seconds to the pixel-resolution maps after a click (off the click path), demo data."""
    s = Session(ds)
    truth, purity = chip_truth(ds.ground_truth, s.grid)
    for i, c in draw_supports(truth, purity, 3, np.random.default_rng(0)).items():
        s.label(i, ds.truth_classes[c])
    t = time.perf_counter()
    _ = s.result.label_map
    first = time.perf_counter() - t
    s.label(int(np.flatnonzero(~s.result.is_support)[0]), ds.truth_classes[0])
    t = time.perf_counter()
    _ = s.result.label_map
    again = time.perf_counter() - t
    print(f"  pixel maps: {first:.1f} s the first time (pixel features included), "
          f"{again:.1f} s after a click")
    return {"first_s": first, "after_click_s": again}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; ``--quick`` for a smoke run with small sizes and few draws."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    from .datasets import demo

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    draws = 2 if args.quick else 10
    results: dict = {"machine": f"{platform.processor() or platform.machine()}, "
                     f"{__import__('os').cpu_count()} cores", "quick": args.quick}
    print("1. Encoding throughput")
    results["encoders"] = bench_encoders(128 if args.quick else 1024, out)
    print("2. Click latency: label() + classify() from cached embeddings")
    sizes = [1024] if args.quick else [1024, 4096, 16384]
    results["latency"] = bench_latency(sizes, 10 if args.quick else 50)
    print("2b. Click latency with many supports (auto EDS weight)")
    results["many_supports"] = bench_many_supports(1024 if args.quick else 4096,
                                                   [20, 100] if args.quick else [20, 100, 200, 400],
                                                   5 if args.quick else 20)
    print(f"3. Accuracy on the demo data ({draws} support draws per cell)")
    ds = demo()
    results["accuracy"] = bench_accuracy(ds, draws)
    print("3b. Offline image encoders (fused auto and image-only, k=3)")
    results["encoder_choice"] = bench_encoder_choice(ds, draws)
    print("3c. Other acquisitions (fused auto, k=3)")
    results["robustness"] = bench_robustness(2 if args.quick else 5)
    print("3d. Pixel-resolution maps (after a click, off its path)")
    results["refine"] = bench_refine(ds)
    print("4. Peer: scikit-image trainable segmentation on the same supports")
    results["peer"] = bench_peer(ds, draws)
    (out / ("engine_quick.json" if args.quick else "engine.json")).write_text(json.dumps(results, indent=1))
    (out / ("engine_quick.md" if args.quick else "engine.md")).write_text(_markdown(results))
    (out / "resnet18_random.pth").unlink(missing_ok=True)
    print(f"written to {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
