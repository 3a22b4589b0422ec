"""ROI-MLP (Ma, Zhai, Yang, Yang, Wang — "ROI Perceptual Metric", CLIC 2022): a 2AFC predictor.

No public code exists; this follows the seed's text (``shared/papers/000_*``, ``001_*``).

For each of the two distorted images X ∈ {A, B} against the reference R, four losses, each as a
basic input (whole image) and an ROI input (restricted to the region of interest ``RM_2D``):

* ``mse``: squared error map, mean over RGB; basic ``mean(L)``, ROI ``mean(L ⊗ RM_2D)``;
* ``ms-ssim``: ``1 − MS-SSIM`` from the metric registry (``msssim.m`` on luma; 5 scales from 161 px,
  fewer on smaller images: the largest ``k`` with ``10·2^(k−1) + 1 ≤ min(H, W)``, stated in the
  checkpoint). MS-SSIM has no per-pixel map at its coarse scales, so its ROI input is
  ``1 − MS-SSIM(RM ⊗ X + (1 − RM) ⊗ R, R)``: errors outside the ROI are removed before the real
  MS-SSIM is computed (a deviation from the seed's per-pixel product, documented in docs/benchmark.md);
* ``lpips``: LPIPS-Alex's spatial map (v0.1 heads per layer, upsampled and summed); basic and ROI as
  for ``mse``. Needs the AlexNet backbone (:class:`~lossarena.errors.MissingWeightsError` otherwise);
  ``lpips="gms"`` explicitly selects the weight-free substitute ``1 − GMS`` (GMSD's gradient-magnitude
  similarity at full resolution, :func:`lossarena.metrics.gmsd.gms_map`), recorded in the checkpoint;
* ``d-loss``: the ROI codec's conditional discriminator on X given R (``−log σ(logit)`` per patch,
  upsampled; :func:`lossarena.codecs.roi.codec.discriminator_score`); needs a stage-2 ROI codec
  checkpoint (``roi_checkpoint``): without one the extractor **refuses** (MissingWeightsError) unless
  the explicit mode ``d_loss=False`` is chosen, which leaves the D-loss inputs out (12 inputs, 6 for
  BASIC) — never zeros.

``RM_2D = box50(σ(saliency(R)))`` from the ROI codec's saliency registry (any provider: ``spectral``,
a user's ``torch`` network or a ``folder`` of precomputed masks), with this seed's 50×50 window
(``smooth_kernel``; the codec's seed uses 51). The input vector is ordered as the seed's Figure 1:
``[A basic, B basic, A ROI, B ROI]``, each block in the order of :data:`FEATURES`
(:func:`feature_names` gives the names); **BASIC** uses the first two blocks. MLP hidden sizes
{192, 64, 64, 32}, ReLU, 2-way output (class 0 = A better), cross-entropy against ``(p_a, 1 − p_a)``,
Adam; inputs standardised with the training set's mean and standard deviation; every triplet is also
used with A and B swapped.

Registered 2AFC predictors ``roi-mlp`` and ``roi-mlp-basic`` (by :func:`register`, which
:func:`lossarena.benchmark.register_learned_metrics` calls) share one checkpoint
(``lossarena benchmark train-roi-mlp``), passed explicitly (``--roi-mlp-checkpoint``) or found at
``$LOSSARENA_ROI_MLP_CHECKPOINT`` / ``$XDG_CACHE_HOME/lossarena/roi_mlp.pt``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lossarena.errors import InputError, MissingWeightsError

from . import common
from .predictors import PREDICTORS, PredictorSpec, register_predictor

log = logging.getLogger(__name__)

CHECKPOINT_ENV = "LOSSARENA_ROI_MLP_CHECKPOINT"
FORMAT = "lossarena-roi-mlp"
VERSION = 2
FEATURES = ("mse", "ms-ssim", "lpips", "d-loss")
HIDDEN = (192, 64, 64, 32)
SMOOTH_KERNEL = 50  # seeds 000/001: RM_2D = 50×50 box of Mask_2D
LPIPS_KINDS = ("lpips-alex", "gms")


def feature_names(features: tuple[str, ...] = FEATURES) -> list[str]:
    """Names of the extractor's output columns, in order: ``A:mse … B:d-loss, A:roi-mse … B:roi-d-loss``."""
    out = []
    for kind in ("", "roi-"):
        for side in ("A", "B"):
            out += [f"{side}:{kind}{f}" for f in features]
    return out


def msssim_scales(h: int, w: int) -> int:
    """MS-SSIM scales used on an H×W image: the largest k ≤ 5 with 10·2^(k−1) + 1 ≤ min(H, W)."""
    m = min(h, w)
    if m < 11:
        raise InputError(f"ROI-MLP: images need at least 11 px for MS-SSIM, got {h}x{w}")
    return max(1, min(5, int(math.floor(math.log2((m - 1) / 10))) + 1))


