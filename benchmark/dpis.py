"""DPIS: Learned Dual Perceptual Image Similarity (Liu, Sun, Lu, Li, Chen — CLIC 2021), the seed's method.

No public code exists; this follows the seed's text (``shared/papers/003_*``):

* **Gradient map** ``Grad(x)``: per RGB channel, the Sobel gradient magnitude
  ``sqrt(Gx² + Gy²) / 4`` (replicate padding; a unit step gives 1), a 3-channel image fed to the same
  backbones as the image itself.
* **D1** (DISTS-style, VGG16 with L2 pooling): at six stages (input, conv1_2, conv2_2, conv3_3,
  conv4_3, conv5_3 — their ReLU outputs; 1,475 channels) per channel texture
  ``t = (2 μx μy + c1)/(μx² + μy² + c1)`` and structure ``s = (2 σxy + c2)/(σx² + σy² + c2)``;
  learnable positive α (texture) and β (structure), normalised to sum 1, separate sets for the
  image pair and the gradient pair: ``S_img = Σ α t + β s`` and ``S_grad`` likewise. An FC layer
  with positive weights fuses them: ``D1 = w1 (1 − S_img) + w2 (1 − S_grad)``.
* **D2** (LPIPS-style, AlexNet conv1–conv5 ReLU outputs; 1,152 channels): unit-normalise features
  along channels, square the difference, scale channel-wise by a learnable positive ψ, average over
  space and sum over channels and layers: ``d_img`` and ``d_grad``; FC with positive weights:
  ``D2 = u1 d_img + u2 d_grad``.
* ``D = γ D1 + (1 − γ) D2`` with learnable ``γ = sigmoid(g)``. Positive fusion weights keep ``D`` a
  distance (0 for identical images); the FC layers have no bias since a constant cannot change a
  ranking.
* **Training** (:func:`train_dpis`): BCE through a small judge network as in LPIPS (input
  ``d_a, d_b, d_a − d_b, d_a/(d_b+ε), d_b/(d_a+ε)``, two hidden layers of 32 with LeakyReLU(0.2),
  output the probability that A is closer; target ``p_a``) on 2AFC triplets, random 224×224 crops
  (the same crop for the three images; smaller images are used whole). Backbones stay frozen: the
  learnable parameters are α, β, ψ, the FC weights, γ and the judge.
* **Test time**: the distance is averaged over 224×224 patches that tile the image (the last row and
  column aligned to the border); smaller images are scored whole.

The metric ``dpis`` (lower is better; registered by :func:`register`, which
:func:`lossarena.benchmark.register_learned_metrics` calls) needs the ImageNet VGG16 and AlexNet
backbones (through :mod:`lossarena.metrics.weights`) **and** a trained DPIS checkpoint: the metric
option ``checkpoint`` (``-m dpis:checkpoint=FILE``, CLI ``--dpis-checkpoint``), else
``$LOSSARENA_DPIS_CHECKPOINT``, else ``$XDG_CACHE_HOME/lossarena/dpis.pt`` (default
``~/.cache/lossarena/dpis.pt``). Without one it raises :class:`~lossarena.errors.MissingWeightsError`
(exit 3) saying how to train one. Nothing is a module-level setting.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lossarena.errors import InputError, MissingWeightsError
from lossarena.metrics import METRICS, MetricOption, MetricSpec, register_metric, validate_images
from lossarena.metrics import weights as W
from lossarena.metrics.deep import VGG16Trunk

from . import common

_log = logging.getLogger(__name__)

CHECKPOINT_ENV = "LOSSARENA_DPIS_CHECKPOINT"
FORMAT = "lossarena-dpis"
VGG_CHANNELS = VGG16Trunk.CHANNELS
ALEX_CHANNELS = (64, 192, 384, 256, 256)
PATCH = 224
MIN_SIZE = 32
_ALEX_CUTS = [(0, 2), (2, 5), (5, 8), (8, 10), (10, 12)]


# ---------------------------------------------------------------------------------------------
# fixed parts: gradient map and backbones


def gradient_map(x: torch.Tensor) -> torch.Tensor:
    """Per-channel Sobel gradient magnitude / 4 (a unit step gives 1), same size as ``x``."""
    kx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], device=x.device, dtype=x.dtype)
    k = torch.stack([kx, kx.t()])[:, None]  # (2, 1, 3, 3)
    n, c, h, w = x.shape
    xp = F.pad(x.reshape(n * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
    g = F.conv2d(xp, k)
    mag = (g.pow(2).sum(1, keepdim=True) + 1e-12).sqrt() / 4.0
    return mag.reshape(n, c, h, w)


class _Frozen(nn.Module):
    def train(self, mode: bool = True):
        return super().train(False)


class AlexStages(_Frozen):
    """AlexNet conv1–conv5 ReLU outputs (torchvision's ``features`` layout)."""

    def __init__(self, state: dict):
        super().__init__()
        seq = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
        )
        fstate = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        seq.load_state_dict(fstate, strict=True)
        self.stages = nn.ModuleList(nn.Sequential(*list(seq)[a:b]) for a, b in _ALEX_CUTS)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x - self.mean) / self.std
        out = []
        for st in self.stages:
            h = st(h)
            out.append(h)
        return out


