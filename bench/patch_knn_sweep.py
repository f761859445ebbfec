"""Option sweep for ``patch-knn``: image AUROC (overall and per defect type) of option sets × tasks ×
seeds, and several image-score rules on the same maps; no calibration (AUROC needs none).

    .venv/bin/python bench/patch_knn_sweep.py [--configs NAME ...] [--tasks NAME ...] [--seeds 0 1]
                                              [--workers N] [--out FILE]

Jobs run in parallel processes with one torch thread each (``--workers``, default: CPU count).
Prints one line per job and a summary table (mean over seeds, default score rule); writes JSON
(default bench/results/patch_knn_sweep.json). The option sets are ``CONFIGS`` below; each row also
reports the AUROC of other score rules (max of the map smoothed with sigma 2 / 4, top-1 % mean,
mean) so the reducer can be chosen from the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _runner import seed_arg  # noqa: E402

#: the sweep starts from the bare detector (preset "pixels") with the Lite0 network
BASE = {"preset": "pixels", "backbone": "lite0"}
CONFIGS: dict[str, dict] = {
    "default": {},
    "whiten": {"whiten": True},
    "full-dim": {"feature_dim": None},
    "full-dim-whiten": {"feature_dim": None, "whiten": True},
    "k3": {"k": 3},
    "up3.5": {"max_upscale": 3.5},
    "mem10k": {"max_memory": 10000, "max_candidates": 100000},
    "st123": {"stages": [1, 2, 3], "feature_dim": 48},
    "st123-whiten": {"stages": [1, 2, 3], "feature_dim": 48, "whiten": True},
    "st012": {"stages": [0, 1, 2], "max_grid": 32},
    "in128x8": {"input_size": 128, "max_upscale": 8.0},
    "in128x8-whiten": {"input_size": 128, "max_upscale": 8.0, "whiten": True},
    "probe": {"max_upscale": 3.5, "feature_dim": None, "max_memory": 10000, "max_candidates": 100000},
    "no-edge": {"edge_cells": 0},
    "whiten-k3": {"whiten": True, "k": 3},
    "whiten-up3.5": {"whiten": True, "max_upscale": 3.5},
    "whiten-mem10k": {"whiten": True, "max_memory": 10000, "max_candidates": 100000},
    "whiten-no-edge": {"whiten": True, "edge_cells": 0},
    "whiten-dim16": {"whiten": True, "feature_dim": 16},
    "b1-full": {"feature_dim": None, "brightness": 1.0},
    "b2-full": {"feature_dim": None, "brightness": 2.0},
    "b4-full": {"feature_dim": None, "brightness": 4.0},
    "b2": {"brightness": 2.0},
    "b2-dim48": {"feature_dim": 48, "brightness": 2.0},
    "b2-full-k3": {"feature_dim": None, "brightness": 2.0, "k": 3},
    "b2-k3": {"brightness": 2.0, "k": 3},
    "full-dim-k3": {"feature_dim": None, "k": 3},
    "b2-full-up3": {"feature_dim": None, "brightness": 2.0, "max_upscale": 3.0},
}
RULES = {"max-s1": ("max", 1.0), "max-s2": ("max", 2.0), "max-s4": ("max", 4.0), "topk-s1": ("topk", 1.0),
         "mean": ("mean", 0.0)}


def _tasks():
    from kizu.synth import make_shapes
    from kizu.synth.fine import make_fine
    from kizu.synth.photo import PHOTOS, make_photo_textures

    return {
        "shapes-seed": lambda s: make_shapes(100, 200, 200, seed=s, jitter="seed"),
        "shapes-intended": lambda s: make_shapes(100, 200, 200, seed=s, jitter="intended"),
        "fine-parts": lambda s: make_fine(100, 100, 25, size=64, seed=s, mode="parts"),
        "texture-regular": lambda s: make_fine(100, 100, 25, size=64, seed=s, mode="texture", texture="regular"),
        "texture-stochastic": lambda s: make_fine(100, 100, 25, size=64, seed=s, mode="texture",
                                                  texture="stochastic"),
        **{f"photo-{p}": (lambda s, p=p: make_photo_textures(p, 100, 50, 25, seed=s)) for p in PHOTOS},
    }


@lru_cache(maxsize=4)
def _data(task: str, seed: int):
    return _tasks()[task](seed)


def run_job(job: tuple[str, str, int]) -> dict:
    import torch

    torch.set_num_threads(1)
    from kizu.detectors import create
    from kizu.scoring.rule import reduce_maps

    config, task, seed = job
    d = _data(task, seed)
    train = d.train[:, None] if d.train.ndim == 3 else d.train
    test = d.test[:, None] if d.test.ndim == 3 else d.test
    det = create("patch-knn", **{**BASE, **CONFIGS[config]})
    t0 = time.perf_counter()
    det.fit(train, seed=seed)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    maps = det.anomaly_maps(test)
    ms_per_image = 1000 * (time.perf_counter() - t0) / len(test)
    types = np.array(d.test_types)
    good = types == "good"
    row = {"config": config, "task": task, "seed": seed, "fit_s": fit_s, "ms_per_image": ms_per_image, "rules": {}}
    for rule, (reducer, sigma) in RULES.items():
        s = reduce_maps(maps, reducer, sigma=sigma)
        per = {t: float(roc_auc_score(np.r_[np.zeros(good.sum()), np.ones((types == t).sum())],
                                      np.r_[s[good], s[types == t]])) for t in sorted(set(types) - {"good"})}
        row["rules"][rule] = {"auroc": float(roc_auc_score(~good, s)), "per_type": per}
    return row


def main(argv=None) -> int:
    from _runner import save_results

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS))
    ap.add_argument("--tasks", nargs="+", default=list(_tasks()))
    ap.add_argument("--seeds", type=seed_arg, nargs="+", default=[0, 1])
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "patch_knn_sweep.json")
    args = ap.parse_args(argv)
    jobs = [(c, t, s) for t in args.tasks for s in args.seeds for c in args.configs]
    rows = []
    if args.workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.workers) as pool:
            for row in pool.imap_unordered(run_job, jobs):
                rows.append(row)
                _print_row(row)
    else:
        for job in jobs:
            rows.append(run_job(job))
            _print_row(rows[-1])
    _print_summary(rows, args.configs, args.tasks)
    save_results(args.out, {"base": BASE, "configs": {c: CONFIGS[c] for c in args.configs}, "rows": rows})
    return 0


def _print_row(row: dict) -> None:
    r = row["rules"]
    print(f"{row['config']:<18} {row['task']:<20} {row['seed']:>2} "
          + " ".join(f"{k}={v['auroc']:.3f}" for k, v in r.items())
          + f"  fit {row['fit_s']:.1f}s {row['ms_per_image']:.1f}ms/img  "
          + " ".join(f"{t}={a:.2f}" for t, a in r["max-s1"]["per_type"].items()), flush=True)


def _print_summary(rows: list[dict], configs: list[str], tasks: list[str]) -> None:
    print("\nimage AUROC, mean over seeds, default rule (max of the map smoothed with sigma 1)")
    print(f"{'config':<18}" + "".join(f"{t[:12]:>13}" for t in tasks))
    for c in configs:
        cells = []
        for t in tasks:
            a = [r["rules"]["max-s1"]["auroc"] for r in rows if r["config"] == c and r["task"] == t]
            cells.append(f"{np.mean(a):>13.4f}" if a else f"{'-':>13}")
        print(f"{c:<18}" + "".join(cells))


if __name__ == "__main__":
    raise SystemExit(main())
