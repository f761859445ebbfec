"""Each detector's tensor part as a PyTorch module built from operations ONNX expresses exactly,
with the fitted state frozen in as constants (``tensor_module``): what ``kizu.export`` writes.

The module computes ``images (N, C, H, W) → maps (N, H, W)`` (``mt``: also its own scores
``(N,)``), the same numbers as ``detector.anomaly_maps`` to about 1e-5 of the map's range:

* resizes with ``F.interpolate(bilinear, align_corners=False)`` while enlarging → ``Resize``
  (``half_pixel``); anti-aliased shrinking and non-divisible ``adaptive_avg_pool2d`` → two constant
  matrices, ``out = Wh @ x @ Ww.T``, with weights taken from PyTorch itself (the exporter has no
  anti-aliased ``Resize``, and onnxruntime's own anti-aliased one is a different filter);
* EfficientNet-Lite0 → its BatchNorm-fused inference copy (``Conv``, ``Clip``, ``Add``, ``Pad``);
* brightness channels → pooling matrices and ``AveragePool(count_include_pad=0)``;
* k-NN → ``Gemm`` (``‖m‖² − 2 q·m`` on memory centred as ``NNIndex`` centres it) per memory chunk,
  ``ArgMin`` (k = 1) or ``TopK``, the candidates' rows by ``Gather``, their exact distances, then
  ``Min`` or ``TopK`` over the chunks — the same numbers as ``NNIndex.search``;
* the pixel backbone's ``unfold`` → shifted slices stacked;
* Gaussian smoothing (``sigma`` > 0) → edge padding and two 1-D convolutions;
* ``mt`` → float64 throughout after the input's pooling, ``atan`` by a float64 series (onnxruntime's
  ``Atan`` is float32 only), the orientation histogram by ``Equal``/``Where``, MD by ``MatMul``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .coreset import NNIndex
from .efficientnet_lite import STAGE_STRIDES, fuse_for_inference
from .losses import _gaussian_window, ssim_with_window
from .transforms import WINDOWS

#: memory rows per Gemm block: bounds the (queries × rows) intermediate
MEMORY_CHUNK = 2048


# -- resize / pooling as constant matrices -------------------------------------------------------
def interp_matrix(n_in: int, n_out: int, antialias: bool) -> torch.Tensor:
    """``(n_out, n_in)`` float32 weights of torch's 1-D bilinear resize (align_corners=False), taken
    from ``F.interpolate`` itself: row i = output pixel i."""
    # image j = e_j along H; 2 px wide (2 → 2 is the identity): torch 2.13's anti-aliased kernel
    # gives wrong weights for a 1 px wide axis (rows all alike; measured)
    eye = torch.eye(n_in, dtype=torch.float32).reshape(n_in, 1, n_in, 1).expand(n_in, 1, n_in, 2).contiguous()
    out = F.interpolate(eye, size=(n_out, 2), mode="bilinear", align_corners=False, antialias=antialias)
    return out[:, 0, :, 0].T.contiguous()


def pool_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """``(n_out, n_in)`` float32 weights of ``adaptive_avg_pool`` along one axis (torch's windows)."""
    m = torch.zeros(n_out, n_in)
    for i in range(n_out):
        a, b = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
        m[i, a:b] = 1.0 / (b - a)
    return m


class Separable(nn.Module):
    """``(..., H, W)`` → ``(..., h, w)`` as ``Wh @ x @ Ww.T`` with constant matrices."""

    def __init__(self, wh: torch.Tensor, ww: torch.Tensor):
        super().__init__()
        self.register_buffer("wh", wh)
        self.register_buffer("wwt", ww.T.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.wh, torch.matmul(x, self.wwt))


def resizer(size_in: tuple[int, int], size_out: tuple[int, int], antialias: bool) -> nn.Module:
    """Bilinear resize of ``(N, C, H, W)`` as torch does it: ``Resize`` where no axis shrinks with
    anti-aliasing, else the matrices (identity when the size does not change)."""
    size_in, size_out = tuple(size_in), tuple(size_out)
    if size_in == size_out:
        return nn.Identity()
    shrink = size_out[0] < size_in[0] or size_out[1] < size_in[1]
    if antialias and shrink:
        return Separable(interp_matrix(size_in[0], size_out[0], True), interp_matrix(size_in[1], size_out[1], True))
    return _Interp(size_out)


class _Interp(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.size = tuple(int(v) for v in size)

    def forward(self, x):
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)


def pooler(size_in: tuple[int, int], size_out: tuple[int, int]) -> nn.Module:
    """``adaptive_avg_pool2d`` to ``size_out`` (identity when equal), as kizu's ``_pool_to``."""
    if tuple(size_in) == tuple(size_out):
        return nn.Identity()
    return Separable(pool_matrix(size_in[0], size_out[0]), pool_matrix(size_in[1], size_out[1]))


class GaussianSmooth(nn.Module):
    """``(N, H, W)`` → same, ``scipy.ndimage.gaussian_filter(sigma=(0, s, s), mode="nearest",
    truncate=4)`` as edge padding and two 1-D convolutions (``kizu.ops.maps.smooth_maps``)."""

    def __init__(self, sigma: float, truncate: float = 4.0):
        super().__init__()
        r = int(truncate * float(sigma) + 0.5)
        x = np.arange(-r, r + 1, dtype=np.float64)
        k = np.exp(-0.5 * x * x / float(sigma) ** 2)
        k = torch.from_numpy((k / k.sum()).astype(np.float32))
        self.r = r
        self.register_buffer("kh", k.reshape(1, 1, -1, 1))
        self.register_buffer("kw", k.reshape(1, 1, 1, -1))

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        r = self.r
        t = F.pad(m.unsqueeze(1), (r, r, r, r), mode="replicate")
        return F.conv2d(F.conv2d(t, self.kh), self.kw).squeeze(1)


class MapOut(nn.Module):
    """Grid maps ``(N, h, w)`` → input-size maps ``(N, H, W)`` smoothed with ``sigma`` px
    (``GridMapDetector._input_maps``)."""

    def __init__(self, grid: tuple[int, int], size: tuple[int, int], sigma: float):
        super().__init__()
        self.up = resizer(grid, size, antialias=False)
        self.smooth = GaussianSmooth(sigma) if sigma > 0 else None

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        m = self.up(g.unsqueeze(1)).squeeze(1)
        return self.smooth(m) if self.smooth is not None else m


# -- local features (LocalFeatures) --------------------------------------------------------------
class LocalFeaturesPart(nn.Module):
    """``(N, C, H, W)`` → ``(N, h·w, D)`` float32: ``LocalFeatures(images)`` with the grid flattened
    (row-major) and the feature axis last."""

    def __init__(self, lf, size: tuple[int, int], channels: int):
        super().__init__()
        if not lf._fitted:
            raise ValueError("LocalFeatures is not fitted")
        if channels != lf._channels:
            raise ValueError(f"fitted on {lf._channels} channels, not {channels}")
        H, W = size
        self.backbone = lf.backbone
        self.grid = lf._grid(H, W)
        bb = lf._backbone
        if lf.backbone == "pixels":
            self.base = pooler((H, W), self.grid)
            self.patch, self.center, self.levels = lf.patch, lf.center, []
            for level in lf.stages:
                f = 2 ** level
                g = (max(1, math.ceil(self.grid[0] / f)), max(1, math.ceil(self.grid[1] / f)))
                self.levels.append(g)
            self.level_pool = nn.ModuleList(pooler(self.grid, g) for g in self.levels)
            self.level_up = nn.ModuleList(resizer(g, self.grid, antialias=False) for g in self.levels)
        else:
            if bb._net is None:
                raise ValueError("LocalFeatures has no network")
            net_size = bb.net_size(H, W)
            self.prepare = resizer((H, W), net_size, antialias=net_size[0] < H)
            self.pad = bb.net_pad(H, W)
            self.pad_mode = "reflect" if self.pad < min(net_size) else "replicate"
            self.crops = [self.pad // STAGE_STRIDES[st] for st in lf.stages]
            fused = fuse_for_inference(bb._net).cpu().eval()
            fused.to(memory_format=torch.contiguous_format)
            self.net = fused
            padded = (net_size[0] + 2 * self.pad, net_size[1] + 2 * self.pad)
            sizes = [(math.ceil(padded[0] / STAGE_STRIDES[s]) - 2 * c, math.ceil(padded[1] / STAGE_STRIDES[s]) - 2 * c)
                     for s, c in zip(lf.stages, self.crops)]
            fine = max(sizes, key=lambda s: s[0] * s[1])
            self.stage_up = nn.ModuleList(resizer(s, fine, antialias=False) for s in sizes)
            self.to_grid = pooler(fine, self.grid)
        self.brightness = lf._brightness is not None
        if self.brightness:
            self.windows = tuple(WINDOWS)
            self.surround = lf.brightness_surround
            self.grey_pool = pooler((H, W), self.grid)
            scale = torch.from_numpy(lf._brightness.scale.astype(np.float32))[None, :, None, None]
            self.register_buffer("b_scale", scale)
        self.pca = lf._projection.fitted
        if self.pca:
            self.register_buffer("pca_mean", torch.from_numpy(lf._projection.mean.astype(np.float32)))
            self.register_buffer("pca_t", torch.from_numpy(lf._projection.components.astype(np.float32)).T.contiguous())

    def _pixels(self, t: torch.Tensor) -> torch.Tensor:
        base = self.base(t)
        p, out = self.patch, []
        r = p // 2
        for g, pool, up in zip(self.levels, self.level_pool, self.level_up):
            x = pool(base)
            xp = F.pad(x, (r, r, r, r), mode="replicate") if r else x
            gh, gw = g
            u = torch.stack([xp[:, :, ky:ky + gh, kx:kx + gw] for ky in range(p) for kx in range(p)], dim=2)
            if self.center:
                u = u - u.mean(dim=2, keepdim=True)
            u = u.flatten(1, 2)  # (N, C·p², gh, gw): unfold's channel order
            out.append(up(u))
        return torch.cat(out, dim=1)

    def _network(self, t: torch.Tensor) -> torch.Tensor:
        x = self.prepare(t)
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, mode=self.pad_mode)
        maps = self.net(x)
        out = []
        for m, c, up in zip(maps, self.crops, self.stage_up):
            if c:
                m = m[..., c:m.shape[-2] - c, c:m.shape[-1] - c]
            m = F.avg_pool2d(m, 3, stride=1, padding=1, count_include_pad=False)
            out.append(up(m))
        return self.to_grid(torch.cat(out, dim=1))

    def _relative_brightness(self, t: torch.Tensor) -> torch.Tensor:
        grey = self.grey_pool(t.mean(dim=1, keepdim=True))

        def local_mean(w: int) -> torch.Tensor:
            return F.avg_pool2d(grey, w, stride=1, padding=w // 2, count_include_pad=False)

        ref = local_mean(self.surround) if self.surround else t.mean(dim=(1, 2, 3), keepdim=True)
        return torch.cat([local_mean(w) for w in self.windows], dim=1) / ref.clamp_min(1e-3) - 1.0

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        f = self._pixels(t) if self.backbone == "pixels" else self._network(t)
        if self.brightness:
            f = torch.cat([f, self.b_scale * self._relative_brightness(t)], dim=1)
        v = f.flatten(2).transpose(1, 2)  # (N, h·w, D)
        if self.pca:
            v = torch.matmul(v - self.pca_mean, self.pca_t)
        return v


# -- detectors -----------------------------------------------------------------------------------
class PatchKNNPart(nn.Module):
    """``patch-knn``: features → k-NN distance to the memory → edge profile → input size → sigma."""

    def __init__(self, det, size, channels, memory_dtype: str = "float32", memory_chunk: int = MEMORY_CHUNK):
        super().__init__()
        from ..patch_knn import edge_classes

        if det._memory is None:
            raise ValueError("patch-knn detector is not fitted")
        self.features = LocalFeaturesPart(det.features, size, channels)
        h, w = self.features.grid
        self.k = min(int(det.options.k), len(det._memory))
        index = NNIndex(det._memory, "float32", device="cpu")  # centred exactly as the detector's search
        m = index.m
        if memory_dtype == "float16":
            m = m.to(torch.float16)
        elif memory_dtype != "float32":
            raise ValueError(f"memory_dtype must be float32 or float16, not {memory_dtype!r}")
        self.low = memory_dtype == "float16"
        mf = m.to(torch.float32)
        mm = (mf * mf).sum(dim=1)  # of the stored (possibly rounded) rows
        self.register_buffer("centre", index.centre.clone())
        self.chunks = []
        for i, a in enumerate(range(0, len(m), memory_chunk)):
            self.register_buffer(f"mt{i}", m[a:a + memory_chunk].T.contiguous())
            self.register_buffer(f"mm{i}", mm[a:a + memory_chunk].contiguous())
            self.chunks.append(i)
        edge = torch.ones(h, w)
        if det._edge is not None:
            c = (len(det._edge) - 1) // 2
            profile = det._edge[edge_classes(h, c)[:, None], edge_classes(w, c)[None, :]]
            edge = torch.from_numpy(profile.astype(np.float32))
        self.register_buffer("edge", edge)
        self.has_edge = det._edge is not None
        self.grid = (h, w)
        self.out = MapOut((h, w), size, det.options.sigma)

    def queries(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` → centred query rows ``(N·h·w, D)``."""
        v = self.features(x)
        return v.reshape(-1, v.shape[-1]) - self.centre

    def tail(self, dist: torch.Tensor) -> torch.Tensor:
        """k-NN distances ``(N·h·w,)`` → maps ``(N, H, W)`` (edge profile, resize, sigma)."""
        g = dist.reshape(-1, *self.grid)
        if self.has_edge:
            g = g / self.edge
        return self.out(g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.queries(x)  # (Q, D)
        best = None
        for i in self.chunks:
            mt, mm = getattr(self, f"mt{i}"), getattr(self, f"mm{i}")
            if self.low:
                mt = mt.to(torch.float32)
            part = torch.addmm(mm, q, mt, alpha=-2.0)  # ‖m‖² − 2 q·m
            if self.k == 1:
                ci = part.argmin(dim=1, keepdim=True)
            else:
                ci = torch.topk(part, min(self.k, part.shape[1]), dim=1, largest=False).indices
            # the candidates' exact distances, as NNIndex.search: rows gathered from the chunk (D, M_i)
            rows = torch.index_select(mt, 1, ci.reshape(-1)).T.reshape(ci.shape[0], ci.shape[1], -1)
            cd = (q[:, None, :] - rows).pow(2).sum(dim=2).sqrt()
            if best is None:
                best = cd
            elif self.k == 1:
                best = torch.minimum(best, cd)
            else:
                best = torch.topk(torch.cat([best, cd], dim=1), self.k, dim=1, largest=False, sorted=True).values
        return self.tail(best.mean(dim=1))


class _Call(nn.Module):
    """One method of a module as its own module (to export the parts of ``PatchKNNPart``)."""

    def __init__(self, mod: nn.Module, method: str):
        super().__init__()
        self.mod, self.method = mod, method

    def forward(self, x):
        return getattr(self.mod, self.method)(x)


class PatchGaussianPart(nn.Module):
    """``patch-gaussian``: features → Mahalanobis distance per grid position → input size → sigma."""

    def __init__(self, det, size, channels):
        super().__init__()
        if det._mean is None:
            raise ValueError("patch-gaussian detector is not fitted")
        self.features = LocalFeaturesPart(det.features, size, channels)
        if tuple(self.features.grid) != tuple(det._mean.shape[:2]):
            raise ValueError("patch-gaussian needs the training image size")
        h, w, d = det._mean.shape
        self.grid = (h, w)
        self.register_buffer("mean", torch.from_numpy(det._mean.reshape(h * w, d).copy()))
        self.register_buffer("prec", torch.from_numpy(det._precision.reshape(h * w, d, d).copy()))
        self.out = MapOut((h, w), size, det.options.sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x) - self.mean  # (N, hw, D)
        y = torch.matmul(f.unsqueeze(2), self.prec).squeeze(2)  # (N, hw, D)
        q = (y * f).sum(dim=-1).clamp_min(0.0).sqrt()
        return self.out(q.reshape(-1, *self.grid))


class AutoencoderPart(nn.Module):
    """``autoencoder``: reconstruction → error map of the training loss (``losses.error_map``)."""

    def __init__(self, det):
        super().__init__()
        if det.net is None:
            raise ValueError("the autoencoder is not fitted")
        self.net = det.net.cpu().eval()
        self.loss = det.options.loss
        # ssim_map's window (7 px, sigma 1.5) as a constant: the traced one has no static shape
        self.register_buffer("window", _gaussian_window(7, 1.5, int(det.in_channels), "cpu", torch.float32))

    def _recon(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        h, w = x.shape[-2:]
        m = 2 ** net.levels
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        z = net.encoder(x)
        if not isinstance(net.bottleneck, nn.Identity):
            z = net.bottleneck(z).reshape(-1, *net.code_shape)  # -1: a dynamic batch
        return net.decoder(z)[..., :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        recon = self._recon(x)
        if self.loss == "mse":
            return ((x - recon) ** 2).mean(dim=1)
        if self.loss == "l1":
            return (x - recon).abs().mean(dim=1)
        dssim = ((1 - self._ssim(x, recon)) / 2).mean(dim=1)
        if self.loss == "ssim":
            return dssim
        return 0.5 * ((x - recon).abs().mean(dim=1) + dssim)  # l1+ssim

    def _ssim(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``losses.ssim_map`` with its window as a constant (the traced one has no static shape)."""
        return ssim_with_window(x, y, self.window[:x.shape[1]])


class MTPart(nn.Module):
    """``mt``: stats or pixel features → MD and its per-feature contributions → map, in float64
    (the detector's own arithmetic) after the input's float32 pooling. Outputs (maps, scores)."""

    def __init__(self, det, size, channels):
        super().__init__()
        from ..mt import _windows

        if det._space is None:
            raise ValueError("mt detector is not fitted")
        lay = det._layout
        H, W = size
        if det._make_layout(channels, H, W).size != lay.size:
            raise ValueError("mt needs the training image size")
        self.kind, self.bins, self.grid, self.C = lay.kind, lay.bins, list(lay.grid), lay.channels
        h, w = lay.size
        self.small = (h, w)
        self.down = pooler((H, W), (h, w))  # float32, as the detector's torch pooling
        dbl = torch.float64
        self.cells = []
        for i, g in enumerate(self.grid):
            gh, gw = lay._cells(g)
            r, c = _windows(h, gh), _windows(w, gw)
            self.register_buffer(f"pr{i}", torch.from_numpy(r / r.sum(1, keepdims=True)).to(dbl))  # (gh, h)
            self.register_buffer(f"pc{i}", torch.from_numpy((c / c.sum(1, keepdims=True)).T.copy()).to(dbl))  # (w, gw)
            area = r.sum(1)[:, None] * c.sum(1)[None, :]
            self.register_buffer(f"sr{i}", torch.from_numpy(r.T.copy()).to(dbl))  # (h, gh)
            self.register_buffer(f"sc{i}", torch.from_numpy(c).to(dbl))  # (gw, w)
            self.register_buffer(f"area{i}", torch.from_numpy(area).to(dbl))
            self.cells.append((gh, gw))
        sp = det._space
        cols = np.asarray(det._columns)
        self.all_columns = len(cols) == lay.dim and np.array_equal(cols, np.arange(lay.dim))
        self.register_buffer("cols", torch.from_numpy(cols.astype(np.int64)))
        self.dim = lay.dim
        self.register_buffer("mean", torch.from_numpy(sp["mean"]).to(dbl))
        self.register_buffer("std", torch.from_numpy(sp["std"]).to(dbl))
        self.register_buffer("V", torch.from_numpy(np.ascontiguousarray(sp["basis"])).to(dbl))
        self.register_buffer("VT", torch.from_numpy(np.ascontiguousarray(sp["basis"].T)).to(dbl))
        self.register_buffer("lam", torch.from_numpy(sp["lam"]).to(dbl))
        perp = float(np.asarray(sp["perp"]).reshape(-1)[0])
        self.perp = perp if np.isfinite(perp) else None
        self.scale = float(det._scale)
        self.d = len(cols)
        self.up = resizer((h, w), (H, W), antialias=False)

    def _features(self, a: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) float64 → (N, dim) float64 as ``_FeatureLayout.extract``."""
        if self.kind == "pixels":
            return a.flatten(1)
        grey = a.mean(dim=1)
        gp = F.pad(grey.unsqueeze(1), (1, 1, 1, 1), mode="replicate").squeeze(1)
        h, w = self.small
        # Sobel / 8 by shifted slices: gy = d/dy (rows), gx = d/dx (columns), as kizu's _sobel
        def s(dy, dx):
            return gp[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        gx = ((s(-1, 1) - s(-1, -1)) + 2 * (s(0, 1) - s(0, -1)) + (s(1, 1) - s(1, -1))) / 8.0
        gy = ((s(1, -1) - s(-1, -1)) + 2 * (s(1, 0) - s(-1, 0)) + (s(1, 1) - s(-1, 1))) / 8.0
        mag = torch.sqrt(gx * gx + gy * gy)
        # atan2(gy, gx) mod π == atan(gy / gx) mod π (gx = 0: ±π/2 → π/2; mag = 0 there anyway)
        theta = _atan64(gy / gx)
        theta = torch.where(gx == 0, torch.full_like(theta, math.pi / 2), theta)
        theta = torch.where(theta < 0, theta + math.pi, theta)
        pos = theta / math.pi * self.bins
        lo = torch.floor(pos)
        frac = pos - lo
        lo = torch.remainder(lo, self.bins)
        hi = torch.remainder(lo + 1, self.bins)
        hist = []
        for b in range(self.bins):
            wb = torch.where(lo == b, mag * (1 - frac), torch.zeros_like(mag)) + \
                torch.where(hi == b, mag * frac, torch.zeros_like(mag))
            hist.append(wb)
        hist = torch.stack(hist, dim=1)  # (N, bins, h, w)
        feats = []
        for i, _ in enumerate(self.grid):
            pr, pc = getattr(self, f"pr{i}"), getattr(self, f"pc{i}")
            mean = torch.matmul(torch.matmul(pr, a), pc)
            sq = torch.matmul(torch.matmul(pr, a * a), pc)
            std = torch.sqrt(torch.clamp_min(sq - mean * mean, 0.0))
            ori = torch.matmul(torch.matmul(pr, hist), pc)
            feats += [mean.flatten(1), std.flatten(1), ori.flatten(1)]
        return torch.cat(feats, dim=1)

    def _to_map(self, full: torch.Tensor) -> torch.Tensor:
        """(N, dim) contributions → (N, h, w) (``contributions_to_map``)."""
        h, w = self.small
        if self.kind == "pixels":
            return full.reshape(-1, self.C, h, w).sum(dim=1)
        out, pos = None, 0
        for i, (gh, gw) in enumerate(self.cells):
            k = (2 * self.C + self.bins) * gh * gw
            cells = full[:, pos:pos + k].reshape(-1, 2 * self.C + self.bins, gh, gw).sum(dim=1)
            pos += k
            part = torch.matmul(torch.matmul(getattr(self, f"sr{i}"), cells / getattr(self, f"area{i}")),
                                getattr(self, f"sc{i}"))
            out = part if out is None else out + part
        return out

    def forward(self, x: torch.Tensor):
        a = self.down(x).to(torch.float64)
        X = self._features(a)
        if not self.all_columns:
            X = X.index_select(1, self.cols)
        Z = (X - self.mean) / self.std
        t = torch.matmul(Z, self.V)
        rz = torch.matmul(t / self.lam, self.VT)
        if self.perp is not None:
            rz = rz + (Z - torch.matmul(t, self.VT)) / self.perp
        terms = Z * rz / self.d
        md = terms.sum(dim=1)
        terms = terms / self.scale
        full = terms if self.all_columns else _scatter_columns(terms, self.cols, self.dim)
        h, w = self.small
        small = (self._to_map(full) * (h * w)).to(torch.float32)
        maps = self.up(small.unsqueeze(1)).squeeze(1)
        return maps, md / self.scale


def _atan64(r: torch.Tensor) -> torch.Tensor:
    """``atan`` in float64 from ``Sqrt``/``Div``/``Mul``/``Add`` only (onnxruntime's ``Atan`` is
    float32-only): fold to |r| <= 1 (π/2 − atan(1/r)), halve the angle twice
    (atan x = 2 atan(x / (1 + √(1 + x²))), |x| <= tan(π/16)), then 12 odd Taylor terms (< 1e-17)."""
    a = r.abs()
    big = a > 1
    x = torch.where(big, 1.0 / a, a)  # r = ±inf → 0 → π/2
    for _ in range(2):
        x = x / (1.0 + torch.sqrt(1.0 + x * x))
    x2, term, total = x * x, x, x
    for k in range(1, 12):
        term = -term * x2
        total = total + term / (2 * k + 1)
    t = 4.0 * total
    t = torch.where(big, math.pi / 2 - t, t)
    return torch.where(r < 0, -t, t)


def _scatter_columns(terms: torch.Tensor, cols: torch.Tensor, dim: int) -> torch.Tensor:
    """(N, k) → (N, dim) with the k columns at ``cols`` and zeros elsewhere, as a MatMul with a
    constant 0/1 matrix (exportable whatever the batch size)."""
    sel = torch.zeros(len(cols), dim, dtype=terms.dtype)
    sel[torch.arange(len(cols)), cols] = 1.0
    return torch.matmul(terms, sel)


# -- export ------------------------------------------------------------------------------------
def tensor_module(detector, size: tuple[int, int], channels: int, *, memory_dtype: str = "float32") -> nn.Module:
    """The torch module of a fitted detector's tensor part (see the module docstring)."""
    name = detector.name
    size = (int(size[0]), int(size[1]))
    if name == "patch-knn":
        mod = PatchKNNPart(detector, size, channels, memory_dtype=memory_dtype)
    elif name == "patch-gaussian":
        mod = PatchGaussianPart(detector, size, channels)
    elif name == "autoencoder":
        mod = AutoencoderPart(detector)
    elif name == "mt":
        mod = MTPart(detector, size, channels)
    else:
        raise ValueError(f"no ONNX export for detector {name!r}")
    return mod.eval()


def queries_per_image(detector, size) -> int:
    """k-NN queries one image makes (grid cells), 0 for detectors without a memory search."""
    if detector.name != "patch-knn":
        return 0
    h, w = detector.features._grid(*size)
    return h * w
