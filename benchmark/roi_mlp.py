"""ROI-MLP (Ma, Zhai, Yang, Yang, Wang — "ROI Perceptual Metric", CLIC 2022): a 2AFC predictor.

No public code exists; this follows the seed's text (``shared/papers/000_*``, ``001_*``).

For each of the two distorted images X ∈ {A, B} against the reference R, four per-pixel loss maps L:

* ``MSE``: squared error, mean over RGB;
* ``MS-SSIM``: ``1 − MS-SSIM`` as a per-pixel map (our own: Gaussian 11×11, σ = 1.5, RGB; each scale's
  contrast-structure map — luminance too at the coarsest — upsampled to full size and combined with
  the standard exponents; up to 5 scales, fewer when the image is small, e.g. 3 on 64×64 patches);
* ``LPIPS``: LPIPS-Alex's spatial map (the v0.1 heads per layer, upsampled and summed). If the AlexNet
  backbone is missing, a **weight-free substitute** is used instead and announced loudly: ``1 − GMS``,
  the gradient-magnitude similarity map of GMSD (Xue et al. 2014, c = 0.0026 on [0, 1] luma);
* ``D-loss``: the ROI codec's conditional discriminator on X given R (``-log σ(logit)`` per patch,
  upsampled), via ``lossarena.codecs.roi.codec.discriminator_score`` (``--roi-checkpoint``, a stage-2
  ROI codec). Without a ROI codec checkpoint the D-loss inputs are **zero** (stated in the
  checkpoint and on stderr).

Inputs: basic ``mean(L)`` and ROI ``mean(L ⊗ RM_2D)``, with ``RM_2D`` from the saliency registry of the
ROI codec (``lossarena.codecs.roi.saliency``: σ(saliency) smoothed by a 51×51 box, computed on the
reference). The 16-vector is ordered as the seed's Figure 1: ``[A basic ×4, B basic ×4, A ROI ×4,
B ROI ×4]``; **BASIC** uses the first 8. MLP hidden sizes {192, 64, 64, 32}, ReLU, 2-way output
(class 0 = A better), cross-entropy against ``(p_a, 1 − p_a)``, Adam; inputs standardised with the
training set's mean and standard deviation; every triplet is also used with A and B swapped.

Registered 2AFC predictors ``roi-mlp`` and ``roi-mlp-basic`` share one checkpoint
(``lossarena benchmark train-roi-mlp``), found via :func:`set_checkpoint` (``--roi-mlp-checkpoint``),
``$LOSSARENA_ROI_MLP_CHECKPOINT``, or ``$XDG_CACHE_HOME/lossarena/roi_mlp.pt``.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import sys
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lossarena.errors import InputError, MissingWeightsError

from .predictors import PREDICTORS, PredictorSpec, register_predictor

CHECKPOINT_ENV = "LOSSARENA_ROI_MLP_CHECKPOINT"
FORMAT = "lossarena-roi-mlp"
FEATURES = ("mse", "ms-ssim", "lpips", "d-loss")
HIDDEN = (192, 64, 64, 32)
_MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def feature_names() -> list[str]:
    out = []
    for kind in ("", "roi-"):
        for side in ("A", "B"):
            out += [f"{side}:{kind}{f}" for f in FEATURES]
    return out


# ---------------------------------------------------------------------------------------------
# loss maps


def _gauss(x: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    r = torch.arange(size, dtype=x.dtype, device=x.device) - size // 2
    g = torch.exp(-r * r / (2 * sigma * sigma))
    g = g / g.sum()
    c = x.shape[1]
    k = size // 2
    xp = F.pad(x, (k, k, k, k), mode="reflect")
    xp = F.conv2d(xp, g.view(1, 1, 1, size).expand(c, 1, 1, size), groups=c)
    return F.conv2d(xp, g.view(1, 1, size, 1).expand(c, 1, size, 1), groups=c)


def msssim_map(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel MS-SSIM map (N, 1, H, W) in [0, 1] (see the module docstring)."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    h, w = x.shape[-2:]
    scales = max(1, min(5, int(math.floor(math.log2(min(h, w) / 11.0))) + 1))
    wts = torch.tensor(_MS_WEIGHTS[:scales], dtype=x.dtype)
    wts = wts / wts.sum()
    out = torch.ones(x.shape[0], 1, h, w, dtype=x.dtype, device=x.device)
    for j in range(scales):
        if min(x.shape[-2:]) < 11:
            break
        mx, my = _gauss(x), _gauss(y)
        sxx = _gauss(x * x) - mx * mx
        syy = _gauss(y * y) - my * my
        sxy = _gauss(x * y) - mx * my
        cs = (2 * sxy + c2) / (sxx + syy + c2)
        m = cs if j < scales - 1 else cs * (2 * mx * my + c1) / (mx * mx + my * my + c1)
        m = m.mean(1, keepdim=True).clamp_min(0)
        if m.shape[-2:] != (h, w):
            m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
        out = out * m.clamp_min(1e-8).pow(float(wts[j]))
        x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return out


def gms_map(x: torch.Tensor, y: torch.Tensor, c: float = 0.0026) -> torch.Tensor:
    """Gradient-magnitude similarity (GMSD's GMS map) on luma, (N, 1, H, W), 1 for identical images."""
    wy = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    lx, ly = (x * wy).sum(1, keepdim=True), (y * wy).sum(1, keepdim=True)
    k = torch.tensor([[1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, -1.0]], dtype=x.dtype, device=x.device) / 3
    kk = torch.stack([k, k.t()])[:, None]

    def mag(t):
        g = F.conv2d(F.pad(t, (1, 1, 1, 1), mode="replicate"), kk)
        return (g.pow(2).sum(1, keepdim=True) + 1e-12).sqrt()

    gx, gy = mag(lx), mag(ly)
    return (2 * gx * gy + c) / (gx * gx + gy * gy + c)


class LpipsMap:
    """LPIPS-Alex spatial map from the registry's LPIPS network (v0.1 heads)."""

    def __init__(self):
        from lossarena.metrics.deep import LPIPS

        self.net = LPIPS("alex")

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from lossarena.metrics.deep import _safe_unit

        net = self.net
        fx = net.trunk(net.scaling(2.0 * x - 1.0))
        fy = net.trunk(net.scaling(2.0 * y - 1.0))
        h, w = x.shape[-2:]
        total = x.new_zeros(x.shape[0], 1, h, w)
        for lin, a, b in zip(net.lins, fx, fy):
            d = lin((_safe_unit(a) - _safe_unit(b)).pow(2))
            total = total + F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False)
        return total


