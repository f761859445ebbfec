"""The tensor part in onnxruntime, from an exported ``model.onnx``: numpy and onnxruntime only (no
PyTorch, SciPy or scikit-image), so inference runs on a line PC with nothing else installed.

Session settings: ``threads`` intra-op threads (default 2), one inter-op thread, sequential
execution, every graph optimisation, and idle threads that sleep instead of spinning — spinning
threads slowed inference several times whenever other processes used the cores
(``bench/throughput.py``). Large batches go ``max_batch`` images per call (from the file's
metadata), which bounds the k-NN block's memory whatever the caller's batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .base import tiled_maps

#: metadata key of the exported tensor part's description (size, channels, outputs, max_batch, ...)
META_KEY = "kizu.tensor_part"


def session_options(threads: int = 2) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


class OnnxRuntime:
    """The tensor part of ``path`` on the CPU; ``tile``/``tile_stride`` as the model's preprocessor."""

    def __init__(self, path: str | Path, *, threads: int = 2, tile: int | None = None,
                 tile_stride: int | None = None):
        self.session = ort.InferenceSession(str(path), sess_options=session_options(threads),
                                            providers=["CPUExecutionProvider"])
        self.meta = json.loads(self.session.get_modelmeta().custom_metadata_map.get(META_KEY, "{}"))
        self.size = tuple(self.meta.get("size", ()))
        self.channels = self.meta.get("channels")
        self.max_batch = int(self.meta.get("max_batch") or 0)
        self.tile, self.tile_stride = tile, tile_stride
        # tiled, a detector's own whole-image score does not exist: the stitched map is reduced
        self.own_score = "scores" in [o.name for o in self.session.get_outputs()] and tile is None

    def maps(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        x = np.ascontiguousarray(images, dtype=np.float32)
        if len(x) == 0:
            return np.zeros((0, *x.shape[2:]), np.float32), (np.zeros(0) if self.own_score else None)
        if self.tile is None:
            return self._run(x)
        return tiled_maps(lambda t: self._run(t)[0], x, self.tile, self.tile_stride), None

    def _run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.channels, *self.size):
            raise ValueError(f"the exported model takes (N, {self.channels}, {self.size[0]}, {self.size[1]}) images, "
                             f"not {x.shape}")
        step = self.max_batch or len(x)
        parts = [self.session.run(None, {"images": x[i:i + step]}) for i in range(0, len(x), step)]
        maps = np.concatenate([p[0] for p in parts])
        own = np.concatenate([p[1] for p in parts]).astype(np.float64) if len(parts[0]) > 1 else None
        return maps, own if self.own_score else None
