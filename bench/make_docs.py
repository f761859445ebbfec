"""Write docs/benchmarks.md from the JSON files in bench/results/, so no number in it is typed by hand.

    .venv/bin/python bench/make_docs.py [--check]

Each section names the script and the result file it shows; ``--check`` exits 1 if the file on
disk differs from what the results give (tests run it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "docs" / "benchmarks.md"

DEFAULT = "patch-knn (lite0)"
DETECTORS = ["autoencoder (seed)", "autoencoder", "mt", "patch-gaussian", "patch-knn (pixels)", DEFAULT]
PEERS = ["pyod PCA", "pyod KNN", "pyod IForest", "pyod MCD", "pyod AutoEncoder", "sklearn LedoitWolf"]
TASKS = [("shapes-seed-n100", "shapes, seed jitter"), ("shapes-intended-n100", "shapes, intended jitter"),
         ("shapes-seed-n1000", "shapes, seed jitter, n = 1000"),
         ("shapes-intended-n1000", "shapes, intended jitter, n = 1000"),
         ("fine-parts-n100", "fine parts"), ("fine-texture-n100", "fine texture, mixed"),
         ("photo-brick-n100", "photo brick"), ("photo-gravel-n100", "photo gravel"),
         ("photo-grass-n100", "photo grass")]
#: detector-benchmark files, later ones overriding earlier ones for the same (task, detector, seed)
DETECTOR_FILES = ["detectors_part3.json", "detectors_shapes.json", "detectors_photo.json",
                  "detectors_peers_seeds12.json", "detectors_default_fine.json", "detectors_shapes_default.json"]


def load(name: str):
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def rows_of(data) -> list[dict]:
    if data is None:
        return []
    return data if isinstance(data, list) else data.get("rows", [])


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def num(x, digits: int = 4) -> str:
    return "–" if x is None or x != x else f"{x:.{digits}f}"


# -- sections ----------------------------------------------------------------------------------
def detector_rows() -> dict[tuple[str, str, int], dict]:
    """(task, detector, seed) → row, from the detector benchmark and fine_defects.json (the default's
    fine and photo tasks)."""
    out: dict[tuple[str, str, int], dict] = {}
    for name in DETECTOR_FILES:
        for r in rows_of(load(name)):
            if "error" not in r:
                out[(r["task"], r["detector"], r["seed"])] = r
    for r in rows_of(load("fine_defects.json")):
        task = {"fine-parts": "fine-parts-n100", "fine-texture": "fine-texture-n100"}.get(r["task"], f"{r['task']}-n100")
        out[(task, DEFAULT, r["seed"])] = {**r, "far": r["far"]}
    return out


def section_detectors() -> str:
    rows = detector_rows()
    body = []
    for task, label in TASKS:
        cells = []
        for det in DETECTORS:
            r = rows.get((task, det, 0))
            if r is None:
                cells.append("–")
                continue
            pixel = f" ({num(r['pixel_auroc'], 3)})" if r.get("pixel_auroc") is not None else ""
            cells.append(num(r["image_auroc"], 4 if task.startswith("shapes") else 3) + pixel)
        peers = [(rows[(task, p, 0)]["image_auroc"], p) for p in PEERS if (task, p, 0) in rows]
        best = max(peers) if peers else None
        cells.append("–" if best is None else f"{num(best[0], 4 if task.startswith('shapes') else 3)} ({best[1]})")
        body.append([label, *cells])
    return ("## Detectors on the built-in tasks\n\nImage AUROC (pixel AUROC in brackets where the task has masks), "
            "seed 0, 100 good training images unless the row says n = 1000; shapes: 500 good and 500 defective "
            "test images. `bench/detectors.py` (`detectors_*.json`) and, for the default on the fine and photo "
            "tasks, `bench/fine_defects.py` (`fine_defects.json`). Peers (PyOD, scikit-learn) see flattened "
            "pixels and their own training-score threshold.\n\n"
            + table(["task", *DETECTORS, "best peer"], body))


def section_default_by_seed() -> str:
    rows = detector_rows()
    body = []
    for task, label in TASKS:
        cells = []
        for seed in (0, 1, 2):
            r = rows.get((task, DEFAULT, seed))
            cells.append("–" if r is None else f"{num(r['image_auroc'], 4 if task.startswith('shapes') else 3)} "
                                                 f"({pct(r.get('far'))})")
        body.append([label, *cells])
    return ("## The default detector, seeds 0 / 1 / 2\n\nImage AUROC and, in brackets, the false-alarm rate at "
            "alpha = 5 % on the task's good test images (50–500 of them, so one run's rate scatters by about "
            "±3 points); `bench/detectors.py` (`detectors_shapes_default.json`) and `bench/fine_defects.py` "
            "(`fine_defects.json`).\n\n" + table(["task", "seed 0", "seed 1", "seed 2"], body))


def section_fine_types() -> str:
    body = []
    for name in ("fine_defects.json", "fine_defects_parts_seeds3to7.json"):
        for r in rows_of(load(name)):
            types = " ".join(f"{k}={v:.3f}" for k, v in sorted(r.get("per_type_auroc", {}).items()))
            body.append([r["task"], r["seed"], num(r["image_auroc"], 3), num(r.get("pixel_auroc"), 3),
                         num(r.get("aupro"), 3), pct(r.get("far")), types])
    return ("## Fine defects per type\n\n`bench/fine_defects.py --seeds 0 1 2` (`fine_defects.json`; fine parts "
            "seeds 3–7: `fine_defects_parts_seeds3to7.json`), the default detector, 100 good training images.\n\n"
            + table(["task", "seed", "AUROC", "pixel AUROC", "AUPRO", "FAR", "per type"], body))


def section_false_alarms() -> str:
    body = []
    for name in ("false_alarms.json", "false_alarms_seeds4to7.json"):
        data = load(name)
        by_task: dict[str, list] = {}
        for r in rows_of(data):
            if r.get("training_draw", "training images") == "training images":
                by_task.setdefault(r["task"], []).append(r)
        for task, rs in by_task.items():
            rates = [r["far"] for r in rs]
            body.append([f"`{name}`", task, " / ".join(str(r["seed"]) for r in rs),
                         " / ".join(f"{100 * f:.1f}" for f in rates) + " %", pct(sum(rates) / len(rates))])
    return ("## False alarms at alpha = 5 %\n\n`bench/false_alarms.py`: the default detector trained on 100 good "
            "images per seed, its false-alarm rate on 600 unseen good images. One run's rate is Beta-distributed "
            "around alpha (sd about 2 points with 100 calibration images); the mean over seeds is what the "
            "guarantee is about.\n\n" + table(["file", "task", "seeds", "rate per seed", "mean"], body))


def section_guarantees() -> str:
    data = load("threshold_guarantees.json")
    if data is None:
        return ""
    body = []
    for jitter, rules in data["tasks"].items():
        for rule, r in rules.items():
            body.append([jitter, rule, pct(r["mean_far"]), f"{100 * r['sd_far']:.1f}",
                         pct(r["share_far_within_3pts"]), pct(r["max_far"])])
    return ("## Threshold rules over random splits\n\n`bench/threshold_guarantees.py`: the seed's shapes, 100 good "
            "images train and calibrate, 1000 unseen good images count false alarms, many random splits, "
            f"alpha = {data['alpha']:g}.\n\n"
            + table(["shapes jitter", "rule", "mean FAR", "sd (points)", "splits within 5 ± 3 %", "worst split"],
                    body))


def section_seed_parity() -> str:
    data = load("seed_parity.json")
    if data is None:
        return ""
    body = [[r["config"], r["n_train"], r["jitter"], f"{num(r['auroc_mean'])} ({num(r['auroc_min'])}–"
             f"{num(r['auroc_max'])})", f"{pct(r['far_mean'])} ({pct(r['far_min'])}–{pct(r['far_max'])})"]
            for r in data["summary"]]
    return ("## The seed's autoencoder against kizu's\n\n`bench/seed_parity.py`: the seed's Keras network as "
            "written (threshold: 95th percentile of its training errors) and kizu's default autoencoder "
            "(conformal threshold), 3 seeds; false alarms on 2000 unseen good images.\n\n"
            + table(["configuration", "n train", "jitter", "image AUROC mean (range)", "false alarms mean (range)"],
                    body))


def section_template_gate() -> str:
    data = load("template_gate.json")
    if data is None:
        return ""
    by_task: dict[str, list] = {}
    for r in data["rows"]:
        by_task.setdefault(r["task"], []).append(r)
    body = [[t, " / ".join(f"{r['median_r2']:.4f}" for r in rs), "on" if all(r["on"] for r in rs) else "off"]
            for t, rs in by_task.items()]
    return ("## When the golden template turns itself on\n\n`bench/template_gate.py`: median R² of held-out good "
            f"images explained by the registered mean image, seeds 0–2; on from R² ≥ {data['min_explained']}.\n\n"
            + table(["task", "median R² per seed", "template"], body))


def section_visibility() -> str:
    data = load("stain_visibility.json")
    if data is None:
        return ""
    body = [[r["task"], r["defect"], r["filter"], " / ".join(f"{a:.3f}" for a in r["auroc"])] for r in data["rows"]]
    return ("## How visible the hardest defects are at all\n\n`bench/stain_visibility.py`: filters that know the "
            "defect's shape (a whitened matched filter for stains, a darkest-pixel filter for spots) and look at "
            "the image alone; their AUROC bounds what any detector can reach on these surfaces.\n\n"
            + table(["task", "defect", "filter", "AUROC per seed"], body))


def section_speed() -> str:
    parts = []
    lite = load("lite0_speed.json")
    if lite is not None:
        parts.append(table(["threads", "train 100 images (s)", "p50 latency (ms)", "p90 latency (ms)",
                            "batched images/s", "memory vectors"],
                           [[lite["threads"], f"{lite['train_seconds_100']:.1f}", f"{lite['latency_ms_p50']:.1f}",
                             f"{lite['latency_ms_p90']:.1f}", f"{lite['batch_images_per_second']:.0f}",
                             lite["memory_size"]]]))
    dev = load("device_speed_h200.json")
    if dev is not None:
        parts.append(table(["task", "device", "train (s)", "p50 (ms)", "images/s", "AUROC"],
                           [[r["task"], r["device"], f"{r['train_seconds']:.1f}", f"{r['latency_ms_p50']:.2f}",
                             f"{r['batch_images_per_second']:.0f}", num(r["image_auroc"])] for r in dev["rows"]]))
    if not parts:
        return ""
    return ("## Speed\n\n`bench/lite0_speed.py` (`lite0_speed.json`): the default detector on 64 px images, 2 CPU "
            "threads. `bench/device_speed.py` (`device_speed_h200.json`): CPU against an H200 GPU.\n\n"
            + "\n\n".join(parts))


def section_real_data() -> str:
    rows = [r for r in rows_of(load("real_data.json")) if "error" not in r]
    if not rows:
        return ""
    body = []
    for kind in dict.fromkeys(r["type"] for r in rows):
        for name in dict.fromkeys(r["detector"] for r in rows):
            rs = [r for r in rows if r["type"] == kind and r["detector"] == name]
            if not rs:
                continue
            mean = lambda key: sum(r[key] for r in rs) / len(rs)  # noqa: E731
            recall = num(mean("recall"), 3) if all("recall" in r for r in rs) else "–"
            far = pct(mean("far")) if all(r.get("far") is not None for r in rs) else "–"
            body.append([kind, name, len(rs), num(mean("image_auroc"), 3),
                         " / ".join(f"{r['image_auroc']:.3f}" for r in rs), far, recall])
    return ("## Real photographs: ELPV solar cells\n\n`bench/real_data.py` (`real_data.json`): 300×300 px "
            "electroluminescence images of solar cells (`elpv-dataset`, CC BY-NC-SA: a bench-only extra), per "
            "type and seed 100 good training cells and 150 good + 150 defective (experts' probability 1) test "
            "cells, a seeded random draw per seed. kizu as `kizu train` trains it (`auto` calibration: "
            "leave-own-out; `cross`: cross-conformal), alpha = 5 %; the PyOD / scikit-learn peers see 32×32 "
            "pixels. FAR and recall are at the threshold kizu chose (peers: their own default threshold).\n\n"
            + table(["type", "detector", "seeds", "mean AUROC", "AUROC per seed", "mean FAR", "mean recall"], body))


def section_calibration_splits() -> str:
    data = load("calibration_splits.json")
    if data is None or "summary" not in data:
        return ""
    body = [[s["task"], s["calibration"], s["splits"], pct(s["mean_far"]), f"{100 * s['se_far']:.1f}",
             pct(s["max_far"]), num(s["cal_over_new_median"], 3)] for s in data["summary"]]
    return ("## Calibration schemes over random splits\n\n`bench/calibration_splits.py` "
            "(`calibration_splits.json`): per split 100 good training images and 150 unseen good images; the "
            "false-alarm rate of the conformal threshold at alpha = "
            f"{data['alpha']:g} with leave-own-out (`loo`, the default for patch-knn) and cross-conformal "
            "(`cross`) calibration, and the median calibration score over the median score of unseen good "
            "images (above 1: the threshold errs on the cautious side).\n\n"
            + table(["task", "calibration", "splits", "mean FAR", "se (points)", "worst split", "cal / new median"],
                    body))


def section_throughput() -> str:
    data = load("throughput.json")
    if data is None:
        return ""
    start = data.get("startup", {})
    lines = []
    if start:
        lines.append(f"Start-up: `kizu --help` {start['help_s']:.2f} s; `kizu predict` of the seed task's 1,000 "
                     f"16×16 files {start['predict_1000_torch_s']:.2f} s from the model folder (PyTorch, AUROC "
                     f"{start['predict_1000_torch_auroc']:.4f}), {start['predict_1000_onnx_s']:.2f} s from the bundle "
                     f"(onnxruntime, AUROC {start['predict_1000_onnx_auroc']:.4f}).")
    for k in data.get("knn", []):
        lines.append(f"{k['size']} px, default model: the nearest-neighbour search alone ({k['queries_per_image']} "
                     f"patches per image against {k['memory_rows']:,} memory rows of {k['dims']} dimensions, "
                     f"{k['gflop_per_image']:.2f} GFLOP per image) runs {k['knn_images_per_second']:.0f} images/s.")
    body = [[r["size"], r["model"], r["runtime"], "quiet" if not r["load"] else f"{r['load']} busy processes",
             f"{r['images_per_second']:.1f}", r["batch"], f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
             "–" if "share_of_quiet" not in r else f"{r['share_of_quiet']:.2f}"] for r in data["rows"]]
    return ("## Throughput, latency and start-up\n\n`bench/throughput.py` (`throughput.json`), "
            f"{data['cpus']} CPU cores, {data['threads']} threads; `inspect` end to end (preprocessing, tensor "
            "part, numpy post-processing, verdicts). Size 16: the seed task; larger: fine parts; 1024: one "
            "1-megapixel image (inspected at 512 px, the default `--max-side`). Under load: beside busy "
            "CPU-bound processes.\n\n" + "\n\n".join(lines + [table(
                ["size (px)", "model", "runtime", "machine", "images/s", "batch", "p50 ms", "p99 ms",
                 "share of quiet"], body)]))


def section_serve_load() -> str:
    data = load("serve_load.json")
    if data is None:
        return ""
    s, p = data["served"], data["in_process"]
    body = [[s["responses"], s["lost"], ", ".join(f"{k}: {v}" for k, v in sorted(s["status_counts"].items())),
             f"{s['bad_uploads_4xx']} / {s['bad_uploads']}", f"{s['images_per_s']:.1f}", f"{p['images_per_s']:.1f}",
             f"{s['latency_ms_200']['p50']:.0f}", f"{s['latency_ms_200']['p99']:.0f}"]]
    return ("## The service under load\n\n`bench/serve_load.py` (`serve_load.json`): " + data["what"] + "; "
            f"{data['config']['image_size']} px images, the default detector, {data['machine']['cpus']} CPU cores. "
            "In-process: `model.inspect` on decoded images, same model, the best batch size.\n\n"
            + table(["requests", "lost", "statuses", "bad uploads → 4xx", "served images/s", "in-process images/s",
                     "p50 ms", "p99 ms"], body))


def section_export_parity() -> str:
    rows = rows_of(load("export_parity.json"))
    if not rows:
        return ""
    body = [[r["task"], r["detector"], r["seed"], f"{r['relative']:.1e}", r["verdicts_differ"], r["n_images"],
             f"{r['bundle_mb']:.1f}", num(r["auroc_torch"]), num(r["auroc_onnx"])] for r in rows]
    return ("## Export parity\n\n`bench/export_parity.py` (`export_parity.json`): per task a model trained on 100 "
            "good images, exported (`kizu export`), loaded as a line PC loads it (onnxruntime, no PyTorch) and "
            "both runtimes score every test image. Largest score difference as a share of the calibration "
            "scores' range (an export is refused above 1e-4).\n\n"
            + table(["task", "detector", "seed", "max difference / range", "verdicts differ", "images",
                     "bundle MB", "AUROC torch", "AUROC onnx"], body))


def section_scale_out() -> str:
    data = load("ray_scale.json")
    if data is None:
        return ""
    base = next(r for r in data["runs"] if r["name"] == "local")["images_per_s"]
    body = [[r["name"], f"{r['images_per_s']:.1f}", f"{r['images_per_s'] / base:.2f}",
             f"{r['marginal_ms_per_image']:.2f}", f"{r['startup_s']:.1f}"] for r in data["runs"]]
    same = all(p["same_files"] and p["same_verdicts"] for p in data["parity"].values())
    worst = max(p["max_score_difference"] for p in data["parity"].values())
    free = data["cores_free"]["before"]["cores_free"]
    return ("## Scale-out with Ray\n\n`bench/ray_scale.py` (`ray_scale.json`): `kizu predict` on "
            f"{data['images']:,} {data['size']}×{data['size']} px files, locally and with `--engine ray`, each a "
            f"subprocess with its start-up; {data['machine']['cpus']} CPU cores, {free:.2f} of them free before "
            f"the runs. Ray's rows against local ones: {'same files and verdicts' if same else 'DIFFER'}, "
            f"largest score difference {worst:.1g}.\n\n"
            + table(["run", "images/s", "vs local", "ms/image (marginal)", "start-up s"], body))


SECTIONS = [section_detectors, section_default_by_seed, section_fine_types, section_real_data, section_false_alarms,
            section_guarantees, section_calibration_splits, section_seed_parity, section_template_gate,
            section_visibility, section_throughput, section_export_parity, section_serve_load, section_scale_out,
            section_speed]


def render() -> str:
    head = ("# Benchmarks\n\nGenerated by `bench/make_docs.py` from `bench/results/*.json`; do not edit by hand. "
            "Every table names the script that wrote its numbers; rerun the script, then this one.\n")
    return head + "".join(f"\n{s}\n" for s in (f() for f in SECTIONS) if s)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/benchmarks.md is not up to date")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT} is not what bench/results gives: run bench/make_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