def _unit(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    norm = f.pow(2).sum(dim=1, keepdim=True).clamp_min(eps * eps).sqrt()
    return f / (norm + eps)


def _dists_terms(fx: list[torch.Tensor], fy: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel texture and structure similarity, each (N, 1475)."""
    c1 = c2 = 1e-6
    ts, ss = [], []
    for a, b in zip(fx, fy):
        ma, mb = a.mean(dim=(2, 3)), b.mean(dim=(2, 3))
        va = (a - ma[..., None, None]).pow(2).mean(dim=(2, 3))
        vb = (b - mb[..., None, None]).pow(2).mean(dim=(2, 3))
        cov = (a * b).mean(dim=(2, 3)) - ma * mb
        ts.append((2 * ma * mb + c1) / (ma * ma + mb * mb + c1))
        ss.append((2 * cov + c2) / (va + vb + c2))
    return torch.cat(ts, 1), torch.cat(ss, 1)


def _lpips_terms(fx: list[torch.Tensor], fy: list[torch.Tensor]) -> torch.Tensor:
    """Per-channel spatial mean of the squared unit-normalised feature difference, (N, 1152)."""
    return torch.cat([(_unit(a) - _unit(b)).pow(2).mean(dim=(2, 3)) for a, b in zip(fx, fy)], 1)


class Backbones(_Frozen):
    def __init__(self):
        super().__init__()
        vgg = W.load_backbone_state("vgg16")
        alex = W.load_backbone_state("alexnet")
        W.warn_standin("vgg16")
        W.warn_standin("alexnet")
        self.vgg = VGG16Trunk(vgg)  # the VGG16 + L2-pooling trunk shared with DISTS
        self.alex = AlexStages(alex)

    def stats(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything the learnable head needs, for distorted ``x`` and reference ``y``."""
        gx, gy = gradient_map(x), gradient_map(y)
        t_img, s_img = _dists_terms(self.vgg(x), self.vgg(y))
        t_grad, s_grad = _dists_terms(self.vgg(gx), self.vgg(gy))
        m_img = _lpips_terms(self.alex(x), self.alex(y))
        m_grad = _lpips_terms(self.alex(gx), self.alex(gy))
        return {"t_img": t_img, "s_img": s_img, "t_grad": t_grad, "s_grad": s_grad,
                "m_img": m_img, "m_grad": m_grad}

    def stats_triplet(self, a: torch.Tensor, b: torch.Tensor, ref: torch.Tensor) -> dict[str, torch.Tensor]:
        """``stats(cat([a, b]), cat([ref, ref]))`` with the reference's features computed once."""
        x = torch.cat([a, b])
        gx, gr = gradient_map(x), gradient_map(ref)

        def twice(fs):
            return [torch.cat([f, f]) for f in fs]

        t_img, s_img = _dists_terms(self.vgg(x), twice(self.vgg(ref)))
        t_grad, s_grad = _dists_terms(self.vgg(gx), twice(self.vgg(gr)))
        m_img = _lpips_terms(self.alex(x), twice(self.alex(ref)))
        m_grad = _lpips_terms(self.alex(gx), twice(self.alex(gr)))
        return {"t_img": t_img, "s_img": s_img, "t_grad": t_grad, "s_grad": s_grad,
                "m_img": m_img, "m_grad": m_grad}


# ---------------------------------------------------------------------------------------------
# learnable parts


def _inv_softplus(v: float) -> float:
    return math.log(math.expm1(v))


class DPISHead(nn.Module):
    """α, β (image and gradient), ψ (image and gradient), the two FC fusions and γ.

    ``gradient_branch=False`` drops the gradient-map terms (``D1 = w1·(1 − S_img)``, ``D2 = u1·d_img``);
    ``d2=False`` drops D2 (``D = D1``). Both exist for ablations; the seed's DPIS has both (defaults).
    """

    def __init__(self, gradient_branch: bool = True, d2: bool = True):
        super().__init__()
        self.gradient_branch, self.use_d2 = bool(gradient_branch), bool(d2)
        cv, ca = sum(VGG_CHANNELS), sum(ALEX_CHANNELS)
        g = torch.Generator().manual_seed(0)
        init = _inv_softplus(0.1)
        self.alpha = nn.Parameter(init + 0.01 * torch.randn(2, cv, generator=g))  # [img, grad]
        self.beta = nn.Parameter(init + 0.01 * torch.randn(2, cv, generator=g))
        self.psi = nn.Parameter(torch.full((2, ca), _inv_softplus(1.0 / len(ALEX_CHANNELS))))
        self.fc1 = nn.Parameter(torch.full((2,), _inv_softplus(0.5)))
        self.fc2 = nn.Parameter(torch.full((2,), _inv_softplus(0.5)))
        self.gamma = nn.Parameter(torch.zeros(()))

    def parts(self, st: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        a, b = F.softplus(self.alpha), F.softplus(self.beta)
        tot = a.sum(1, keepdim=True) + b.sum(1, keepdim=True)
        a, b = a / tot, b / tot
        s_img = (st["t_img"] * a[0]).sum(1) + (st["s_img"] * b[0]).sum(1)
        s_grad = (st["t_grad"] * a[1]).sum(1) + (st["s_grad"] * b[1]).sum(1)
        psi = F.softplus(self.psi)
        d_img = (st["m_img"] * psi[0]).sum(1)
        d_grad = (st["m_grad"] * psi[1]).sum(1)
        w1, w2 = F.softplus(self.fc1), F.softplus(self.fc2)
        if self.gradient_branch:
            d1 = w1[0] * (1 - s_img) + w1[1] * (1 - s_grad)
            d2 = w2[0] * d_img + w2[1] * d_grad
        else:
            d1, d2 = w1[0] * (1 - s_img), w2[0] * d_img
        g = torch.sigmoid(self.gamma) if self.use_d2 else torch.ones_like(self.gamma)
        return {"s_img": s_img, "s_grad": s_grad, "d_img": d_img, "d_grad": d_grad, "d1": d1, "d2": d2,
                "d": g * d1 + (1 - g) * d2}

    def forward(self, st: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.parts(st)["d"]


class Judge(nn.Module):
    """LPIPS-style judge: (d_a, d_b) -> logit of P(A judged closer)."""

    def __init__(self, hidden: int = 32, eps: float = 0.1):
        super().__init__()
        self.eps = eps
        self.net = nn.Sequential(nn.Linear(5, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, d_a: torch.Tensor, d_b: torch.Tensor) -> torch.Tensor:
        f = torch.stack([d_a, d_b, d_a - d_b, d_a / (d_b + self.eps), d_b / (d_a + self.eps)], 1)
        return self.net(f).squeeze(1)


def tile_positions(size: int, patch: int) -> list[int]:
    if size <= patch:
        return [0]
    pos = list(range(0, size - patch + 1, patch))
    if pos[-1] != size - patch:
        pos.append(size - patch)
    return pos


class DPIS(nn.Module):
    """The DPIS distance, ``forward(x_distorted, y_reference) -> (N,)``, averaged over patches."""

    def __init__(self, head: DPISHead | None = None, patch: int = PATCH, chunk: int = 8):
        super().__init__()
        self.backbones = Backbones()
        self.head = head or DPISHead()
        self.patch = patch
        self.chunk = chunk

    def stats(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.backbones.stats(x, y)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        validate_images(x, y, name="dpis", min_size=MIN_SIZE)
        n, _, h, w = x.shape
        p = self.patch
        tiles = [(i, j) for i in tile_positions(h, p) for j in tile_positions(w, p)]
        ph, pw = min(p, h), min(p, w)
        xs = torch.stack([x[..., i:i + ph, j:j + pw] for i, j in tiles], 1).reshape(-1, 3, ph, pw)
        ys = torch.stack([y[..., i:i + ph, j:j + pw] for i, j in tiles], 1).reshape(-1, 3, ph, pw)
        ds = [self.head(self.stats(xs[k:k + self.chunk], ys[k:k + self.chunk]))
              for k in range(0, xs.shape[0], self.chunk)]
        return torch.cat(ds).reshape(n, len(tiles)).mean(1)


# ---------------------------------------------------------------------------------------------
# checkpoints


def default_checkpoint() -> Path:
    """``$LOSSARENA_DPIS_CHECKPOINT``, else ``$XDG_CACHE_HOME/lossarena/dpis.pt`` (used when none is given)."""
    return common.default_checkpoint(CHECKPOINT_ENV, "dpis.pt")


def require_checkpoint(path: str | Path | None = None) -> Path:
    """``path`` (or the default) if it exists; :class:`MissingWeightsError` (exit 3) otherwise."""
    p = Path(path) if path else default_checkpoint()
    if not p.is_file():
        raise MissingWeightsError(
            f"DPIS needs a trained DPIS checkpoint; none at {p}. Train one with `lossarena benchmark train-dpis "
            f"--bapps DIR --pieapp DIR --out {p}` (the seed's data) or `--triplets TRIPLETS.csv --images DIR`, "
            f"then pass --dpis-checkpoint FILE (-m dpis:checkpoint=FILE) or set {CHECKPOINT_ENV}=FILE"
        )
    return p


def save_checkpoint(head: DPISHead, judge: Judge, path: str | Path, *, config: dict, history: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    backbones = {n: W.backbone_status(n).state for n in ("vgg16", "alexnet")}
    torch.save({"format": FORMAT, "version": 1, "head": head.state_dict(), "judge": judge.state_dict(),
                "config": config, "history": history, "backbones": backbones}, path)
    return path


def load_checkpoint(path: str | Path) -> tuple[DPISHead, Judge, dict]:
    path = Path(path)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as e:
        raise InputError(f"{path}: not a readable DPIS checkpoint ({e})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise InputError(f"{path}: not a DPIS checkpoint (format {ck.get('format') if isinstance(ck, dict) else '?'})")
    cfg = ck.get("config") or {}
    head, judge = DPISHead(cfg.get("gradient_branch", True), cfg.get("d2", True)), Judge()
    head.load_state_dict(ck["head"])
    judge.load_state_dict(ck["judge"])
    return head, judge, ck


_NET_CACHE: dict[tuple, DPIS] = {}


def load_dpis(path: str | Path | None = None, device=None, dtype=torch.float32) -> DPIS:
    """The DPIS network of checkpoint ``path`` (default: :func:`default_checkpoint`), frozen, cached."""
    for b in ("vgg16", "alexnet"):
        W.require_backbone(b)
    path = require_checkpoint(path)
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size, str(device), dtype)
    net = _NET_CACHE.get(key)
    if net is None:
        head, _, ck = load_checkpoint(path)
        net = DPIS(head, patch=int(ck.get("config", {}).get("patch", PATCH))).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        net = net.to(device=device or "cpu", dtype=dtype)
        _NET_CACHE.clear()
        _NET_CACHE[key] = net
    return net


def dpis(x: torch.Tensor, y: torch.Tensor, checkpoint: str | Path | None = None) -> torch.Tensor:
    """DPIS distance of distorted ``x`` to reference ``y``.

    Parameters
    ----------
    x, y : torch.Tensor
        Distorted and reference images, float RGB (N, 3, H, W) in [0, 1], H, W ≥ 32.
    checkpoint : str or Path, optional
        Trained DPIS checkpoint (default :func:`default_checkpoint`).

    Returns
    -------
    torch.Tensor
        (N,), lower is better, 0 for identical images.

    Raises
    ------
    MissingWeightsError
        Backbones or the DPIS checkpoint missing (exit 3).
    """
    validate_images(x, y, name="dpis", min_size=MIN_SIZE)
    return load_dpis(checkpoint or None, device=x.device, dtype=x.dtype)(x, y)


class DPISMetric(nn.Module):
    """``nn.Module`` form of :func:`dpis` (``reduction`` none/mean/sum)."""

    def __init__(self, reduction: str = "none", checkpoint: str | Path | None = None):
        super().__init__()
        self.net = load_dpis(checkpoint or None)
        self.reduction = reduction

    def forward(self, x, y):
        v = self.net(x, y)
        return v.mean() if self.reduction == "mean" else v.sum() if self.reduction == "sum" else v


_CITE = ("J. Liu, S. Sun, Y. Lu, X. Li, Z. Chen. Learned Dual Perceptual Image Similarity for Compressed Image. "
         "CLIC workshop (CVPR) 2021")

def register() -> None:
    """Register the ``dpis`` metric (option ``checkpoint``) in the metric registry; idempotent.

    Called by :func:`lossarena.benchmark.register_learned_metrics`, never on import.
    """
    if "dpis" in METRICS:
        return
    register_metric(MetricSpec(
        name="dpis", lower_better=True, differentiable=True, citation=_CITE, function=dpis,
        module=DPISMetric, needs_weights=("vgg16", "alexnet"), min_size=MIN_SIZE, best_value=0.0,
        description="DPIS: VGG16 structure/texture + AlexNet l2 on image and gradient maps, trained on 2AFC "
                    "(needs a checkpoint from `lossarena benchmark train-dpis`)",
        options=(MetricOption("checkpoint", str, "", "trained DPIS checkpoint (default: "
                                                     f"${CHECKPOINT_ENV} or ~/.cache/lossarena/dpis.pt)"),),
    ))


# ---------------------------------------------------------------------------------------------
# training


@dataclasses.dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 8
    lr: float = 1e-3
    crop: int = PATCH
    patch: int = PATCH
    seed: int = 0
    max_triplets: int | None = None
    cache_stats: int = 4096  # triplets whose whole-image features are kept between epochs
    gradient_branch: bool = True  # ablation: False drops the gradient-map terms
    d2: bool = True  # ablation: False drops D2 (D = D1)


def _random_crops(ref, a, b, crop: int, gen: torch.Generator):
    h, w = ref.shape[-2:]
    ch, cw = min(crop, h), min(crop, w)
    i = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
    j = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
    return tuple(t[..., i:i + ch, j:j + cw] for t in (ref, a, b)) + ((ch, cw) == (h, w),)


def train_dpis(triplets, images_dir, out, config: TrainConfig | None = None, *, progress: bool = True,
               log=None) -> dict:
    """Train DPIS's learnable parts on 2AFC triplets (BCE through the judge); save to ``out``.

    Returns the history: per epoch the mean BCE loss and the 2AFC training accuracy of ``D``.
    """
    from lossarena.data.images import load_image
    from lossarena.data.triplets import read_triplets, validate_triplets
    from tqdm.auto import tqdm

    cfg = config or TrainConfig()
    df = validate_triplets(triplets) if hasattr(triplets, "columns") else read_triplets(triplets)
    if cfg.max_triplets:
        df = df.iloc[: cfg.max_triplets]
    images_dir = Path(images_dir)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    net = DPIS(DPISHead(cfg.gradient_branch, cfg.d2), patch=cfg.patch)
    head, judge = net.head, Judge()
    params = list(head.parameters()) + list(judge.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr)
    cache: dict[str, torch.Tensor] = {}
    stat_cache: dict[int, tuple[dict, dict]] = {}

    def whole(c) -> bool:  # the crop is the whole image: its features are the same every epoch
        return bool(c[3])

    def img(rel: str) -> torch.Tensor:
        if rel not in cache:
            if len(cache) > 512:
                cache.clear()
            cache[rel] = load_image(images_dir / rel)
        return cache[rel]

    p_all = torch.tensor(df["p_a"].to_numpy(), dtype=torch.float32)
    history = {"loss": [], "accuracy": [], "score_2afc": []}
    n = len(df)
    t0 = time.time()
    for ep in range(cfg.epochs):
        order = torch.randperm(n, generator=gen).tolist()
        losses, correct, score = [], 0.0, 0.0
        bar = tqdm(range(0, n, cfg.batch_size), desc=f"dpis epoch {ep + 1}/{cfg.epochs}", disable=not progress,
                   file=sys.stderr, leave=False)
        for s in bar:
            idx = order[s:s + cfg.batch_size]
            crops = [_random_crops(img(df["reference"].iat[i]), img(df["a"].iat[i]), img(df["b"].iat[i]),
                                   cfg.crop, gen) for i in idx]
            shapes = {c[0].shape for c in crops}
            groups = [[k for k, c in enumerate(crops) if c[0].shape == sh] for sh in shapes]
            for g in groups:
                p = p_all[[idx[k] for k in g]]
                need = [k for k in g if idx[k] not in stat_cache]
                if need:
                    ref = torch.cat([crops[k][0] for k in need])
                    a = torch.cat([crops[k][1] for k in need])
                    b = torch.cat([crops[k][2] for k in need])
                    with torch.no_grad():  # backbones are frozen: features need no graph
                        st_new = net.backbones.stats_triplet(a, b, ref)
                    m = len(need)
                    fresh = {k: ({n_: v[j] for n_, v in st_new.items()}, {n_: v[m + j] for n_, v in st_new.items()})
                             for j, k in enumerate(need)}
                    for k in need:
                        if whole(crops[k]) and len(stat_cache) < cfg.cache_stats:
                            stat_cache[idx[k]] = fresh[k]
                else:
                    fresh = {}
                rows = [fresh[k] if k in fresh else stat_cache[idx[k]] for k in g]
                st = {n_: torch.stack([r[0][n_] for r in rows] + [r[1][n_] for r in rows]) for n_ in rows[0][0]}
                d = head(st)
                d_a, d_b = d[: len(g)], d[len(g):]
                logit = judge(d_a, d_b)
                loss = F.binary_cross_entropy_with_logits(logit, p)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item() * len(g))
                pref = torch.where(d_a < d_b, 1.0, torch.where(d_a > d_b, 0.0, 0.5))
                lab = torch.where(p > 0.5, 1.0, torch.where(p < 0.5, 0.0, 0.5))
                correct += float((pref * lab + (1 - pref) * (1 - lab)).sum())
                score += float((pref * p + (1 - pref) * (1 - p)).sum())
            bar.set_postfix(loss=f"{np.sum(losses) / max(1, s + len(idx)):.4f}")
        history["loss"].append(float(np.sum(losses) / n))
        history["accuracy"].append(correct / n)
        history["score_2afc"].append(score / n)
        msg = (f"epoch {ep + 1}/{cfg.epochs}: BCE {history['loss'][-1]:.4f}, train accuracy "
               f"{history['accuracy'][-1]:.3f}, 2AFC {history['score_2afc'][-1]:.3f} ({time.time() - t0:.0f} s)")
        if log is not None:
            print(msg, file=log)
        else:
            _log.info(msg)
    save_checkpoint(head, judge, out, config=dataclasses.asdict(cfg), history=history)
    return history


# ---------------------------------------------------------------------------------------------
# the seed's training data: BAPPS 2AFC train + PieAPP train, as their official downloads unpack


def seed_triplets(bapps: str | Path, pieapp: str | Path, out_csv: str | Path | None = None):
    """Triplets of BAPPS's 2AFC training set and PieAPP's training set, image paths relative to one root.

    Parameters
    ----------
    bapps : str or Path
        BAPPS as ``scripts/download_dataset.sh`` unpacks it: ``dataset/2afc`` (its ``train/`` is used) or
        ``dataset/2afc/train`` itself, holding ``{traditional,cnn,mix}/{ref,p0,p1,judge}/``.
    pieapp : str or Path
        The PieAPP dataset folder (``PieAPPv0.1``) with ``reference_images/train/``,
        ``distorted_images/train/<ref stem>/`` and ``labels/train/*_pairwise_labels.csv``.
    out_csv : str or Path, optional
        Where to write the combined triplets (canonical ``reference,a,b,p_a``).

    Returns
    -------
    (DataFrame, Path)
        The triplets (BAPPS first) and the folder their paths are relative to.
    """
    import pandas as pd
    from lossarena.data.triplets import (
        bapps_to_triplets,
        pieapp_to_triplets,
        validate_triplets,
        write_triplets,
    )

    bapps, pieapp = Path(bapps), Path(pieapp)
    for p, what in ((bapps, "--bapps"), (pieapp, "--pieapp")):
        if not p.is_dir():
            raise InputError(f"{what} {p}: not a folder")
    if (bapps / "train").is_dir():
        bapps = bapps / "train"
    root = Path(os.path.commonpath([bapps.resolve(), pieapp.resolve()]))
    df = pd.concat([bapps_to_triplets(bapps, images_root=root),
                    pieapp_to_triplets(pieapp, "train", images_root=root)], ignore_index=True)
    df = validate_triplets(df)
    if out_csv is not None:
        write_triplets(df, out_csv)
    return df, root


def train_dpis_seed(bapps, pieapp, out, config: TrainConfig | None = None, *, progress: bool = True) -> dict:
    """Train DPIS as the seed does, on BAPPS + PieAPP (see :func:`seed_triplets`); writes ``out`` and the
    triplets used beside it (``<out>.triplets.csv``). Returns the training history."""
    out = Path(out)
    df, root = seed_triplets(bapps, pieapp, out.with_suffix(".triplets.csv"))
    _log.info("DPIS: %d triplets (BAPPS 2AFC train + PieAPP train) under %s", len(df), root)
    return train_dpis(df, root, out, config, progress=progress)
