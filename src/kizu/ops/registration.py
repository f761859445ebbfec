"""Registering one image onto another: the sub-pixel shift by phase correlation (scikit-image's
algorithm with ``normalization=None``) and bilinear shifting (``scipy.ndimage.shift(order=1,
mode="nearest")``), numpy only."""

from __future__ import annotations

import math

import numpy as np


def _upsampled_dft(data: np.ndarray, region: int, factor: float, offsets: np.ndarray) -> np.ndarray:
    """skimage's matrix-multiply DFT of ``data`` on a ``region``² grid ``factor`` × finer around ``offsets``."""
    for n, off in list(zip(data.shape, offsets))[::-1]:
        kernel = np.exp(-2j * np.pi * (np.arange(region) - off)[:, None] * np.fft.fftfreq(n, factor))
        data = np.tensordot(kernel, data, axes=(1, -1))
    return data


def phase_cross_correlation(reference: np.ndarray, moving: np.ndarray, upsample_factor: int = 1) -> np.ndarray:
    """``(dy, dx)`` float64 shift registering ``moving`` to ``reference`` (both ``(H, W)``): skimage's
    algorithm with ``normalization=None`` (cross-power spectrum peak, refined on a grid
    ``upsample_factor`` × finer by a matrix-multiply DFT). numpy's FFT instead of scipy's."""
    ref, mov = np.asarray(reference, dtype=np.float64), np.asarray(moving, dtype=np.float64)
    if ref.shape != mov.shape or ref.ndim != 2:
        raise ValueError("images must be 2-D and the same shape")
    product = np.fft.fft2(ref) * np.fft.fft2(mov).conj()
    cc = np.fft.ifft2(product)
    shape = np.array(ref.shape, dtype=np.float64)
    shift = np.array(np.unravel_index(np.argmax(np.abs(cc)), cc.shape), dtype=np.float64)
    mid = np.trunc(shape / 2)
    shift[shift > mid] -= shape[shift > mid]
    if upsample_factor > 1:
        f = float(upsample_factor)
        shift = np.round(shift * f) / f
        region = math.ceil(f * 1.5)
        dftshift = math.trunc(region / 2.0)
        cc = _upsampled_dft(product.conj(), region, f, dftshift - shift * f).conj()
        peak = np.array(np.unravel_index(np.argmax(np.abs(cc)), cc.shape), dtype=np.float64)
        shift = shift + (peak - dftshift) / f
    shift[shape == 1] = 0.0
    return shift


def shift_linear(x: np.ndarray, shift) -> np.ndarray:
    """``scipy.ndimage.shift(x, shift, order=1, mode="nearest")`` for ``(H, W)`` (or a leading batch
    with one shift for all): out[i] = x at i − shift, bilinear, coordinates clamped to the image."""
    x = np.asarray(x, dtype=np.float64)
    out = x
    for axis, s in zip((x.ndim - 2, x.ndim - 1), np.broadcast_to(np.asarray(shift, dtype=np.float64), (2,))):
        n = x.shape[axis]
        c = np.clip(np.arange(n) - s, 0.0, n - 1)
        i0 = np.floor(c).astype(np.int64)
        f = c - i0
        i1 = np.minimum(i0 + 1, n - 1)
        shape = [1] * x.ndim
        shape[axis] = n
        out = np.take(out, i0, axis=axis) * (1 - f).reshape(shape) + np.take(out, i1, axis=axis) * f.reshape(shape)
    return out
