"""``kizu predict --engine ray``: batch inspection on Ray Data, on this machine or a Ray cluster.

    INPUTs ─► sources (listed once, here) ─► Ray Data: decode ─► Inspector actors ─► this process
                                                 (read + decode)   (model loaded once each)  │
    OUT ◄─ assembled atomically ◄─ OUT.parts/part-*.parquet (one per block, atomic) ◄────────┘

Decoding runs in the actors' processes when they need no GPU (Ray fuses the two steps) and in CPU
tasks beside them when they do. Results come back to this process, which writes maps and overlays
(each file atomically) and then the block's part, so a part on disk means its files are done:
``--resume`` skips them. Scores equal local ``kizu predict``'s: the same decoder and model, and a
score does not depend on the batch it is computed in.
"""

from __future__ import annotations

import logging
import math
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from ..errors import KizuError
from ..io.atomic import atomic_write_bytes
from . import results
from .inspector import SOURCES, Inspector, decode_batch, model_files
from .sources import Source, list_sources


@dataclass(frozen=True)
class RayOptions:
    """How to run: ``address`` of a Ray cluster (None: start one on this machine), ``workers``
    (scoring actors; None: one per CPU, or per ``gpus_per_worker`` GPUs), ``batch_size`` (images
    per block and per model call), ``device`` for the model, ``runtime`` (``inspector.BACKENDS``),
    ``resume`` (keep OUT's rows and its parts'), ``maps``/``overlays`` folders."""

    address: str | None = None
    workers: int | None = None
    batch_size: int = 64
    gpus_per_worker: float = 0.0
    device: str | None = None
    runtime: str = "torch"
    resume: bool = False
    maps: Path | None = None
    overlays: Path | None = None


@dataclass
class RunSummary:
    """What a run did: files listed, skipped (already in OUT), inspected now, flagged and failed
    among them; workers, seconds (from Ray's start to OUT written), the p-values of every
    inspected file in OUT and the channel counts of the images inspected now; parts discarded
    from an unfinished earlier run (without ``--resume``)."""

    out: Path
    listed: int = 0
    skipped: int = 0
    inspected: int = 0
    defective: int = 0
    errors: int = 0
    workers: int = 0
    seconds: float = 0.0
    p_values: list[float] = field(default_factory=list)
    channels: list[int] = field(default_factory=list)
    discarded_parts: int = 0

    @property
    def images_per_second(self) -> float:
        return self.inspected / self.seconds if self.seconds > 0 else 0.0


def predict_with_ray(model_dir: Path, inputs: list[str], out: Path, options: RayOptions) -> RunSummary:
    """Inspect every image the INPUTs name → OUT (see ``kizu.engines.results``)."""
    results.check_destination(out)
    files = model_files(model_dir)
    sources = list_sources(inputs)
    if options.maps is not None or options.overlays is not None:
        check_distinct_outputs(sources)
    summary = RunSummary(out, listed=len(sources))
    if not options.resume:
        summary.discarded_parts = len(results.earlier_parts(out))
    done = results.start(out, options.resume)
    todo = [s for s in sources if s.path not in done]
    summary.skipped = len(sources) - len(todo)
    start = time.perf_counter()
    if todo:
        with ray_session(options.address):
            summary.workers = options.workers or default_workers(options.gpus_per_worker)
            _run(pipeline(todo, files, options, summary.workers), out, options, summary)
    rows = results.finish(out, [s.path for s in sources], keep_out=options.resume)
    summary.seconds = time.perf_counter() - start
    summary.p_values = [r["p_value"] for r in rows if r.get("error") is None]
    return summary


def check_distinct_outputs(sources: list[Source]) -> None:
    """Two images whose maps or overlays would land on the same file → KizuError naming both."""
    seen: dict[str, str] = {}
    for s in sources:
        stem = Path(s.relative).with_suffix("").as_posix()
        first = seen.setdefault(stem, s.path)
        if first != s.path:
            raise KizuError(f"{first} and {s.path} would write the same map/overlay file ({stem}.*); "
                            "rename one, or inspect them separately")


