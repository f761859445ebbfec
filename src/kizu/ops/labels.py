"""Connected regions of a mask (8-connectivity, numbered as ``skimage.measure.label``) with their
boxes, areas and peaks, numpy only."""

from __future__ import annotations

import numpy as np


def label_regions(mask: np.ndarray, intensity: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """8-connected components of a ``(H, W)`` bool mask, numbered in raster order of their first
    pixel (as ``skimage.measure.label``). Returns ``bbox`` ``(K, 4)`` int64 (y0, x0, y1, x1; ends
    exclusive), ``area`` ``(K,)`` int64, ``max`` ``(K,)`` (of ``intensity``, when given) and
    ``labels`` ``(H, W)`` int32 (0 = background).

    Runs of mask pixels per row; runs of adjacent rows that touch (8-connectivity) are joined by a
    vectorised union-find (hook roots to the smaller root, then pointer jumping)."""
    m = np.asarray(mask, dtype=bool)
    h, w = m.shape
    padded = np.zeros((h, w + 2), np.int8)
    padded[:, 1:-1] = m
    d = np.diff(padded, axis=1)
    rs, cs = np.nonzero(d == 1)  # run starts (row-major: sorted by row, then column)
    _, ce = np.nonzero(d == -1)  # run ends (exclusive), in the same order
    n = len(rs)
    empty = {"bbox": np.zeros((0, 4), np.int64), "area": np.zeros(0, np.int64), "max": np.zeros(0),
             "labels": np.zeros((h, w), np.int32)}
    if n == 0:
        return empty
    stride = w + 2
    start_key, end_key = rs * stride + cs, rs * stride + ce
    # runs b of the next row touching run a: b.start <= a.end and b.end >= a.start
    lo = np.searchsorted(end_key, (rs + 1) * stride + cs, side="left")
    hi = np.searchsorted(start_key, (rs + 1) * stride + ce, side="right")
    count = np.maximum(hi - lo, 0)
    a = np.repeat(np.arange(n), count)
    b = (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)) + np.repeat(lo, count)
    parent = np.arange(n)
    while len(a):
        ra, rb = parent[a], parent[b]
        if np.array_equal(ra, rb):
            break
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:  # pointer jumping until every run points at its root
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
    roots, comp = np.unique(parent, return_inverse=True)  # roots = first run of each component
    k = len(roots)
    length = ce - cs
    area = np.bincount(comp, weights=length, minlength=k).astype(np.int64)
    y0 = np.full(k, h, np.int64)
    x0 = np.full(k, w, np.int64)
    y1 = np.zeros(k, np.int64)
    x1 = np.zeros(k, np.int64)
    np.minimum.at(y0, comp, rs)
    np.minimum.at(x0, comp, cs)
    np.maximum.at(y1, comp, rs + 1)
    np.maximum.at(x1, comp, ce)
    labels = np.zeros(h * w, np.int32)
    run_label = (comp + 1).astype(np.int32)
    pix = np.repeat(run_label, length)
    flat_idx = np.repeat(rs * w + cs - np.cumsum(length) + length, length) + np.arange(length.sum())
    labels[flat_idx] = pix
    out = {"bbox": np.stack([y0, x0, y1, x1], 1), "area": area, "labels": labels.reshape(h, w), "max": np.zeros(k)}
    if intensity is not None:
        vals = np.asarray(intensity).reshape(-1)[flat_idx]
        run_max = np.maximum.reduceat(vals, np.cumsum(length) - length)
        mx = np.full(k, -np.inf, dtype=np.float64)
        np.maximum.at(mx, comp, run_max.astype(np.float64))
        out["max"] = mx
    return out
