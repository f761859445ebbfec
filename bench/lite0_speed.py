"""Speed of patch-knn + lite0 on 64×64 grey images: training time on 100 images and single-image
inference latency (p50/p90 over repeated `InspectionModel.inspect` calls, the path every entry point uses).

    .venv/bin/python bench/lite0_speed.py [--runs 100] [--threads 2] [-O key=value ...]

Prints a table and writes bench/results/lite0_speed.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _runner import save_results, time_inspect, train  # noqa: E402
from kizu.cli.common import parse_options  # noqa: E402
from kizu.synth.fine import make_fine  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--detector", default="patch-knn")
    ap.add_argument("-O", "--option", action="append", default=[])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lite0_speed.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    options = parse_options(args.option)
    d = make_fine(100, 20, 5, size=64, seed=0, mode="texture")
    t0 = time.perf_counter()
    model = train(d.train, args.detector, dict(options), seed=0)
    train_s = time.perf_counter() - t0
    lat_ms, batch_ips = time_inspect(model, d.test, args.runs)
    res = {"detector": args.detector, "options": options, "threads": args.threads, "train_seconds_100": train_s,
           "latency_ms_p50": float(np.percentile(lat_ms, 50)), "latency_ms_p90": float(np.percentile(lat_ms, 90)),
           "batch_images_per_second": batch_ips, "memory_size": int(model.detector.state_dict().get("memory", np.zeros((0,))).shape[0])}
    print(f"{'detector':<28} {'train 100 (s)':>13} {'p50 ms':>7} {'p90 ms':>7} {'batch img/s':>11}")
    print(f"{args.detector + ' ' + json.dumps(options):<28} {train_s:>13.1f} {res['latency_ms_p50']:>7.1f} "
          f"{res['latency_ms_p90']:>7.1f} {batch_ips:>11.1f}")
    save_results(args.out, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
