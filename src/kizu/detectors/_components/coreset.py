"""Greedy k-center coresets and chunked nearest-neighbour distances (PatchCore's memory bank).

``kcenter_greedy(x, n, seed=...)`` picks ``n`` rows of ``x`` so that every row is close to one of
them: start from a seeded random row, then repeatedly add the row farthest from those chosen
(Gonzalez' 2-approximation of the minimax covering radius). As in PatchCore, distances are taken
after a seeded Gaussian random projection to ``proj_dim`` dimensions when the rows are wider
(Johnson-Lindenstrauss), which keeps each step at O(N · proj_dim). ``candidates`` runs the greedy
on a seeded random subset of at most that many rows (the cost is O(candidates · n)): with many
strongly overlapping patches the subset covers nearly as well, at a fraction of the time.

``nn_distances(queries, memory, k)`` returns the Euclidean distances to the ``k`` nearest memory
rows, computed as ``‖a‖² + ‖b‖² − 2 a·b`` (clamped at 0) in blocks of ``query_chunk`` ×
``memory_chunk`` rows, so memory stays bounded however large both sides are. Rows are centred on
the memory's mean first, which keeps the cancellation error of that formula small, and the
distances of the k winners are then recomputed exactly. The matrix product can run in float16 /
bfloat16 (``matmul_dtype``): the low-precision products only screen candidates (the best
``k + RERANK`` per query), whose exact distances then decide, so only near-ties can go to the
second best. With k = 1 in float32 a row minimum replaces the top-k selection (faster).
"""

from __future__ import annotations

import numpy as np
import torch

from .torch_utils import one_thread

MATMUL_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
#: extra candidates per query kept from a low-precision screening and then re-ranked exactly
RERANK = 3
#: block of the distance matrix computed at once (queries × memory rows): 8 MB in float32 stays in
#: cache; 2048 × 8192 blocks made a 10 240-row search 2.4× slower on 2 CPU threads
QUERY_CHUNK, MEMORY_CHUNK = 1024, 2048


def _tensor(x, device: torch.device | str | None = None) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t.to(device=device, dtype=torch.float32).contiguous()


def random_projection(x, dim: int, *, seed: int = 0) -> torch.Tensor:
    """Seeded Gaussian projection of rows ``(N, D)`` to ``dim`` columns (unchanged if D <= dim)."""
    t = _tensor(x)
    if t.shape[1] <= dim:
        return t
    g = torch.Generator().manual_seed(int(seed))  # drawn on the CPU: the same projection on any device
    proj = torch.randn(t.shape[1], dim, generator=g, dtype=torch.float32) / np.sqrt(dim)
    return t @ proj.to(t.device)