class LpipsMap:
    """LPIPS-Alex spatial map ``(N, 1, H, W)`` from the registry's LPIPS network (v0.1 heads)."""

    def __init__(self):
        from lossarena.metrics.deep import LPIPS

        self.net = LPIPS("alex")

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from lpips import normalize_tensor

        net = self.net.to(x.device)
        fx = net.trunk(net.scaling(2.0 * x - 1.0))
        fy = net.trunk(net.scaling(2.0 * y - 1.0))
        h, w = x.shape[-2:]
        total = x.new_zeros(x.shape[0], 1, h, w)
        for lin, a, b in zip(net.lins, fx, fy):
            d = lin((normalize_tensor(a) - normalize_tensor(b)).pow(2))
            total = total + F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False)
        return total


@dataclasses.dataclass
class FeatureConfig:
    """What the extractor computes (stored in the checkpoint, so prediction uses the same inputs).

    Attributes
    ----------
    lpips : str
        ``"lpips-alex"`` (the seed; needs AlexNet) or ``"gms"`` (explicit weight-free substitute).
    d_loss : bool
        Include the discriminator inputs (needs ``roi_checkpoint``); ``False`` = explicit mode without them.
    roi_checkpoint : str or None
        Stage-2 ROI codec checkpoint whose discriminator gives the D-loss.
    saliency : str or dict
        Saliency provider spec of :func:`lossarena.codecs.roi.saliency.saliency_from_spec`.
    smooth_kernel : int
        RM_2D box size (50, this seed).
    """

    lpips: str = "lpips-alex"
    d_loss: bool = True
    roi_checkpoint: str | None = None
    saliency: str | dict = "spectral"
    smooth_kernel: int = SMOOTH_KERNEL


class FeatureExtractor:
    """The ROI-MLP inputs of a batch of triplets, ``extractor(ref, a, b) -> (N, len(names))``.

    Raises
    ------
    MissingWeightsError
        ``lpips-alex`` without the AlexNet backbone; ``d_loss`` without a ROI codec checkpoint.
    InputError
        Unknown ``lpips`` kind; a ROI codec checkpoint without a discriminator (stage 1).
    """

    def __init__(self, config: FeatureConfig | None = None):
        from lossarena.codecs.roi.saliency import saliency_from_spec

        from lossarena.metrics import weights as W

        self.config = cfg = config or FeatureConfig()
        if cfg.lpips not in LPIPS_KINDS:
            raise InputError(f"ROI-MLP: expected lpips in {LPIPS_KINDS}, got '{cfg.lpips}'")
        if cfg.lpips == "lpips-alex":
            if not W.backbone_status("alexnet").ok:
                raise MissingWeightsError(
                    "ROI-MLP's LPIPS inputs need the AlexNet backbone (`lossarena weights download`); or choose "
                    "the weight-free substitute explicitly: --lpips gms (a deviation from the seed)")
            self.lpips = LpipsMap()
        else:
            log.warning("ROI-MLP: LPIPS inputs replaced by the named substitute 1 - GMS (not the seed's method)")
            self.lpips = None
        self.features = FEATURES if cfg.d_loss else FEATURES[:3]
        self.names = feature_names(self.features)
        self._codec = None
        if cfg.d_loss:
            if not cfg.roi_checkpoint:
                raise MissingWeightsError(
                    "ROI-MLP's D-loss inputs need a stage-2 ROI codec checkpoint (--roi-checkpoint ROI.pt, "
                    "`lossarena roi train`); or leave them out explicitly: --no-d-loss")
            if not Path(cfg.roi_checkpoint).is_file():
                raise MissingWeightsError(f"ROI codec checkpoint not found: {cfg.roi_checkpoint} (needed for D-loss)")
            from lossarena.codecs.roi.codec import get_codec

            self._codec = get_codec(cfg.roi_checkpoint)
            self._codec.discriminator()  # InputError now for a stage-1 checkpoint
        self._sal = saliency_from_spec(cfg.saliency)

    def describe(self) -> dict:
        """What goes into the checkpoint: the config and the output column names."""
        return {**dataclasses.asdict(self.config), "names": list(self.names)}

    def rm2d(self, ref: torch.Tensor, names: list[str] | None = None) -> torch.Tensor:
        """RM_2D (N, 1, H, W) of the reference with this seed's box size."""
        from lossarena.codecs.roi.saliency import roi_masks

        return roi_masks(ref, self._sal, names=names, k=self.config.smooth_kernel)["rm2d"]

    def losses(self, x: torch.Tensor, ref: torch.Tensor, rm: torch.Tensor) -> tuple[list, list]:
        """``(basic, roi)``: per feature, (N,) values for distorted ``x`` against ``ref``."""
        from lossarena.metrics import compute
        from lossarena.metrics.gmsd import gms_map

        k = msssim_scales(*x.shape[-2:])
        m_mse = (x - ref).pow(2).mean(1, keepdim=True)
        if self.lpips is not None:
            m_lp = self.lpips(x, ref)
        else:
            m_lp = 1.0 - gms_map(x, ref, downsample=False, padding="replicate").to(x.dtype)
        comp = rm * x + (1 - rm) * ref
        basic = [m_mse.mean(dim=(1, 2, 3)), 1.0 - compute("ms-ssim", x, ref, scales=k).to(x.dtype),
                 m_lp.mean(dim=(1, 2, 3))]
        roi = [(m_mse * rm).mean(dim=(1, 2, 3)), 1.0 - compute("ms-ssim", comp, ref, scales=k).to(x.dtype),
               (m_lp * rm).mean(dim=(1, 2, 3))]
        if self._codec is not None:
            from lossarena.codecs.roi.codec import discriminator_score

            n = x.shape[0]
            basic.append(discriminator_score(self._codec, ref, x).to(x.dtype).reshape(n))
            # discriminator_score's weighted form is Σ(L·w)/Σw; mean(L ⊗ RM_2D) = that × mean(RM_2D)
            d_w = discriminator_score(self._codec, ref, x, weight=rm).to(x.dtype).reshape(n)
            roi.append(d_w * rm.mean(dim=(1, 2, 3)))
        return basic, roi

    @torch.no_grad()
    def __call__(self, ref: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                 names: list[str] | None = None) -> torch.Tensor:
        """(N, len(names)) inputs; ``names``: the references' file names (for a ``folder`` of masks)."""
        rm = self.rm2d(ref, names)
        ba, ra = self.losses(a, ref, rm)
        bb, rb = self.losses(b, ref, rm)
        return torch.stack(ba + bb + ra + rb, 1)


