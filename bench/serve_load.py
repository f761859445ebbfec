"""Load test of `kizu serve`: many concurrent clients on loopback against in-process inspection.

    .venv/bin/python bench/serve_load.py [--requests 2000] [--clients 16] [--bad-share 0.05]

Trains the default detector on `kizu.synth.make_fine(size=64)` good images, starts `kizu serve` on
127.0.0.1 with its default options, and sends REQUESTS multipart uploads from CLIENTS keep-alive
connections (a minimal asyncio HTTP/1.1 client, so the load generator costs little CPU on the same
machine); BAD_SHARE of them are bad uploads (text, truncated, empty, wrong size, decompression-bomb
header). Reports throughput, p50/p99 latency and status counts, then, with the server stopped,
`model.inspect` throughput in process on batches of the server's size (images already decoded), and
checks that the served verdicts equal `kizu predict`'s on the same files. Writes
bench/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import platform
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kizu import TrainConfig, fit_model, load_model, save_model  # noqa: E402
from kizu.io import read_image, write_image  # noqa: E402
from kizu.synth import make_fine  # noqa: E402

BOUNDARY = "kizubenchboundary7f3a"


# -- data ------------------------------------------------------------------------------------------
def prepare(root: Path, n_train: int, seed: int, cache: Path | None) -> tuple[Path, list[Path]]:
    """Train the default detector on 64x64 fine parts (or reuse ``cache``, a model trained by an
    earlier run with the same options); write the test images as PNG files."""
    data = make_fine(n_train, 50, 25, size=64, seed=seed)
    if cache is not None and (cache / "model.json").is_file():
        model = load_model(cache, device="cpu")
        print(f"reusing the model in {cache}", flush=True)
    else:
        t0 = time.perf_counter()
        model = fit_model(data.train, TrainConfig(seed=seed))
        print(f"trained {model.detector.name} on {n_train} images in {time.perf_counter() - t0:.1f} s", flush=True)
        if cache is not None:
            save_model(model, cache)
    save_model(model, root / "model")
    files = []
    for i, (img, kind) in enumerate(zip(data.test, data.test_types)):
        path = root / "images" / f"{i:03d}-{kind}.png"
        write_image(path, img)
        files.append(path)
    return root / "model", files


def png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def bad_bodies(good: bytes) -> list[tuple[str, bytes]]:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((32, 48), np.uint8)).save(buf, "PNG")
    return [("text", b"this is not an image"), ("truncated", good[: len(good) // 3]), ("empty", b""),
            ("wrong-size", buf.getvalue()), ("bomb", png_declaring(40000, 40000))]


def multipart_request(port: int, name: str, body: bytes) -> bytes:
    part = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + body + f"\r\n--{BOUNDARY}--\r\n".encode()
    head = (f"POST /v1/inspect HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(part)}\r\n\r\n")
    return head.encode() + part


# -- server ------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, port: int, reviews: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "kizu", "serve", str(model), "--port", str(port),
                             "--reviews", str(reviews), "--log-level", "warning"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"kizu serve exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b" 200 " in s.recv(200):
                    return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("kizu serve did not become ready")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- client ------------------------------------------------------------------------------------------
async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict, bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed")
    status = int(status_line.split()[1])
    headers = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def client(port: int, jobs: asyncio.Queue, results: list) -> None:
    reader = writer = None
    while True:
        try:
            idx, kind, name, request = jobs.get_nowait()
        except asyncio.QueueEmpty:
            break
        for attempt in range(2):  # a closed keep-alive connection is reopened once
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                t0 = time.perf_counter()
                writer.write(request)
                await writer.drain()
                status, headers, body = await read_response(reader)
                results.append((idx, kind, name, status, time.perf_counter() - t0, body))
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    writer = None
                break
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                if writer is not None:
                    writer.close()
                writer = None
                if attempt == 1:
                    results.append((idx, kind, name, None, float("nan"), b""))
    if writer is not None:
        writer.close()


async def load(port: int, requests: list[tuple[int, str, str, bytes]], clients: int) -> tuple[list, float]:
    jobs: asyncio.Queue = asyncio.Queue()
    for r in requests:
        jobs.put_nowait(r)
    results: list = []
    t0 = time.perf_counter()
    await asyncio.gather(*(client(port, jobs, results) for _ in range(clients)))
    return results, time.perf_counter() - t0


# -- comparisons -------------------------------------------------------------------------------------
def in_process_rate(model_dir: Path, files: list[Path], n_images: int, batch: int, in_thread: bool) -> float:
    """Images per second of ``model.inspect`` on already-decoded images, ``batch`` at a time, in the
    main thread or (``in_thread``) in a worker thread as the server runs it: torch's intra-op
    threading differs between the two, and on a busy machine that changes the speed severalfold."""
    if in_thread:
        import threading

        out: dict = {}
        t = threading.Thread(target=lambda: out.update(rate=in_process_rate(model_dir, files, n_images, batch, False)))
        t.start()
        t.join()
        return out["rate"]
    model = load_model(model_dir, device="cpu")
    images = [read_image(p) for p in files]
    model.inspect(images[:batch])  # warm-up
    n_images = max(n_images - n_images % batch, batch)
    done, t0 = 0, time.perf_counter()
    while done < n_images:
        chunk = [images[(done + i) % len(images)] for i in range(min(batch, n_images - done))]
        model.inspect(chunk)
        done += len(chunk)
    return n_images / (time.perf_counter() - t0)


def predict_rows(model_dir: Path, folder: Path, out: Path) -> dict[str, dict]:
    subprocess.run([sys.executable, "-m", "kizu", "predict", str(model_dir), str(folder), "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return {Path(r["path"]).name: r for r in csv.DictReader(out.open())}


def percentile_ms(values: list[float], q: float) -> float:
    return round(1000 * float(np.percentile(values, q)), 2) if values else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--bad-share", type=float, default=0.05)
    ap.add_argument("--n-train", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--in-process-images", type=int, default=192, help="images inspected per in-process setting")
    ap.add_argument("--model-cache", type=Path, help="reuse (or write) the trained model here: training takes minutes")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "serve_load.json")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="kizu-serve-load-") as tmp:
        root = Path(tmp)
        model_dir, files = prepare(root, args.n_train, args.seed, args.model_cache)
        bodies = {p.name: p.read_bytes() for p in files}
        bad = bad_bodies(bodies[files[0].name])
        port = free_port()
        n_bad = int(round(args.requests * args.bad_share))
        rng = np.random.default_rng(args.seed)
        bad_at = set(rng.choice(args.requests, n_bad, replace=False).tolist())
        requests, k = [], 0
        for i in range(args.requests):
            if i in bad_at:
                kind, body = bad[k % len(bad)]
                k += 1
                requests.append((i, "bad:" + kind, f"bad-{kind}.png", multipart_request(port, f"bad-{kind}.png", body)))
            else:
                name = files[i % len(files)].name
                requests.append((i, "good", name, multipart_request(port, name, bodies[name])))

        server = start_server(model_dir, port, root / "reviews")
        try:
            results, wall = asyncio.run(load(port, requests, args.clients))
        finally:
            stop_server(server)

        statuses: dict[str, int] = {}
        for *_, status, _, _ in [r[:6] for r in results]:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        lat = [r[4] for r in results if r[3] is not None]
        lat_ok = [r[4] for r in results if r[3] == 200]
        bad_results = [r for r in results if r[1].startswith("bad:")]
        served = {}
        for r in results:
            if r[1] == "good" and r[3] == 200:
                served.setdefault(r[2], []).append(json.loads(r[5]))
        expected = predict_rows(model_dir, root / "images", root / "predict.csv")
        mismatched = sorted({name for name, got in served.items() for g in got
                             if int(g["defective"]) != int(expected[name]["defective"])})
        score_rel = max(abs(g["score"] - float(expected[n]["score"])) / abs(float(expected[n]["score"]))
                        for n, got in served.items() for g in got)
        n_ok = statuses.get("200", 0)
        rates = {f"{where} batch {b}": round(in_process_rate(model_dir, files, args.in_process_images, b,
                                                             where == "worker thread"), 1)
                 for where in ("main thread", "worker thread") for b in (16, 32, 64)}
        print(f"in process, images/s: {rates}", flush=True)
        batch = max(rates, key=rates.get)
        rate_in_process = rates[batch]

    served_rate = n_ok / wall
    report = {
        "what": "kizu serve under load: 16 keep-alive clients on loopback, multipart uploads, default options",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "config": {"requests": args.requests, "clients": args.clients, "bad_share": args.bad_share,
                   "n_train": args.n_train, "image_size": 64, "detector": "default (patch-knn, lite0)",
                   "server": "kizu serve defaults (batch window 5 ms, max batch 32, queue 256)"},
        "served": {
            "wall_s": round(wall, 3), "requests_per_s": round(len(results) / wall, 1),
            "images_per_s": round(served_rate, 1), "responses": len(results),
            "lost": args.requests - sum(1 for r in results if r[3] is not None), "status_counts": statuses,
            "latency_ms_all": {"p50": percentile_ms(lat, 50), "p90": percentile_ms(lat, 90),
                               "p99": percentile_ms(lat, 99), "max": percentile_ms(lat, 100)},
            "latency_ms_200": {"p50": percentile_ms(lat_ok, 50), "p99": percentile_ms(lat_ok, 99)},
            "bad_uploads": len(bad_results),
            "bad_uploads_4xx": sum(1 for r in bad_results if r[3] is not None and 400 <= r[3] < 500),
        },
        "in_process": {"images_per_s": round(rate_in_process, 1), "best": batch, "all": rates,
                       "note": "model.inspect on decoded images, same model, server stopped; the best setting"},
        "verdicts_equal_predict": {"files_compared": len(served), "responses_compared": sum(map(len, served.values())),
                                   "defective_mismatched": mismatched, "max_relative_score_difference": score_rel},
    }
    s = report["served"]
    report["targets"] = {
        "no_5xx": not any(k.startswith("5") or k == "None" for k in statuses),
        "no_lost": s["lost"] == 0,
        "bad_all_4xx": s["bad_uploads_4xx"] == s["bad_uploads"],
        "throughput_ratio": round(served_rate / rate_in_process, 3),
        "throughput_at_least_80pct": served_rate >= 0.8 * rate_in_process,
        "p99_over_p50": round(s["latency_ms_all"]["p99"] / s["latency_ms_all"]["p50"], 2),
        "p99_at_most_5x_p50": s["latency_ms_all"]["p99"] <= 5 * s["latency_ms_all"]["p50"],
        "verdicts_equal_predict": not mismatched,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("served", "in_process", "targets")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
