"""Saliency maps and ROI masks for the ROI codec (seed: "ROI Image codec Optimized for Visual Quality").

Every saliency provider returns **logits** ``(N, 1, H, W)`` (the raw detection *before* the sigmoid of the
seed's Eq. 1); :func:`roi_masks` turns them into

* ``Mask_2D = σ(logits)``                                            (Eq. 1)
* ``RM_2D  = box51(Mask_2D)`` — an all-ones 51×51 convolution, normalised by the number of in-image
  pixels under the window (so it is a local mean, values stay in [0, 1], same size as the image)  (Eq. 2)
* ``RM_latent = AvgPool(RM_2D, kernel = stride = 16)``                 (Eq. 5)

Providers (``SALIENCY`` registry):

``spectral`` (default)
    OpenCV static saliency, spectral residual (Hou & Zhang 2007), from ``opencv-contrib``; no weights.
    Raw map ``s`` in [0, 1] is standardised over the image, ``logits = gain · (s − mean s) / std s``
    (``gain`` = 2 by default), so ``Mask_2D`` is ≈ 0.5 on average-saliency pixels, → 1 on salient ones.
``fine-grained``
    OpenCV static saliency, fine-grained (Montabone & Soto 2010); same normalisation.
``folder``
    User masks: ``<folder>/<image stem>.png`` (any image format; grey or RGB → mean of channels), values in
    [0, 1] read *as Mask_2D itself* (logits = logit(mask), so σ gives the mask back). Resized to the
    image when the size differs.
``torch``
    A user-provided PyTorch saliency network: a TorchScript file (``torch.jit.save``) mapping an ImageNet-
    normalised ``(N, 3, H, W)`` image to logits ``(N, 1, h, w)`` (upsampled bilinearly to H×W), or
    ``module:Class`` plus a ``state_dict`` file. The seed used GCPANet (Chen et al., AAAI 2020); its trained
    weights are not distributable with lossarena and are not on this machine — export them yourself and pass
    the file. A missing file raises :class:`~lossarena.errors.MissingWeightsError` (exit 3).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lossarena.errors import InputError, MissingWeightsError
from lossarena.registry import Registry

SMOOTH_KERNEL = 51  # seed 002 (the codec): RM_2D = 51×51 box; config field `smooth_kernel`
METRIC_SMOOTH_KERNEL = 50  # seeds 000/001 (ROI perceptual metric): 50×50; ROI-MLP's `smooth_kernel`
LATENT_STRIDE = 16

SALIENCY: Registry = Registry("saliency model")


class SaliencyProvider:
    """Base class: ``logits(x, names=None) -> (N, 1, H, W)`` for images ``x`` in [0, 1]."""

    name = "base"

    def logits(self, x: torch.Tensor, names: list[str] | None = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name}


def _standardise(s: np.ndarray, gain: float) -> np.ndarray:
    s = s.astype(np.float64)
    std = s.std()
    if not np.isfinite(std) or std < 1e-8:
        return np.zeros_like(s)
    return gain * (s - s.mean()) / std


class _OpenCVSaliency(SaliencyProvider):
    factory = ""

    def __init__(self, gain: float = 2.0):
        self.gain = float(gain)

    def describe(self) -> dict:
        return {"name": self.name, "gain": self.gain}

    def raw(self, img_bgr: np.ndarray) -> np.ndarray:
        import cv2

        algo = getattr(cv2.saliency, self.factory)()
        ok, m = algo.computeSaliency(img_bgr)
        if not ok:
            return np.zeros(img_bgr.shape[:2], np.float32)
        return np.asarray(m, dtype=np.float32)

    def logits(self, x: torch.Tensor, names: list[str] | None = None) -> torch.Tensor:
        out = []
        for img in x.detach().cpu():
            a = (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
            bgr = np.ascontiguousarray(a[..., ::-1])
            out.append(torch.from_numpy(_standardise(self.raw(bgr), self.gain)).float())
        return torch.stack(out)[:, None].to(x.device)


@SALIENCY.register("spectral", aliases=("spectral-residual", "opencv"))
class SpectralResidualSaliency(_OpenCVSaliency):
    name = "spectral"
    factory = "StaticSaliencySpectralResidual_create"


@SALIENCY.register("fine-grained", aliases=("finegrained", "fine"))
class FineGrainedSaliency(_OpenCVSaliency):
    name = "fine-grained"
    factory = "StaticSaliencyFineGrained_create"


def _logit(p: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


def load_mask_file(path: str | Path, size: tuple[int, int] | None = None) -> torch.Tensor:
    """A user mask file as ``(1, 1, H, W)`` float in [0, 1] (channel mean), resized to ``size`` if given."""
    from lossarena.data.images import load_image

    m = load_image(path).mean(1, keepdim=True)
    if size is not None and tuple(m.shape[-2:]) != tuple(size):
        m = F.interpolate(m, size=size, mode="bilinear", align_corners=False).clamp(0, 1)
    return m


@SALIENCY.register("folder", aliases=("masks",))
class FolderSaliency(SaliencyProvider):
    """Masks ``<folder>/<stem>.<ext>`` read as Mask_2D (values in [0, 1])."""

    name = "folder"

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"{self.folder}: mask folder does not exist")

    def describe(self) -> dict:
        return {"name": self.name, "folder": str(self.folder)}

    def find(self, stem: str) -> Path:
        from lossarena.data.images import IMAGE_SUFFIXES

        for suf in IMAGE_SUFFIXES:
            p = self.folder / f"{stem}{suf}"
            if p.is_file():
                return p
        raise InputError(f"{self.folder}: no mask for image '{stem}' (expected {stem}.png)")

    def logits(self, x: torch.Tensor, names: list[str] | None = None) -> torch.Tensor:
        if names is None or len(names) != x.shape[0]:
            raise InputError("folder saliency needs the image names (file stems) to find the masks")
        ms = [load_mask_file(self.find(Path(n).stem), tuple(x.shape[-2:])) for n in names]
        return _logit(torch.cat(ms)).to(x.device)


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@SALIENCY.register("torch", aliases=("network", "gcpanet"))
class TorchSaliency(SaliencyProvider):
    """A saliency network with user-provided weights (TorchScript file, or ``module:Class`` + state_dict).

    The network receives ImageNet-normalised RGB and must return logits ``(N, 1, h, w)`` (or a tuple whose
    first element is that, as GCPANet returns several side outputs). Weights are never downloaded.
    """

    name = "torch"

    def __init__(self, weights: str | Path, arch: str | None = None, normalize: bool = True, **arch_kwargs):
        self.weights = Path(weights)
        self.arch = arch
        self.normalize = bool(normalize)
        if not self.weights.is_file():
            raise MissingWeightsError(
                f"saliency network weights not found: {self.weights}. The seed's GCPANet weights are not "
                "distributable with lossarena; export your saliency network with torch.jit.save (or give "
                "arch='module:Class' and a state_dict) and pass its path"
            )
        if arch:
            mod, _, cls = arch.partition(":")
            try:
                net = getattr(importlib.import_module(mod), cls)(**arch_kwargs)
            except (ImportError, AttributeError) as e:
                raise InputError(f"saliency arch '{arch}': cannot import ({e})") from None
            state = torch.load(self.weights, map_location="cpu", weights_only=True)
            net.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
        else:
            try:
                net = torch.jit.load(str(self.weights), map_location="cpu")
            except RuntimeError as e:
                raise InputError(f"{self.weights}: not a TorchScript saliency network ({e})") from None
        self.net = net.eval()

    def describe(self) -> dict:
        return {"name": self.name, "weights": str(self.weights), "arch": self.arch}

    @torch.no_grad()
    def logits(self, x: torch.Tensor, names: list[str] | None = None) -> torch.Tensor:
        inp = x
        if self.normalize:
            mean = torch.tensor(_IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(_IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
            inp = (x - mean) / std
        self.net = self.net.to(x.device)  # the images' device (CUDA or CPU)
        out = self.net(inp)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if out.dim() == 3:
            out = out[:, None]
        if out.shape[1] != 1:
            raise InputError(f"{self.weights}: saliency network returned {out.shape[1]} channels, expected 1")
        if tuple(out.shape[-2:]) != tuple(x.shape[-2:]):
            out = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out.float()


def get_saliency(name: str = "spectral", **kwargs) -> SaliencyProvider:
    """An instance of saliency provider ``name`` (see the module docstring)."""
    return SALIENCY.get(name)(**kwargs)


def saliency_from_spec(spec: dict | str | None) -> SaliencyProvider:
    """From a config entry: ``"spectral"`` or ``{"name": "folder", "folder": "masks/"}``."""
    if spec is None:
        return get_saliency("spectral")
    if isinstance(spec, str):
        return get_saliency(spec)
    spec = dict(spec)
    name = spec.pop("name", "spectral")
    return get_saliency(name, **spec)


def box_smooth(m: torch.Tensor, k: int = SMOOTH_KERNEL) -> torch.Tensor:
    """All-ones ``k×k`` convolution normalised by the in-image pixel count: a local mean, same size.

    Parameters
    ----------
    m : torch.Tensor
        (N, C, H, W) map.
    k : int
        Window side (≥ 1). Odd ``k``: the window is centred, ``[i − k//2, i + k//2]``; even ``k`` (the ROI
        metric's 50): ``[i − k/2, i + k/2 − 1]`` (one more pixel before than after, as MATLAB's
        ``conv2(..., 'same')`` places an even kernel).

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``m``; computed in float64 via cumulative sums (O(HW), any ``k``).
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"expected a smoothing kernel size >= 1, got {k}")
    before, after = k // 2, k - k // 2  # window [i - before, i + after)

    def box1d(t: torch.Tensor, dim: int) -> torch.Tensor:
        n = t.shape[dim]
        shape = list(t.shape)
        shape[dim] = 1
        c = torch.cat([torch.zeros(shape, dtype=t.dtype, device=t.device), t.cumsum(dim)], dim=dim)
        idx = torch.arange(n, device=t.device)
        hi = (idx + after).clamp(max=n)
        lo = (idx - before).clamp(min=0)
        return c.index_select(dim, hi) - c.index_select(dim, lo)

    md = m.double()
    num = box1d(box1d(md, -1), -2)
    den = box1d(box1d(torch.ones_like(md[:1, :1]), -1), -2)
    return (num / den).to(m.dtype)


