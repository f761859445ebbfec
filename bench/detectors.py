"""Detectors benchmark: each kizu detector and PyOD / scikit-learn peers on each built-in task.

    .venv/bin/pip install -e '.[bench]'            # PyOD for the peers
    .venv/bin/python bench/detectors.py [--sizes 100 1000] [--seeds 0] [--no-peers] [--only NAME ...]

Prints a table; writes bench/results/detectors.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _runner import KIZU_DETECTORS, default_tasks, run_benchmark, save_results, seed_arg, size_arg  # noqa: E402  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=size_arg, nargs="+", default=[100, 1000])
    ap.add_argument("--seeds", type=seed_arg, nargs="+", default=[0])
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--no-fine", action="store_true")
    ap.add_argument("--only", nargs="+", help="detector labels to run (default: all)")
    ap.add_argument("--tasks", nargs="+", help="task names to run (default: all)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "detectors.json")
    args = ap.parse_args(argv)
    tasks = [t for t in default_tasks(args.sizes, fine=not args.no_fine) if not args.tasks or t.name in args.tasks]
    dets = [d for d in KIZU_DETECTORS if not args.only or d[0] in args.only]
    rows = run_benchmark(tasks, dets, seeds=args.seeds, peers=not args.no_peers)
    save_results(args.out, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
