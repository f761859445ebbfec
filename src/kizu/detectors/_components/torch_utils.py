"""Small PyTorch helpers shared by the neural detectors: devices, seeding, tensors ↔ arrays."""

from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np
import torch

from ...errors import OptionError

# cuBLAS is deterministic only with a fixed workspace; it reads this when its first handle is made
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` takes a CUDA GPU when there is one, else the CPU; ``cpu``, ``cuda``, ``cuda:N``."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise OptionError(f"--device {device!r}: expected auto, cpu or cuda") from None
    if resolved.type not in ("cpu", "cuda"):
        raise OptionError(f"--device {device!r}: expected auto, cpu or cuda")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"--device {device}: no CUDA GPU is available here (use --device cpu or auto)")
    return resolved


@contextmanager
def deterministic_kernels(device: torch.device):
    """While training on a GPU: deterministic cuDNN and PyTorch kernels (same seed → same weights;
    by default cuDNN picks backward algorithms that add in a varying order). No-op on the CPU."""
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             cudnn.deterministic, cudnn.benchmark)
    torch.use_deterministic_algorithms(True, warn_only=True)
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        cudnn.deterministic, cudnn.benchmark = saved[2], saved[3]


@contextmanager
def full_precision_convs():
    """Convolutions in full float32 on a GPU (no TF32), so features match the CPU's to ~1e-6."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved


@contextmanager
def one_thread():
    """Run a loop of many small CPU ops on one thread: waking a second thread for each op of a
    few hundred microseconds costs more than it gains (up to 15x for an element-wise op when idle
    threads sleep, ``OMP_WAIT_POLICY=PASSIVE``). Always one thread, so the result does not depend
    on how many threads the caller uses. PyTorch's thread count is process-wide: other threads of
    the process also run on one thread meanwhile."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def seeded_generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(0 if seed is None else int(seed))
    return g


def state_to_numpy(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_numpy_state(module: torch.nn.Module, state: dict[str, np.ndarray], prefix: str = "") -> None:
    tensors = {k[len(prefix):]: torch.from_numpy(np.array(v)) for k, v in state.items() if k.startswith(prefix)}
    module.load_state_dict(tensors, strict=True)


def device_batch(x: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """An array batch as a float32 tensor on ``device`` with row-major strides on every axis.

    NumPy gives a length-1 axis any stride (``x[:, None]`` stride 0, a fancy-indexed copy of it the
    item size); both count as contiguous, yet on CUDA (torch 2.11, H200) ``adaptive_avg_pool2d``
    then computed wrong means (errors of the whole value range). Such a batch is copied first."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if t.stride() != _row_major_strides(t.shape):
        t = t.clone(memory_format=torch.contiguous_format)
    return t.to(device)


def _row_major_strides(shape) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


@torch.no_grad()
def batched(fn, images: np.ndarray, device: torch.device, batch_size: int = 64) -> list[torch.Tensor]:
    """Apply ``fn`` to ``(N, C, H, W)`` arrays in batches; returns the CPU outputs per batch."""
    outs = []
    with full_precision_convs():  # on a GPU: the CPU's numbers (to ~1e-6), not TF32's
        for i in range(0, len(images), batch_size):
            x = device_batch(images[i:i + batch_size], device)
            outs.append(fn(x).cpu())
    return outs
