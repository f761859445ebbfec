"""Throughput, latency and start-up of kizu's inference, PyTorch vs ONNX runtime, quiet and under load.

One run, so the ratios are fair: for each image size (the seed task's 16×16, 64×64, 256×256 and one
1024×1024 = 1-megapixel image) a default-detector model is trained once (the seed preset too on
16×16), exported to an ONNX bundle, and ``inspect`` (the whole path: preprocessing, tensor part,
numpy post-processing, verdicts) is timed through both runtimes with 2 threads:

* batched images/s (batches of ``BATCH`` images) and
* single-image latency p50/p99 (ms),

first on a quiet machine, then beside ``--load`` (default 2) competing CPU-bound processes (a
line PC shares its cores with camera and PLC software). Start-up: ``kizu --help`` and ``kizu
predict`` of the seed task's 1,000 test files (wall seconds and AUROC), model folder (PyTorch) vs
bundle (onnxruntime). For each default model, also the nearest-neighbour search alone (the
image's patch features against the memory bank, quiet, 2 threads): the images/s that search
allows, an upper bound on the whole path.

    .venv/bin/python bench/throughput.py [--sizes 16 64 256 1024] [--load 2] [--seconds 2] [--out FILE]

Prints a table and writes bench/results/throughput.json. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from _runner import save_results, train
from kizu import load_bundle, synth
from kizu.export.bundle import export_bundle
from kizu.io import save_model, write_image
from kizu.ops.resize import resize_image

#: images per ``inspect`` call in the batched measurement
BATCH = {16: 64, 64: 64, 256: 16, 1024: 1}
#: good images each size's model is trained on (1 MP images: fewer, to keep the run short)
N_TRAIN = {16: 100, 64: 100, 256: 100, 1024: 40}
KIZU = [sys.executable, "-m", "kizu"]


def dataset(size: int, seed: int = 0):
    """Training and test images of one size: the seed task at 16 px, fine parts above (1024 px: the
    256-px parts resized, as ``make_fine`` draws at most 256 px)."""
    if size == 16:
        return synth.make_shapes(100, 500, 500, seed=seed)
    data = synth.make_fine(N_TRAIN[size], 8, 1, size=min(size, 256), seed=seed)
    if size > 256:
        grow = lambda xs: np.stack([resize_image(a[None], (size, size))[0] for a in xs])  # noqa: E731
        data = replace(data, train=grow(data.train), test=grow(data.test), test_masks=None)
    return data


@contextmanager
def competing(n: int):
    """``n`` busy CPU-bound processes for the duration of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def timed(fn, seconds: float, min_runs: int = 3) -> list[float]:
    """Wall seconds of repeated ``fn()`` calls: at least ``min_runs``, until ``seconds`` have passed."""
    fn()  # warm-up
    times, start = [], time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def speed(model, images: np.ndarray, batch: int, seconds: float) -> dict:
    """Batched images/s and single-image latency (ms) of ``model.inspect``."""
    x = images[:batch]
    if len(x) < batch:
        x = np.concatenate([x] * (batch // len(x) + 1))[:batch]
    per_batch = timed(lambda: model.inspect(x), seconds)
    i = iter(range(10**9))
    single = timed(lambda: model.inspect(images[(k := next(i) % len(images)):k + 1]), seconds, min_runs=20)
    ms = np.array(single) * 1000
    return {"images_per_second": batch * len(per_batch) / sum(per_batch), "batch": batch,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "single_runs": len(ms)}


def knn_cost(model, images: np.ndarray, batch: int, seconds: float) -> dict:
    """Queries per image, memory rows and dimensions of a patch-knn model, and the images/s of its
    nearest-neighbour search alone (features computed once, outside the timing)."""
    from kizu.detectors.base import as_image_batch

    det = model.detector
    x = model.preprocessor.apply_all(list(images[:batch]))
    feats, _ = det.features(as_image_batch(x))
    n, d, h, w = feats.shape
    vecs = feats.transpose(0, 2, 3, 1).reshape(-1, d)
    index = det._new_index(det.options.matmul_dtype)
    per_batch = timed(lambda: index.search(vecs, det.options.k), seconds)
    return {"queries_per_image": h * w, "memory_rows": len(index), "dims": d,
            "gflop_per_image": 2.0 * h * w * len(index) * d / 1e9,
            "knn_images_per_second": n * len(per_batch) / sum(per_batch)}


def startup(tmp: Path, model_dir: Path, bundle_dir: Path, data) -> dict:
    """``kizu --help`` and ``kizu predict`` of 1,000 files, wall seconds (median of 3), and AUROC."""
    files = tmp / "files"
    for i, img in enumerate(data.test):
        write_image(files / f"{i:04d}.png", img)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))

    def wall(args) -> float:
        t0 = time.perf_counter()
        subprocess.run(KIZU + [str(a) for a in args], check=True, capture_output=True, env=env)
        return time.perf_counter() - t0

    out = {"help_s": statistics.median(wall(["--help"]) for _ in range(3))}
    for name, source in (("torch", model_dir), ("onnx", bundle_dir)):
        csv = tmp / f"{name}.csv"
        out[f"predict_1000_{name}_s"] = statistics.median(wall(["predict", source, files, "--out", csv])
                                                          for _ in range(3))
        rows = [line.split(",") for line in csv.read_text().splitlines()[1:]]
        scores = {Path(r[0]).name: float(r[1]) for r in rows}
        s = np.array([scores[f"{i:04d}.png"] for i in range(len(data.test))])
        out[f"predict_1000_{name}_auroc"] = float(roc_auc_score(data.test_labels, s))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 256, 1024], choices=sorted(BATCH))
    ap.add_argument("--load", type=int, default=2, help="competing CPU-bound processes in the loaded run")
    ap.add_argument("--seconds", type=float, default=2.0, help="time spent on each measurement")
    ap.add_argument("--no-startup", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "throughput.json")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    rows, result = [], {"cpus": os.cpu_count(), "threads": 2, "load_processes": args.load}
    head = (f"{'size':>5} {'model':<8} {'runtime':<7} {'load':<5} {'img/s':>9} {'batch':>5} {'p50 ms':>8} "
            f"{'p99 ms':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = []
        for size in args.sizes:
            data = dataset(size)
            presets = [("default", None), ("seed", "autoencoder")] if size == 16 else [("default", None)]
            for label, detector in presets:
                options = {"preset": "seed"} if label == "seed" else {}
                model = train(data.train, detector, options, seed=0)
                folder = tmp / f"{label}-{size}"
                save_model(model, folder / "model")
                export_bundle(model, folder / "bundle")
                runtimes = {"torch": model, "onnx": load_bundle(folder / "bundle", threads=2)}
                images = np.asarray(data.test, np.float32)[:, None]
                models.append((size, label, runtimes, images))
                if label == "default":
                    cost = knn_cost(model, images, BATCH[size], args.seconds)
                    result.setdefault("knn", []).append({"size": size, **cost})
                    print(f"{size} px nearest-neighbour search: {cost}", flush=True)
                if size == 16 and label == "default" and not args.no_startup:
                    result["startup"] = startup(tmp, folder / "model", folder / "bundle", data)
                    print("start-up:", {k: round(v, 4) for k, v in result["startup"].items()}, flush=True)
        print(head + "\n" + "-" * len(head), flush=True)
        for load in (0, args.load):
            with competing(load):
                for size, label, runtimes, images in models:
                    for runtime, model in runtimes.items():
                        r = speed(model, images, BATCH[size], args.seconds)
                        r.update(size=size, model=label, runtime=runtime, load=load)
                        rows.append(r)
                        print(f"{size:>5} {label:<8} {runtime:<7} {load:<5} {r['images_per_second']:>9.1f} "
                              f"{r['batch']:>5} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}", flush=True)
    for r in rows:
        if r["load"]:
            quiet = next(q for q in rows if not q["load"] and all(q[k] == r[k] for k in ("size", "model", "runtime")))
            r["share_of_quiet"] = r["images_per_second"] / quiet["images_per_second"]
    result["rows"] = rows
    print("\nunder load, share of the quiet throughput: " + ", ".join(
        f"{r['size']}/{r['model']}/{r['runtime']} {r['share_of_quiet']:.2f}" for r in rows if r["load"]))
    save_results(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
