"""Scale-out benchmark: local `kizu predict` against `kizu predict --engine ray` with 1 and 2 workers.

    .venv/bin/python bench/ray_scale.py [--images 20000] [--size 64] [--workers 1 2] [--batch-size 64]
                                        [--small 256] [--keep DIR]

Writes IMAGES PNG files (the test images of `kizu.synth.make_fine(size=SIZE)`, repeated) into a
temporary folder and trains a quick model on the good training images (patch-knn on pixel patches,
inspected at a 32 px working size: a few ms per image on one core, so the engine's own cost per
image is not hidden behind a slow model). Then runs, as a user would (a subprocess each, start-up
included):

* ``local``: `kizu predict` with PyTorch's default threads (one per core);
* ``local-1-thread``: the same with ``OMP_NUM_THREADS=1`` (what one Ray worker gets);
* ``ray-N``: `kizu predict --engine ray --workers N` (a local Ray instance started by the command).

Each is run on SMALL images and on all of them: the per-image cost is the difference of the two
times over the difference of the counts (start-up cancels out), the start-up is what is left of the
small run. `os.getloadavg()` is recorded with every timing, and before and after the runs how many
cores the machine offers (a CPU-bound loop in one process against one per core): other processes
on the machine slow every number down, and workers add throughput only while free cores remain. Ray's results are checked against local `kizu predict`'s (scores to 1e-6, same
verdicts). Writes bench/results/ray_scale.json and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kizu import TrainConfig, fit_model, load_model, save_model  # noqa: E402
from kizu.io import atomic_write_text, read_image, write_image  # noqa: E402
from kizu.synth import make_fine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "ray_scale.json"
#: the benchmark's model: patch-knn on pixel patches at a 32 px working size
MODEL = {"detector": "patch-knn", "options": {"preset": "pixels", "max_memory": 1000}, "resize": (32, 32),
         "alpha": 0.1}


# -- data and model ------------------------------------------------------------------------------------
def prepare(root: Path, n_images: int, size: int, seed: int) -> tuple[Path, list[Path]]:
    """The model folder and IMAGES test files (make_fine's test images, repeated, in 100 folders)."""
    data = make_fine(60, 100, 25, size=size, seed=seed)
    t0 = time.perf_counter()
    model = fit_model(data.train, TrainConfig(**MODEL, seed=seed), device="cpu")
    print(f"trained {model} in {time.perf_counter() - t0:.1f} s", flush=True)
    save_model(model, root / "model")
    files = []
    for i in range(n_images):
        path = root / "images" / f"{i % 100:02d}" / f"{i:06d}.png"
        write_image(path, data.test[i % len(data.test)])
        files.append(path)
    print(f"wrote {n_images} {size}x{size} images", flush=True)
    return root / "model", files


def model_cost(model_dir: Path, files: list[Path], n: int = 256) -> float:
    """ms per image of `model.inspect` alone (images already decoded, one thread, batches of 64)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = load_model(model_dir, device="cpu")
        images = [read_image(p) for p in files[:n]]
        model.inspect(images[:8])
        t0 = time.perf_counter()
        for start in range(0, len(images), 64):
            model.inspect(images[start:start + 64])
        return (time.perf_counter() - t0) / len(images) * 1000
    finally:
        torch.set_num_threads(threads)


# -- runs ------------------------------------------------------------------------------------------------
def command(model_dir: Path, inputs: Path, out: Path, engine_args: list[str], batch_size: int) -> list[str]:
    return [sys.executable, "-m", "kizu", "predict", str(model_dir), str(inputs), "--out", str(out),
            "--batch-size", str(batch_size), *engine_args]


def timed(cmd: list[str], env: dict[str, str]) -> dict:
    """Run a command; its wall time and the load average before and after."""
    before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return {"seconds": seconds, "loadavg_before": list(before), "loadavg_after": list(os.getloadavg())}


def small_folder(folder: Path, files: list[Path]) -> Path:
    """A folder with copies of ``files`` (the small runs' input)."""
    small = folder / "small"
    small.mkdir(parents=True, exist_ok=True)
    for path in files:
        (small / path.name).write_bytes(path.read_bytes())
    return small


def run_config(name: str, engine_args: list[str], env: dict[str, str], root: Path, model_dir: Path,
               small: Path, n_small: int, n_images: int, batch_size: int) -> dict:
    """The small run and the full run of one configuration, and what follows from them."""
    print(f"{name}: {n_small} images ...", flush=True)
    part = timed(command(model_dir, small, root / f"{name}-small.csv", engine_args, batch_size), env)
    print(f"{name}: {n_images} images ...", flush=True)
    full = timed(command(model_dir, root / "images", root / f"{name}.csv", engine_args, batch_size), env)
    per_image = (full["seconds"] - part["seconds"]) / (n_images - n_small)
    return {"name": name, "args": engine_args, "small": {"images": n_small, **part},
            "full": {"images": n_images, **full},
            "images_per_s": n_images / full["seconds"], "marginal_ms_per_image": per_image * 1000,
            "marginal_images_per_s": 1 / per_image if per_image > 0 else None,
            "startup_s": part["seconds"] - n_small * per_image}


def parity(a: Path, b: Path) -> dict:
    """Largest score difference and whether every verdict is equal, between two results files."""
    ra = {r["path"]: r for r in csv.DictReader(a.open())}
    rb = {r["path"]: r for r in csv.DictReader(b.open())}
    same = ra.keys() == rb.keys()
    diff = max((abs(float(ra[k]["score"]) - float(rb[k]["score"])) for k in ra if k in rb), default=float("nan"))
    verdicts = same and all(ra[k]["defective"] == rb[k]["defective"] for k in ra)
    return {"same_files": same, "max_score_difference": diff, "same_verdicts": verdicts}


SPIN = "import time; t = time.perf_counter(); s = 0\nfor i in range(20_000_000): s += i\nprint(time.perf_counter() - t)"


def cores_free(n: int) -> dict:
    """How many cores this machine offers now: a pure-Python loop timed alone and in ``n`` processes
    at once; ``n × alone / together`` is about n on an idle machine, about 1 when other work
    already takes the cores."""
    def spin(k: int) -> float:
        procs = [subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True) for _ in range(k)]
        return max(float(p.communicate()[0]) for p in procs)

    alone, together = spin(1), spin(n)
    return {"processes": n, "alone_s": alone, "together_s": together, "cores_free": n * alone / together,
            "loadavg": list(os.getloadavg())}


# -- report ---------------------------------------------------------------------------------------------
def table(runs: list[dict]) -> str:
    base = next(r for r in runs if r["name"] == "local")["images_per_s"]
    lines = [f"{'run':<16}{'images/s':>10}{'vs local':>10}{'ms/image':>10}{'start-up s':>12}{'load avg':>10}"]
    for r in runs:
        lines.append(f"{r['name']:<16}{r['images_per_s']:>10.1f}{r['images_per_s'] / base:>9.2f}x"
                     f"{r['marginal_ms_per_image']:>10.2f}{r['startup_s']:>12.1f}"
                     f"{np.mean([r['full']['loadavg_before'][0], r['full']['loadavg_after'][0]]):>10.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--small", type=int, default=256, help="images of the start-up run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if not 0 < args.small < args.images:
        ap.error("--small must be between 0 and --images")
    with tempfile.TemporaryDirectory(prefix="kizu-ray-scale-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        report = benchmark(root, args)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(table(report["runs"]))
    free = report["cores_free"]
    print(f"cores free (a CPU-bound loop in {free['before']['processes']} processes against 1): "
          f"{free['before']['cores_free']:.2f} before the runs, {free['after']['cores_free']:.2f} after")
    print(f"parity: {report['parity']}")
    print(f"→ {args.out}")


def benchmark(root: Path, args) -> dict:
    model_dir, files = prepare(root, args.images, args.size, args.seed)
    cost = model_cost(model_dir, files)
    small = small_folder(root, files[:args.small])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    configs = [("local", [], env)]
    configs += [(f"ray-{w}", ["--engine", "ray", "--workers", str(w)], env) for w in sorted(args.workers, reverse=True)]
    configs.append(("local-1-thread", [], {**env, "OMP_NUM_THREADS": "1"}))
    before = cores_free(os.cpu_count() or 1)
    print(f"cores free before the runs: {before['cores_free']:.2f} of {before['processes']}", flush=True)
    runs = [run_config(name, eargs, cenv, root, model_dir, small, args.small, args.images, args.batch_size)
            for name, eargs, cenv in configs]
    after = cores_free(os.cpu_count() or 1)
    return {"images": args.images, "size": args.size, "batch_size": args.batch_size, "model": MODEL,
            "model_ms_per_image_1_thread": cost,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                        "ray": _version("ray"), "torch": _version("torch")},
            "cores_free": {"before": before, "after": after}, "runs": runs, "parity": {r["name"]: parity(root / "local.csv", root / f"{r['name']}.csv")
                                     for r in runs if r["name"].startswith("ray-")}}


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