def swap_ab(f: torch.Tensor) -> torch.Tensor:
    """The same inputs with A and B exchanged (blocks ``[A, B, A-ROI, B-ROI]`` of equal width)."""
    k = f.shape[1] // 4
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
    """Training settings of :func:`train_roi_mlp` (the feature settings are in :attr:`features`)."""

    epochs: int = 50
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    features: FeatureConfig = dataclasses.field(default_factory=FeatureConfig)


def compute_features(df, images_dir, extractor: FeatureExtractor, *, progress: bool = True,
                     batch_size: int = 16) -> torch.Tensor:
    """Extractor outputs for every triplet of ``df`` (images relative to ``images_dir``), (N, n_inputs)."""
    import sys

    from tqdm.auto import tqdm

    cache = common.ImageCache(Path(images_dir))
    out = torch.zeros(len(df), len(extractor.names))
    for idx, ref, a, b in tqdm(common.triplet_batches(df, cache, batch_size), total=-(-len(df) // batch_size),
                               desc="roi-mlp features", disable=not progress, file=sys.stderr):
        out[idx] = extractor(ref, a, b, [Path(df["reference"].iat[i]).name for i in idx]).float()
    return out


def fit_mlp(feats: torch.Tensor, p_a: torch.Tensor, n_in: int, cfg: RoiMlpConfig) -> tuple[RoiMLP, dict]:
    """Train one MLP on the first ``n_in`` inputs (both orientations of every triplet).

    ``feats`` (N, 4k) as the extractor gives them; ``p_a`` (N,) the share preferring A.
    Returns the model and per-epoch ``{"loss", "accuracy"}``.
    """
    torch.manual_seed(cfg.seed)
    x = torch.cat([feats, swap_ab(feats)])[:, :n_in]
    y = torch.cat([torch.stack([p_a, 1 - p_a], 1), torch.stack([1 - p_a, p_a], 1)])
    model = RoiMLP(n_in)
    model.mu.copy_(x.mean(0))
    model.sd.copy_(x.std(0).clamp_min(1e-8))
    model.sd[x.std(0) < 1e-12] = 1.0
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    hist: dict[str, list[float]] = {"loss": [], "accuracy": []}
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


def train_roi_mlp(triplets, images_dir, out, config: RoiMlpConfig | None = None, *, progress: bool = True) -> dict:
    """Compute the inputs for every triplet, train ROI-MLP (all) and BASIC (first half); save both to ``out``.

    Parameters
    ----------
    triplets : str, Path or DataFrame
        Canonical triplets (``reference,a,b,p_a``), paths relative to ``images_dir``.
    images_dir : str or Path
    out : str or Path
        Checkpoint to write.
    config : RoiMlpConfig, optional

    Returns
    -------
    dict
        Training history per model (``roi``, ``basic``).
    """
    from lossarena.data.triplets import read_triplets, validate_triplets

    cfg = config or RoiMlpConfig()
    df = validate_triplets(triplets) if hasattr(triplets, "columns") else read_triplets(triplets)
    ext = FeatureExtractor(cfg.features)
    feats = compute_features(df, images_dir, ext, progress=progress)
    p_a = torch.tensor(df["p_a"].to_numpy(), dtype=torch.float32)
    n_all = feats.shape[1]
    models, hists = {}, {}
    for name, n_in in (("roi", n_all), ("basic", n_all // 2)):
        models[name], hists[name] = fit_mlp(feats, p_a, n_in, cfg)
        log.info("roi-mlp%s: CE %.4f -> %.4f, train accuracy %.3f", "" if name == "roi" else "-basic",
                 hists[name]["loss"][0], hists[name]["loss"][-1], hists[name]["accuracy"][-1])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "version": VERSION, "features": list(ext.names), "extractor": ext.describe(),
                "config": dataclasses.asdict(cfg), "roi": models["roi"].state_dict(),
                "basic": models["basic"].state_dict(), "history": hists}, out)
    return hists


# ---------------------------------------------------------------------------------------------
# checkpoints and predictors

_LOADED: dict[tuple, tuple] = {}


def default_checkpoint() -> Path:
    """``$LOSSARENA_ROI_MLP_CHECKPOINT``, else ``$XDG_CACHE_HOME/lossarena/roi_mlp.pt``."""
    return common.default_checkpoint(CHECKPOINT_ENV, "roi_mlp.pt")


def load(path: str | Path | None = None) -> tuple[FeatureExtractor, dict[str, RoiMLP]]:
    """The extractor and the two MLPs of a ROI-MLP checkpoint (``path`` or :func:`default_checkpoint`).

    Raises
    ------
    MissingWeightsError
        No checkpoint there (exit 3), or the inputs it was trained with need missing weights.
    InputError
        Not a (current) ROI-MLP checkpoint.
    """
    path = Path(path) if path else default_checkpoint()
    if not path.is_file():
        raise MissingWeightsError(
            f"ROI-MLP needs a trained checkpoint; none at {path}. Train one with `lossarena benchmark train-roi-mlp "
            f"--triplets TRIPLETS.csv --images DIR --out {path} --roi-checkpoint ROI.pt`, then pass "
            f"--roi-mlp-checkpoint FILE or set {CHECKPOINT_ENV}=FILE")
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _LOADED:
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError) as e:
            raise InputError(f"{path}: not a readable ROI-MLP checkpoint ({e})") from None
        if not isinstance(ck, dict) or ck.get("format") != FORMAT:
            raise InputError(f"{path}: not a ROI-MLP checkpoint")
        if ck.get("version") != VERSION:
            raise InputError(f"{path}: ROI-MLP checkpoint version {ck.get('version')}, this lossarena reads "
                             f"{VERSION} (retrain: `lossarena benchmark train-roi-mlp`)")
        e = dict(ck["extractor"])
        names = e.pop("names")
        ext = FeatureExtractor(FeatureConfig(**e))
        if list(ext.names) != list(names):
            raise InputError(f"{path}: inputs {names} differ from the extractor's {ext.names}")
        models = {}
        for name, n_in in (("roi", len(names)), ("basic", len(names) // 2)):
            m = RoiMLP(n_in)
            m.load_state_dict(ck[name])
            models[name] = m.eval()
        _LOADED.clear()
        _LOADED[key] = (ext, models)
    return _LOADED[key]


def _make_predict(which: str):
    def loader(checkpoint: Path | None = None):
        ext, models = load(checkpoint)
        model = models[which]
        n_in = model.mu.shape[0]

        def predict(ref, a, b, names=None):
            with torch.no_grad():
                return model.prob_a(ext(ref, a, b, names).float()[:, :n_in])

        return predict

    return loader


def _backbones(checkpoint: Path | None = None) -> tuple[str, ...]:
    ext, _ = load(checkpoint)
    return ("alexnet",) if ext.config.lpips == "lpips-alex" else ()


def _available(checkpoint: Path | None = None) -> bool:
    return (Path(checkpoint) if checkpoint else default_checkpoint()).is_file()


_CITE = ("Y. Ma, Y. Zhai, J. Yang, C. Yang, R. Wang. ROI Perceptual Metric. CLIC workshop (CVPR) 2022")


def register() -> None:
    """Register the 2AFC predictors ``roi-mlp`` and ``roi-mlp-basic``; idempotent, never on import."""
    for name, which, desc in (("roi-mlp", "roi", "MLP on basic + ROI-weighted losses of A and B (16 inputs)"),
                              ("roi-mlp-basic", "basic", "MLP on the basic losses of A and B (BASIC)")):
        if name not in PREDICTORS:
            register_predictor(PredictorSpec(name, load=_make_predict(which), available=_available,
                                             citation=_CITE, description=desc, backbones=_backbones))