def kcenter_greedy(
    x,
    n: int,
    *,
    seed: int = 0,
    proj_dim: int | None = 128,
    start: int | None = None,
    candidates: int | None = None,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Indices (int64, in selection order) of ``n`` greedy k-center rows of ``x`` ``(N, D)``.

    Deterministic for a given ``seed`` (the first centre, the projection and the candidate subset).
    Ties go to the lowest index. ``n >= N`` returns every row. ``candidates``: choose among a
    seeded random subset of at most that many rows (never fewer than ``n``); ``start`` then
    indexes that subset. ``device``: where the distances are computed (default: the CPU).
    """
    t = _tensor(x, device)
    N = t.shape[0]
    if N == 0 or n <= 0:
        return np.zeros(0, dtype=np.int64)
    if n >= N:
        return np.arange(N, dtype=np.int64)
    if candidates is not None and max(int(candidates), n) < N:
        rng = np.random.default_rng([int(seed), 1])
        subset = np.sort(rng.choice(N, max(int(candidates), n), replace=False))
        return subset[kcenter_greedy(t[torch.from_numpy(subset).to(t.device)], n, seed=seed, proj_dim=proj_dim,
                                     start=start)]
    if proj_dim is not None and t.shape[1] > proj_dim:
        t = random_projection(t, proj_dim, seed=seed)
    t = t - t.mean(dim=0, keepdim=True)
    sq = (t * t).sum(dim=1)
    if start is None:
        start = int(np.random.default_rng(seed).integers(N))
    if t.device.type != "cpu":
        return _greedy_loop(t, sq, n, int(start))
    with one_thread():
        return _greedy_loop(t, sq, n, int(start))


def _greedy_loop(t: torch.Tensor, sq: torch.Tensor, n: int, idx: int) -> np.ndarray:
    """The greedy k-center steps on centred rows ``t`` ``(N, D)`` with squared norms ``sq``."""
    N, D = t.shape
    # rows [x, 1] (stored dimension by dimension: the product streams through memory) times the centre
    # [-2c, ‖c‖²], added to ‖x‖²: one matrix product gives every squared distance ‖x‖² − 2x·c + ‖c‖²
    rows = torch.cat([t.T, torch.ones(1, N, device=t.device)]).contiguous()
    centre = torch.empty(1, D + 1, device=t.device)
    d = torch.empty(1, N, device=t.device)
    min_d = torch.full((N,), float("inf"), device=t.device)
    on_cpu = t.device.type == "cpu"
    min_d_np = min_d.numpy() if on_cpu else None  # numpy's argmax is ~10x faster than torch's here
    chosen = np.empty(n, dtype=np.int64)
    for i in range(n):
        chosen[i] = idx
        torch.mul(t[idx], -2.0, out=centre[0, :D])
        centre[0, D] = sq[idx]
        torch.addmm(sq[None], centre, rows, out=d)
        torch.minimum(min_d, d[0], out=min_d)
        min_d[idx] = 0.0
        idx = int(min_d_np.argmax()) if on_cpu else int(torch.argmax(min_d))  # ties: the lowest index
    return chosen


class NNIndex:
    """A memory bank prepared once for repeated nearest-neighbour queries (see :func:`nn_distances`).

    Holds the memory centred on its mean, its squared norms and, for a low-precision
    ``matmul_dtype``, a converted copy, on ``device`` (default: the CPU); ``search`` then only pays
    for the queries (numpy or tensors from anywhere in, numpy out).
    """

    def __init__(self, memory, matmul_dtype: str = "float32", device: torch.device | str | None = None):
        if matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(f"matmul_dtype must be one of {tuple(MATMUL_DTYPES)}, not {matmul_dtype!r}")
        m = _tensor(memory, device)
        self.device = m.device
        if m.ndim != 2 or m.shape[0] == 0:
            raise ValueError("the memory bank is empty")
        self.matmul_dtype = matmul_dtype
        self.centre = m.mean(dim=0, keepdim=True)
        self.m = m - self.centre
        self.mm = (self.m * self.m).sum(dim=1)
        self._dt = MATMUL_DTYPES[matmul_dtype]
        self.low = self._dt is not torch.float32
        self.m_low = self.m.to(self._dt) if self.low else self.m
        self.mm_low = self.mm.to(self._dt) if self.low else self.mm

    def __len__(self) -> int:
        return self.m.shape[0]

    def search(
        self,
        queries,
        k: int = 1,
        *,
        query_chunk: int = QUERY_CHUNK,
        memory_chunk: int = MEMORY_CHUNK,
        return_indices: bool = False,
        exact: bool = True,
        exclude=None,
    ):
        """Distances ``(Nq, k)`` float32 (ascending) to the ``k`` nearest memory rows.

        Each memory chunk's best candidates are ranked by ``‖a‖² + ‖b‖² − 2 a·b`` and their distances
        recomputed exactly, and the chunks' winners are merged by exact distance: the formula's
        cancellation error (about 1e-3 of the vectors' norms) would otherwise dominate distances near
        0, and would differ between runtimes (the ONNX graph does the same, ``onnx_parts``).

        ``exclude`` (bool, one per memory row, or None): rows that are not candidates (e.g. those
        from the query's own image); at least ``k`` rows must remain.

        ``exact=False`` (float32 only, no indices): distances straight from the formula — faster,
        with the absolute error above (for statistics where distances near 0 do not matter).
        """
        q = _tensor(queries, self.device)
        if q.ndim != 2 or q.shape[1] != self.m.shape[1]:
            raise ValueError(f"queries have {q.shape[-1]} columns, the memory {self.m.shape[1]}")
        M = self.m.shape[0]
        k = min(int(k), M)
        if exclude is not None:
            exclude = torch.as_tensor(np.asarray(exclude, dtype=bool), device=self.device)
            if exclude.shape != (M,) or int((~exclude).sum()) < k:
                raise ValueError(f"exclude must be {M} booleans leaving at least k = {k} rows")
        if not exact and not return_indices and not self.low:
            return self._search_values(q, k, query_chunk, memory_chunk, exclude)
        if exclude is not None and self.low:
            raise ValueError("exclude works with the float32 search only")
        out_d = torch.empty((q.shape[0], k), dtype=torch.float32, device=self.device)
        out_i = torch.empty((q.shape[0], k), dtype=torch.int64, device=self.device)
        for a in range(0, q.shape[0], query_chunk):
            qc = q[a : a + query_chunk] - self.centre
            d, i = self._search_chunked(qc, k, memory_chunk, exclude)
            out_d[a : a + len(qc)], out_i[a : a + len(qc)] = d, i
        dist = out_d.cpu().numpy()
        return (dist, out_i.cpu().numpy()) if return_indices else dist

    def _search_chunked(self, qc: torch.Tensor, k: int, memory_chunk: int, exclude: torch.Tensor | None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Centred queries ``(Q, D)`` → exact distances and indices ``(Q, k)`` of their k nearest rows."""
        M = self.m.shape[0]
        kc = k + RERANK if self.low else k  # candidates per chunk (a low-precision screening keeps more)
        qc_low = qc.to(self._dt) if self.low else qc
        best_d = best_i = None
        for b in range(0, M, memory_chunk):
            # ‖b‖² − 2 a·b: the squared distance less ‖a‖², which does not change the ranking
            bias = self.mm_low[b : b + memory_chunk]
            if exclude is not None:
                bias = bias.masked_fill(exclude[b : b + memory_chunk], float("inf"))
            part = torch.addmm(bias, qc_low, self.m_low[b : b + memory_chunk].T, alpha=-2.0)
            if kc == 1:
                ci = part.argmin(dim=1, keepdim=True)
            else:
                ci = torch.topk(part.to(torch.float32), min(kc, part.shape[1]), dim=1, largest=False).indices
            ci = ci + b
            cd = (qc[:, None, :] - self.m[ci]).pow(2).sum(dim=2).sqrt()
            if exclude is not None:
                cd = cd.masked_fill(exclude[ci], float("inf"))
            if best_d is not None and cd.shape[1] == 1:
                better = cd < best_d  # ties keep the earlier (lower-index) row
                best_d, best_i = torch.where(better, cd, best_d), torch.where(better, ci, best_i)
                continue
            if best_d is not None:
                cd, ci = torch.cat([best_d, cd], dim=1), torch.cat([best_i, ci], dim=1)
            if cd.shape[1] == 1:
                best_d, best_i = cd, ci
            else:  # stable: among equal distances the earlier (lower-index) row wins
                cd, pos = torch.sort(cd, dim=1, stable=True)
                best_d, best_i = cd[:, :k], torch.gather(ci, 1, pos[:, :k])
        return best_d, best_i

    def _search_values(self, q: torch.Tensor, k: int, query_chunk: int, memory_chunk: int,
                       exclude: torch.Tensor | None = None) -> np.ndarray:
        M = self.m.shape[0]
        mm = self.mm if exclude is None else self.mm.masked_fill(exclude, float("inf"))
        out = torch.empty((q.shape[0], k), dtype=torch.float32, device=self.device)
        for a in range(0, q.shape[0], query_chunk):
            qc = q[a : a + query_chunk] - self.centre
            best = None
            for b in range(0, M, memory_chunk):
                part = torch.addmm(mm[b : b + memory_chunk], qc, self.m[b : b + memory_chunk].T, alpha=-2.0)
                if k == 1:
                    cd = part.amin(dim=1, keepdim=True)  # no indices: much faster than min()
                    best = cd if best is None else torch.minimum(best, cd)
                else:
                    cd = torch.topk(part, min(k, part.shape[1]), dim=1, largest=False, sorted=True).values
                    if best is not None:
                        cd = torch.topk(torch.cat([best, cd], dim=1), k, dim=1, largest=False, sorted=True).values
                    best = cd
            qq = (qc * qc).sum(dim=1, keepdim=True)
            out[a : a + len(qc)] = (best + qq).clamp_min_(0.0).sqrt_()
        return out.cpu().numpy()


def nn_distances(
    queries,
    memory,
    k: int = 1,
    *,
    query_chunk: int = QUERY_CHUNK,
    memory_chunk: int = MEMORY_CHUNK,
    matmul_dtype: str = "float32",
    return_indices: bool = False,
    exact: bool = True,
):
    """Distances ``(Nq, k)`` float32 (ascending) from each query row to its ``k`` nearest memory rows.

    With ``return_indices`` also the ``(Nq, k)`` int64 memory indices. ``exact``: see
    :meth:`NNIndex.search` (to query one memory many times, build an :class:`NNIndex` once).
    """
    if matmul_dtype not in MATMUL_DTYPES:
        raise ValueError(f"matmul_dtype must be one of {tuple(MATMUL_DTYPES)}, not {matmul_dtype!r}")
    m = _tensor(memory)
    if m.shape[0] == 0:
        raise ValueError("the memory bank is empty")
    q = _tensor(queries)
    if q.shape[1] != m.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} columns, the memory {m.shape[1]}")
    return NNIndex(m, matmul_dtype).search(q, k, query_chunk=query_chunk, memory_chunk=memory_chunk,
                                           return_indices=return_indices, exact=exact)


def covering_radius(x, centres) -> float:
    """The largest distance from a row of ``x`` to its nearest row of ``centres``."""
    return float(nn_distances(x, centres, 1).max()) if len(x) else 0.0