def find_discriminator_score():
    """The ROI codec's ``discriminator_score(ckpt_or_model, x, x_hat)``, wherever it lives."""
    for mod in ("lossarena.codecs.roi.codec", "lossarena.codecs.roi.model", "lossarena.codecs.roi.train"):
        try:
            m = importlib.import_module(mod)
        except ImportError:
            continue
        fn = getattr(m, "discriminator_score", None)
        if fn is not None:
            return fn
    raise InputError("the ROI codec's discriminator_score() was not found in lossarena.codecs; "
                     "train ROI-MLP without --roi-checkpoint (D-loss inputs then are zero)")


class FeatureExtractor:
    """The 16 ROI-MLP inputs for a batch of triplets."""

    def __init__(self, *, lpips: str = "auto", saliency: str = "spectral", roi_checkpoint: str | None = None,
                 loud: bool = True):
        from lossarena.metrics import weights as W

        if lpips == "auto":
            lpips = "lpips-alex" if W.backbone_status("alexnet").ok else "gms"
            if lpips == "gms" and loud:
                msg = ("ROI-MLP: AlexNet backbone missing -> the LPIPS inputs are REPLACED by the weight-free "
                       "1 - GMS map (GMSD's gradient-magnitude similarity); numbers are not the seed's method. "
                       "Run `lossarena weights download` for real LPIPS.")
                print("*** " + msg + " ***", file=sys.stderr)
                warnings.warn(msg, stacklevel=2)
        self.lpips_kind = lpips
        self.lpips = LpipsMap() if lpips == "lpips-alex" else None
        self.saliency = saliency
        from lossarena.codecs.roi.saliency import get_saliency

        self._sal = get_saliency(saliency)
        self.roi_checkpoint = str(Path(roi_checkpoint).resolve()) if roi_checkpoint else None
        self._disc = None
        if roi_checkpoint:
            if not Path(roi_checkpoint).is_file():
                raise MissingWeightsError(f"ROI codec checkpoint not found: {roi_checkpoint} (needed for D-loss)")
            self._disc = find_discriminator_score()
        elif loud:
            print("ROI-MLP: no --roi-checkpoint: the discriminator-loss inputs are set to zero", file=sys.stderr)

    def describe(self) -> dict:
        return {"lpips": self.lpips_kind, "saliency": self.saliency, "roi_checkpoint": self.roi_checkpoint,
                "d_loss": "discriminator" if self._disc else "zero"}

    def rm2d(self, ref: torch.Tensor) -> torch.Tensor:
        from lossarena.codecs.roi.saliency import roi_masks

        return roi_masks(ref, self._sal)["rm2d"]

    def maps(self, x: torch.Tensor, ref: torch.Tensor) -> list[torch.Tensor]:
        """Per-pixel MSE, 1 − MS-SSIM and LPIPS (or 1 − GMS) maps, each (N, 1, H, W)."""
        m_mse = (x - ref).pow(2).mean(1, keepdim=True)
        m_ms = 1.0 - msssim_map(x, ref)
        m_lp = self.lpips(x, ref) if self.lpips is not None else 1.0 - gms_map(x, ref)
        return [m_mse, m_ms, m_lp]

    def d_loss(self, x: torch.Tensor, ref: torch.Tensor, rm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(basic, ROI) discriminator loss ``-log σ(D(x | c(ref)))``; zeros without a ROI codec checkpoint."""
        n = x.shape[0]
        if self._disc is None:
            return x.new_zeros(n), x.new_zeros(n)
        basic = torch.as_tensor(self._disc(self.roi_checkpoint, ref, x), dtype=x.dtype).reshape(n)
        # discriminator_score's weighted form is Σ(L·w)/Σw; mean(L ⊗ RM_2D) = that × mean(RM_2D)
        roi = torch.as_tensor(self._disc(self.roi_checkpoint, ref, x, weight=rm), dtype=x.dtype).reshape(n)
        return basic, roi * rm.mean(dim=(1, 2, 3))

    @torch.no_grad()
    def __call__(self, ref: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        rm = self.rm2d(ref)
        basic, roi = [], []
        for x in (a, b):
            ms = self.maps(x, ref)
            d_basic, d_roi = self.d_loss(x, ref, rm)
            basic.append(torch.stack([m.mean(dim=(1, 2, 3)) for m in ms] + [d_basic], 1))
            roi.append(torch.stack([(m * rm).mean(dim=(1, 2, 3)) for m in ms] + [d_roi], 1))
        return torch.cat([basic[0], basic[1], roi[0], roi[1]], 1)


def swap_ab(f: torch.Tensor) -> torch.Tensor:
    """The same features with A and B exchanged."""
    k = len(FEATURES)
    return torch.cat([f[:, k:2 * k], f[:, :k], f[:, 3 * k:4 * k], f[:, 2 * k:3 * k]], 1)


# ---------------------------------------------------------------------------------------------
# the MLP


class RoiMLP(nn.Module):
    def __init__(self, n_in: int, hidden=HIDDEN):
        super().__init__()
        layers, c = [], n_in
        for h in hidden:
            layers += [nn.Linear(c, h), nn.ReLU()]
            c = h
        layers.append(nn.Linear(c, 2))
        self.net = nn.Sequential(*layers)
        self.register_buffer("mu", torch.zeros(n_in))
        self.register_buffer("sd", torch.ones(n_in))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net((f - self.mu) / self.sd)

    def prob_a(self, f: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self(f), 1)[:, 0]


@dataclasses.dataclass
class RoiMlpConfig:
    epochs: int = 50
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    saliency: str = "spectral"
    lpips: str = "auto"


def compute_features(df, images_dir, extractor: FeatureExtractor, *, progress: bool = True,
                     batch_size: int = 16) -> torch.Tensor:
    from tqdm.auto import tqdm

    from .twoafc import _batches, _ImageCache

    cache = _ImageCache(Path(images_dir), None)
    out = torch.zeros(len(df), 4 * len(FEATURES))
    for idx, ref, a, b in tqdm(_batches(df, cache, batch_size), total=-(-len(df) // batch_size),
                               desc="roi-mlp features", disable=not progress, file=sys.stderr):
        out[idx] = extractor(ref, a, b).float()
    return out


def fit_mlp(feats: torch.Tensor, p_a: torch.Tensor, n_in: int, cfg: RoiMlpConfig) -> tuple[RoiMLP, dict]:
    """Train one MLP on the first ``n_in`` inputs (both orientations of every triplet)."""
    torch.manual_seed(cfg.seed)
    x = torch.cat([feats, swap_ab(feats)])[:, :n_in]
    y = torch.cat([torch.stack([p_a, 1 - p_a], 1), torch.stack([1 - p_a, p_a], 1)])
    model = RoiMLP(n_in)
    model.mu.copy_(x.mean(0))
    model.sd.copy_(x.std(0).clamp_min(1e-8))
    model.sd[x.std(0) < 1e-12] = 1.0
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    hist = {"loss": [], "accuracy": []}
    n = x.shape[0]
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen)
        tot = 0.0
        for s in range(0, n, cfg.batch_size):
            i = perm[s:s + cfg.batch_size]
            loss = F.cross_entropy(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(i)
        with torch.no_grad():
            pa = model.prob_a(x)
            pref = (pa > 0.5).float() + 0.5 * (pa == 0.5).float()
            lab = (y[:, 0] > 0.5).float() + 0.5 * (y[:, 0] == 0.5).float()
            acc = float((pref * lab + (1 - pref) * (1 - lab)).mean())
        hist["loss"].append(tot / n)
        hist["accuracy"].append(acc)
    return model, hist


def train_roi_mlp(triplets, images_dir, out, config: RoiMlpConfig | None = None, *, roi_checkpoint=None,
                  progress: bool = True) -> dict:
    """Compute the 16 inputs for every triplet, train ROI-MLP (16) and BASIC (8); save both to ``out``."""
    from lossarena.data.triplets import read_triplets, validate_triplets

    cfg = config or RoiMlpConfig()
    df = validate_triplets(triplets) if hasattr(triplets, "columns") else read_triplets(triplets)
    ext = FeatureExtractor(lpips=cfg.lpips, saliency=cfg.saliency, roi_checkpoint=roi_checkpoint)
    feats = compute_features(df, images_dir, ext, progress=progress)
    p_a = torch.tensor(df["p_a"].to_numpy(), dtype=torch.float32)
    models, hists = {}, {}
    for name, n_in in (("roi", 16), ("basic", 8)):
        models[name], hists[name] = fit_mlp(feats, p_a, n_in, cfg)
        print(f"roi-mlp{'' if name == 'roi' else '-basic'}: CE {hists[name]['loss'][0]:.4f} -> "
              f"{hists[name]['loss'][-1]:.4f}, train accuracy {hists[name]['accuracy'][-1]:.3f}", file=sys.stderr)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "version": 1, "features": feature_names(), "extractor": ext.describe(),
                "config": dataclasses.asdict(cfg), "roi": models["roi"].state_dict(),
                "basic": models["basic"].state_dict(), "history": hists}, out)
    return hists


# ---------------------------------------------------------------------------------------------
# checkpoints and predictors

_CHECKPOINT: Path | None = None
_LOADED: dict[tuple, tuple] = {}


def set_checkpoint(path) -> None:
    global _CHECKPOINT
    _CHECKPOINT = Path(path) if path is not None else None
    _LOADED.clear()


def checkpoint_path() -> Path:
    if _CHECKPOINT is not None:
        return _CHECKPOINT
    env = os.environ.get(CHECKPOINT_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lossarena" / "roi_mlp.pt"


def load(path=None) -> tuple[FeatureExtractor, dict[str, RoiMLP]]:
    path = Path(path) if path is not None else checkpoint_path()
    if not path.is_file():
        raise MissingWeightsError(
            f"ROI-MLP needs a trained checkpoint; none at {path}. Train one with `lossarena benchmark train-roi-mlp "
            f"--triplets TRIPLETS.csv --images DIR --out {path} [--roi-checkpoint ROI.pt]`, then pass "
            f"--roi-mlp-checkpoint FILE or set {CHECKPOINT_ENV}=FILE")
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _LOADED:
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError) as e:
            raise InputError(f"{path}: not a readable ROI-MLP checkpoint ({e})") from None
        if not isinstance(ck, dict) or ck.get("format") != FORMAT:
            raise InputError(f"{path}: not a ROI-MLP checkpoint")
        e = ck["extractor"]
        if e["lpips"] == "lpips-alex":
            from lossarena.metrics import weights as W

            W.require_backbone("alexnet")  # trained with LPIPS: the same inputs are needed now
        ext = FeatureExtractor(lpips=e["lpips"], saliency=e["saliency"], roi_checkpoint=e["roi_checkpoint"],
                               loud=False)
        models = {}
        for name, n_in in (("roi", 16), ("basic", 8)):
            m = RoiMLP(n_in)
            m.load_state_dict(ck[name])
            models[name] = m.eval()
        _LOADED.clear()
        _LOADED[key] = (ext, models)
    return _LOADED[key]


def _make_predict(which: str):
    def loader():
        ext, models = load()
        n_in = 16 if which == "roi" else 8

        def predict(ref, a, b):
            with torch.no_grad():
                return models[which].prob_a(ext(ref, a, b).float()[:, :n_in])

        return predict

    return loader


def _backbones() -> tuple[str, ...]:
    ext, _ = load()
    return ("alexnet",) if ext.lpips_kind == "lpips-alex" else ()


_CITE = ("Y. Ma, Y. Zhai, J. Yang, C. Yang, R. Wang. ROI Perceptual Metric. CLIC workshop (CVPR) 2022")

for _name, _which, _desc in (("roi-mlp", "roi", "MLP on 8 basic + 8 ROI-weighted metrics of A and B (16 inputs)"),
                             ("roi-mlp-basic", "basic", "MLP on the 8 basic metrics of A and B (BASIC)")):
    if _name not in PREDICTORS:
        register_predictor(PredictorSpec(_name, load=_make_predict(_which),
                                         available=lambda: checkpoint_path().is_file(), citation=_CITE,
                                         description=_desc, backbones=_backbones))

