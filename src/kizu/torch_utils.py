"""Small PyTorch helpers shared by the neural detectors: devices, seeding, tensors ↔ arrays."""

from __future__ import annotations

import numpy as np
import torch


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` takes a CUDA GPU when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA GPU is available")
    return torch.device(device)


def seeded_generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(0 if seed is None else int(seed))
    return g


def state_to_numpy(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_numpy_state(module: torch.nn.Module, state: dict[str, np.ndarray], prefix: str = "") -> None:
    tensors = {k[len(prefix):]: torch.from_numpy(np.array(v)) for k, v in state.items() if k.startswith(prefix)}
    module.load_state_dict(tensors, strict=True)


@torch.no_grad()
def batched(fn, images: np.ndarray, device: torch.device, batch_size: int = 64) -> list[torch.Tensor]:
    """Apply ``fn`` to ``(N, C, H, W)`` arrays in batches; returns the CPU outputs per batch."""
    outs = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size], dtype=np.float32)).to(device)
        outs.append(fn(x).cpu())
    return outs
