"""Export parity on every benchmark task: the exported bundle (onnxruntime) against PyTorch.

Per task and detector: train (100 good images, seed 0 unless ``--seeds``), ``export_bundle`` (which
itself refuses a bundle that disagrees on the stored check images), load the bundle as a line PC
would (``kizu.io.bundle.load_bundle``) and score every test image — good and defective — through
both runtimes. Reports the largest score difference as a share of the calibration scores' range
(target <= 1e-4), how many verdicts differ (target 0), the bundle's size and both AUROCs.

    .venv/bin/python bench/export_parity.py [--seeds 0] [--detectors default all] [--tasks NAME ...]

Prints a table and writes bench/results/export_parity.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _runner import KIZU_DETECTORS, default_tasks, save_results, seed_arg, train  # noqa: E402
from kizu.export.bundle import TOLERANCE, compare, export_bundle  # noqa: E402
from kizu.io.bundle import load_bundle  # noqa: E402
from kizu.model.inspection import as_image_list  # noqa: E402

DEFAULT = [("patch-knn (default)", None, {})]


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def run_one(task, label: str, detector: str | None, options: dict, seed: int) -> dict:
    data = task.make(seed)
    model = train(data.train, detector, dict(options), seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bundle"
        t0 = time.perf_counter()
        export_bundle(model, out)
        export_s = time.perf_counter() - t0
        exported = load_bundle(out, threads=2)
        x = model.preprocessor.apply_all(as_image_list(data.test))
        parity = compare(model, exported, x)
        labels = np.asarray(data.test_labels)
        aurocs = [float(roc_auc_score(labels, m.score(x).scores)) for m in (model, exported)]
        return {"task": task.name, "detector": label, "seed": seed, "n_images": parity.n_images,
                "max_difference": parity.max_difference, "relative": parity.relative,
                "verdicts_differ": parity.verdicts_differ, "ok": parity.ok, "bundle_mb": folder_mb(out),
                "export_seconds": export_s, "auroc_torch": aurocs[0], "auroc_onnx": aurocs[1]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=seed_arg, nargs="+", default=[0])
    ap.add_argument("--detectors", choices=["default", "all"], default="default",
                    help="default: kizu's default detector; all: every benchmark configuration")
    ap.add_argument("--tasks", nargs="+", help="task names (default: every benchmark task with 100 good images)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "export_parity.json")
    args = ap.parse_args(argv)
    known = default_tasks(sizes=(100,))
    unknown = set(args.tasks or ()) - {t.name for t in known}
    if unknown:
        ap.error(f"unknown task(s) {', '.join(sorted(unknown))}; choose from {', '.join(t.name for t in known)}")
    tasks = [t for t in known if not args.tasks or t.name in args.tasks]
    detectors = DEFAULT if args.detectors == "default" else [(lbl, n, o) for lbl, n, o in KIZU_DETECTORS]
    head = (f"{'task':<22} {'detector':<20} {'seed':>4} {'max |diff| / range':>18} {'verdicts differ':>15} "
            f"{'MB':>5} {'AUROC torch':>11} {'AUROC onnx':>10}")
    print(f"export parity (tolerance {TOLERANCE:g} of the calibration score range)\n{head}\n" + "-" * len(head))
    rows = []
    for task in tasks:
        for label, name, options in detectors:
            for seed in args.seeds:
                r = run_one(task, label, name, options, seed)
                rows.append(r)
                print(f"{r['task']:<22} {label:<20} {seed:>4} {r['relative']:>18.2e} {r['verdicts_differ']:>15d} "
                      f"{r['bundle_mb']:>5.1f} {r['auroc_torch']:>11.4f} {r['auroc_onnx']:>10.4f}", flush=True)
    worst = max(r["relative"] for r in rows)
    flips = sum(r["verdicts_differ"] for r in rows)
    print(f"\nworst {worst:.2e} of the range, {flips} verdicts differ, largest bundle "
          f"{max(r['bundle_mb'] for r in rows):.1f} MB")
    save_results(args.out, {"tolerance": TOLERANCE, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