def mask2d_from_logits(logits: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logits)


def rm_2d(mask2d: torch.Tensor, k: int = SMOOTH_KERNEL) -> torch.Tensor:
    """RM_2D from Mask_2D (Eq. 2)."""
    return box_smooth(mask2d, k).clamp(0, 1)


def rm_latent(rm2d: torch.Tensor, stride: int = LATENT_STRIDE) -> torch.Tensor:
    """RM_latent = AvgPool(RM_2D) with kernel = stride = 16 (Eq. 5); ceil mode for sizes not divisible."""
    return F.avg_pool2d(rm2d, stride, stride=stride, ceil_mode=True)


def roi_masks(x: torch.Tensor, provider: SaliencyProvider | str | None = None, names: list[str] | None = None,
              mask2d: torch.Tensor | None = None, k: int = SMOOTH_KERNEL) -> dict[str, torch.Tensor]:
    """``{"mask2d", "rm2d", "rm_latent"}`` for images ``x`` (N, 3, H, W); ``mask2d`` given = user mask."""
    if mask2d is None:
        if not isinstance(provider, SaliencyProvider):
            provider = saliency_from_spec(provider)
        mask2d = mask2d_from_logits(provider.logits(x, names))
    if mask2d.dim() == 3:
        mask2d = mask2d[:, None]
    if tuple(mask2d.shape[-2:]) != tuple(x.shape[-2:]):
        raise InputError(f"mask size {tuple(mask2d.shape[-2:])} differs from image size {tuple(x.shape[-2:])}")
    mask2d = mask2d.to(x.device, x.dtype)
    rm = rm_2d(mask2d, k)
    return {"mask2d": mask2d, "rm2d": rm, "rm_latent": rm_latent(rm)}


def rm2d_for(x: torch.Tensor, saliency=None, names=None, mask_path=None, k: int = SMOOTH_KERNEL) -> torch.Tensor:
    """RM_2D (N, 1, H, W) for an image batch from a saliency spec, or from a user mask file (read as Mask_2D)."""
    if mask_path is not None:
        return rm_2d(load_mask_file(mask_path, tuple(x.shape[-2:])).to(x.device, x.dtype), k)
    return roi_masks(x, saliency, names=names, k=k)["rm2d"]
