"""Greedy k-center coresets and chunked nearest-neighbour distances (PatchCore's memory bank).

``kcenter_greedy(x, n, seed=...)`` picks ``n`` rows of ``x`` so that every row is close to one of
them: start from a seeded random row, then repeatedly add the row farthest from those chosen
(Gonzalez' 2-approximation of the minimax covering radius). As in PatchCore, distances are taken
after a seeded Gaussian random projection to ``proj_dim`` dimensions when the rows are wider
(Johnson-Lindenstrauss), which keeps each step at O(N · proj_dim).

``nn_distances(queries, memory, k)`` returns the Euclidean distances to the ``k`` nearest memory
rows, computed as ``‖a‖² + ‖b‖² − 2 a·b`` (clamped at 0) in blocks of ``query_chunk`` ×
``memory_chunk`` rows, so memory stays bounded however large both sides are. Rows are centred on
the memory's mean first, which keeps the cancellation error of that formula small, and the
distances of the k winners are then recomputed exactly. The matrix product can run in float16 /
bfloat16 (``matmul_dtype``): that only affects which neighbours win when they are nearly tied.
"""

from __future__ import annotations

import numpy as np
import torch

MATMUL_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _tensor(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t.to(torch.float32).contiguous()


def random_projection(x, dim: int, *, seed: int = 0) -> torch.Tensor:
    """Seeded Gaussian projection of rows ``(N, D)`` to ``dim`` columns (unchanged if D <= dim)."""
    t = _tensor(x)
    if t.shape[1] <= dim:
        return t
    g = torch.Generator().manual_seed(int(seed))
    proj = torch.randn(t.shape[1], dim, generator=g, dtype=torch.float32) / np.sqrt(dim)
    return t @ proj


def kcenter_greedy(x, n: int, *, seed: int = 0, proj_dim: int | None = 128, start: int | None = None) -> np.ndarray:
    """Indices (int64, in selection order) of ``n`` greedy k-center rows of ``x`` ``(N, D)``.

    Deterministic for a given ``seed`` (the first centre and the projection). Ties go to the lowest
    index. ``n >= N`` returns every row.
    """
    t = _tensor(x)
    N = t.shape[0]
    if N == 0 or n <= 0:
        return np.zeros(0, dtype=np.int64)
    if n >= N:
        return np.arange(N, dtype=np.int64)
    if proj_dim is not None and t.shape[1] > proj_dim:
        t = random_projection(t, proj_dim, seed=seed)
    t = t - t.mean(dim=0, keepdim=True)
    sq = (t * t).sum(dim=1)
    if start is None:
        start = int(np.random.default_rng(seed).integers(N))
    chosen = np.empty(n, dtype=np.int64)
    idx = int(start)
    min_d = torch.full((N,), float("inf"))
    for i in range(n):
        chosen[i] = idx
        c = t[idx]
        d = (sq - 2.0 * (t @ c) + sq[idx]).clamp_min_(0.0)
        torch.minimum(min_d, d, out=min_d)
        min_d[idx] = 0.0
        idx = int(torch.argmax(min_d))
    return chosen


def nn_distances(
    queries,
    memory,
    k: int = 1,
    *,
    query_chunk: int = 2048,
    memory_chunk: int = 8192,
    matmul_dtype: str = "float32",
    return_indices: bool = False,
):
    """Distances ``(Nq, k)`` float32 (ascending) from each query row to its ``k`` nearest memory rows.

    With ``return_indices`` also the ``(Nq, k)`` int64 memory indices.
    """
    if matmul_dtype not in MATMUL_DTYPES:
        raise ValueError(f"matmul_dtype must be one of {tuple(MATMUL_DTYPES)}, not {matmul_dtype!r}")
    q = _tensor(queries)
    m = _tensor(memory)
    if m.shape[0] == 0:
        raise ValueError("the memory bank is empty")
    if q.shape[1] != m.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} columns, the memory {m.shape[1]}")
    k = min(int(k), m.shape[0])
    centre = m.mean(dim=0, keepdim=True)
    m = m - centre
    mm = (m * m).sum(dim=1)
    mdt = MATMUL_DTYPES[matmul_dtype]
    m_low = m.to(mdt) if mdt is not torch.float32 else m
    out_d = torch.empty((q.shape[0], k), dtype=torch.float32)
    out_i = torch.empty((q.shape[0], k), dtype=torch.int64)
    for a in range(0, q.shape[0], query_chunk):
        qc = q[a : a + query_chunk] - centre
        qq = (qc * qc).sum(dim=1, keepdim=True)
        qc_low = qc.to(mdt) if mdt is not torch.float32 else qc
        best_d = torch.full((len(qc), k), float("inf"))
        best_i = torch.zeros((len(qc), k), dtype=torch.int64)
        for b in range(0, m.shape[0], memory_chunk):
            prod = (qc_low @ m_low[b : b + memory_chunk].T).to(torch.float32)
            d2 = (qq + mm[b : b + memory_chunk][None, :] - 2.0 * prod).clamp_min_(0.0)
            kk = min(k, d2.shape[1])
            cd, ci = torch.topk(d2, kk, dim=1, largest=False, sorted=True)
            cat_d = torch.cat([best_d, cd], dim=1)
            cat_i = torch.cat([best_i, ci + b], dim=1)
            best_d, pos = torch.topk(cat_d, k, dim=1, largest=False, sorted=True)
            best_i = torch.gather(cat_i, 1, pos)
        # exact distances of the k winners (removes the formula's cancellation error and the
        # low-precision matmul's rounding from the returned values)
        exact = (qc[:, None, :] - m[best_i]).pow(2).sum(dim=2).sqrt()
        exact, pos = torch.sort(exact, dim=1, stable=True)
        out_d[a : a + len(qc)] = exact
        out_i[a : a + len(qc)] = torch.gather(best_i, 1, pos)
    dist = out_d.numpy()
    return (dist, out_i.numpy()) if return_indices else dist


def covering_radius(x, centres) -> float:
    """The largest distance from a row of ``x`` to its nearest row of ``centres``."""
    return float(nn_distances(x, centres, 1).max()) if len(x) else 0.0