# -- Ray ----------------------------------------------------------------------------------------------
@contextmanager
def ray_session(address: str | None):
    """Ray for the run: the one this process already uses, the cluster at ``address``, or a local
    instance sized to this machine (shut down afterwards)."""
    import ray

    if ray.is_initialized():
        yield
        return
    kwargs = {"logging_level": logging.WARNING}
    if address:
        check_reachable(address)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(address="local", include_dashboard=False, **kwargs)  # Ray counts the CPUs
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise KizuError(f"--address {address or 'local'}: cannot start or reach Ray ({_first_line(err)})") from None
    try:
        yield
    finally:
        ray.shutdown()


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """A ``HOST:PORT`` or ``ray://HOST:PORT`` address where nothing answers → KizuError at once
    (Ray itself keeps retrying for minutes). ``auto`` is left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        raise KizuError(f"--address {address}: no Ray cluster answers there ({err.strerror or err})") from None


def default_workers(gpus_per_worker: float) -> int:
    """One worker per CPU of the cluster, or per ``gpus_per_worker`` of its GPUs."""
    import ray

    res = ray.cluster_resources()
    if gpus_per_worker > 0:
        gpus = res.get("GPU", 0)
        if gpus < gpus_per_worker:
            raise KizuError(f"--gpus-per-worker {gpus_per_worker:g}: the Ray cluster has {gpus:g} GPUs")
        return max(1, int(gpus // gpus_per_worker))
    return max(1, int(res.get("CPU", 1)))


def pipeline(sources: list[Source], files: dict[str, bytes], options: RayOptions, workers: int):
    """The Ray Data pipeline: sources in blocks of ``batch_size`` → decoded → inspected by a pool
    of ``workers`` actors."""
    import ray.data

    table = pa.Table.from_pylist([{"path": s.path, "location": s.location, "relative": s.relative}
                                  for s in sources], schema=SOURCES)
    size = block_size(len(sources), options.batch_size, workers)
    ds = ray.data.from_arrow([table.slice(i, size) for i in range(0, len(sources), size)])
    ds = ds.map_batches(decode_batch, batch_size=options.batch_size, batch_format="pyarrow")
    inspector_args = {"files": files, "device": options.device, "runtime": options.runtime,
                      "maps": options.maps is not None, "overlays": options.overlays is not None}
    return ds.map_batches(Inspector, batch_size=options.batch_size, batch_format="pyarrow",
                          compute=ray.data.ActorPoolStrategy(size=workers), fn_constructor_kwargs=inspector_args,
                          num_cpus=1, num_gpus=options.gpus_per_worker or None)


def block_size(n: int, batch_size: int, workers: int) -> int:
    """Files per block (and per part): ``batch_size``, or fewer when that would leave workers idle."""
    return max(1, min(batch_size, math.ceil(n / workers)))


def _run(ds, out: Path, options: RayOptions, summary: RunSummary) -> None:
    """Consume the pipeline block by block: write each block's maps, overlays and part."""
    parts = results.ResultParts(out)
    try:
        for block in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            store_block(block, parts, options, summary)
    except (KizuError, KeyboardInterrupt):
        raise
    except Exception as err:  # a Ray task or actor that failed: one line, the parts written are kept
        raise KizuError(f"the Ray run failed ({_first_line(err)}); the {parts.count} parts written are kept in "
                        f"{parts.folder}: run again with --resume to continue") from None


def store_block(block: pa.Table, parts: results.ResultParts, options: RayOptions, summary: RunSummary) -> None:
    """One block of results: its maps and overlays, then its part (so a part means its files are done)."""
    rows = block.select(["relative", "error", "defective", "channels", "map", "overlay"]).to_pylist()
    for r in rows:
        if r["map"] is not None and options.maps is not None:
            atomic_write_bytes(options.maps / Path(r["relative"]).with_suffix(".npy"), r["map"])
        if r["overlay"] is not None and options.overlays is not None:
            atomic_write_bytes(options.overlays / Path(r["relative"]).with_suffix(".png"), r["overlay"])
    parts.write(block)
    summary.inspected += len(rows)
    summary.errors += sum(r["error"] is not None for r in rows)
    summary.defective += sum(bool(r["defective"]) for r in rows if r["error"] is None)
    summary.channels.extend(r["channels"] for r in rows if r["error"] is None)


def _first_line(err: BaseException) -> str:
    """The message of an error (the cause of a Ray task error), on one line."""
    cause = getattr(err, "cause", None) or err
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}".rstrip(": ")
