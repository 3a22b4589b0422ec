"""File-level API of the ROI codec: compress, decompress, evaluate, discriminator score.

``.lar`` files use the shared container (:mod:`lossarena.codecs.bitstream`) with codec id ``roi``, two
streams (``[y_string]``, ``[z_string]``) and meta ``{"rate_index", "z_shape", "alpha"}`` (α is recorded for
information only: the decoder needs nothing but the bitstream and the checkpoint).
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lossarena.errors import InputError

from ..bitstream import (
    INT_PAIR,
    NUMBER,
    NUMBER_OR_NULL,
    Bitstream,
    BitstreamError,
    Limits,
    check_meta,
    file_hash,
)
from ..device import resolve_device
from ..interface import Codec, check_image
from .checkpoint import load_discriminator, load_model, read_checkpoint
from .model import PAD_MULTIPLE, pad_image
from .saliency import SMOOTH_KERNEL, rm2d_for

CODEC_ID = "roi"


def parse_alpha(alpha) -> float | None:
    """None (use the checkpoint's α), a positive float, or ``inf``/``off`` (ROI latents off)."""
    if alpha is None:
        return None
    if isinstance(alpha, str) and alpha.strip().lower() in ("inf", "off", "none", "infinity"):
        return math.inf
    try:
        a = float(alpha)
    except ValueError:
        raise InputError(f"--alpha: expected a positive number or 'inf', got '{alpha}'") from None
    if not a > 0:
        raise InputError(f"--alpha: expected a positive number or 'inf', got '{alpha}'")
    return a


class RoiCodec(Codec):
    """A loaded ROI checkpoint implementing :class:`~lossarena.codecs.interface.Codec`.

    ``rate`` is the continuous gain index in ``rate_range = (0, n − 1)`` (0 = lowest rate; real values
    interpolate the trained gains, see :class:`~.model.RoiNetwork`). The ROI mask RM_2D comes from the
    checkpoint's saliency provider unless ``rm2d`` (N×1×H×W in [0, 1]) or a ``mask`` file is given.

    Parameters
    ----------
    ckpt : str or Path
        A ``lossarena-roi-codec`` checkpoint (``lossarena roi train``).
    device : str or torch.device
        ``auto|cpu|cuda|cuda:N`` (:func:`~lossarena.codecs.device.resolve_device`).
    """

    codec_id = CODEC_ID

    def __init__(self, ckpt: str | Path, device: str | torch.device = "cpu"):
        self.path = Path(ckpt)
        self.device = resolve_device(device)
        obj = read_checkpoint(self.path)
        self.model, self.obj = load_model(obj, self.device)
        self.config = obj["config"]
        self.hash = file_hash(self.path)
        self.n_rates = self.model.n_rates
        self.rate_range = (0.0, float(self.n_rates - 1))
        self._disc = None

    def to(self, device: str | torch.device) -> RoiCodec:
        super().to(device)
        if self._disc is not None:
            self._disc = self._disc.to(self.device)
        return self

    # ------------------------------------------------------------------ helpers
    def check_rate(self, rate_index) -> float:
        """The rate index as a float in ``[0, n − 1]`` (``InputError``, a ``ValueError``, otherwise)."""
        try:
            r = float(rate_index)
        except (TypeError, ValueError):
            raise InputError(f"--rate-index: expected a number in [0, {self.n_rates - 1}], got '{rate_index}'") from None
        if not 0 <= r <= self.n_rates - 1 or math.isnan(r):
            raise InputError(f"--rate-index: {rate_index} is outside [0, {self.n_rates - 1}] "
                             f"({self.n_rates} trained rates)")
        return r

    def rm2d(self, x, mask=None, names=None):
        """RM_2D (N×1×H×W) of ``x`` from the checkpoint's saliency provider, or from a mask file."""
        return rm2d_for(x, self.config.get("saliency"), names=names, mask_path=mask,
                        k=int(self.config.get("smooth_kernel") or SMOOTH_KERNEL))

    def _prep(self, x, rm2d):
        xp = pad_image(x.to(self.device))
        rp = pad_image(rm2d.to(self.device))
        return xp, F.avg_pool2d(rp, 16, 16)

    # ------------------------------------------------------------------ Codec interface
    @torch.no_grad()
    def forward(self, x: torch.Tensor, rate: float | None = None, *, rm2d=None, alpha=None) -> dict:
        """Eval-mode forward pass: ``{"x_hat": (cropped, in [0, 1]), "likelihoods", "y_hat", "y_dec"}``."""
        check_image(x)
        r = self.check_rate(rate)
        if rm2d is None:
            rm2d = self.rm2d(x)
        xp, rm_lat = self._prep(x, rm2d)
        res = self.model(xp, rm_lat, rate=r, alpha=parse_alpha(alpha))
        h, w = x.shape[-2:]
        return {"x_hat": res["x_hat"][:, :, :h, :w].clamp(0, 1), "likelihoods": res["likelihoods"],
                "y_hat": res["y_hat"], "y_dec": res["y_dec"]}

    @torch.no_grad()
    def compress(self, x: torch.Tensor, rate: float | None = None, *, rm2d=None, mask=None, alpha=None,
                 name=None, progress: bool = False) -> Bitstream:
        """Entropy-code one 1×3×H×W image at gain index ``rate`` (``alpha``: ROI strength, ``inf`` = off)."""
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            raise InputError(f"expected one RGB image 1x3xHxW, got shape {tuple(x.shape)}")
        r = self.check_rate(rate)
        a = parse_alpha(alpha)
        if rm2d is None:
            rm2d = self.rm2d(x, mask, names=[name] if name else None)
        xp, rm_lat = self._prep(x, rm2d)
        y_strings, z_string, z_shape, _ = self.model.compress(xp, rm_lat, r, a, progress=progress)
        a_eff = self.model.alpha if a is None else a
        meta = {"rate_index": r, "z_shape": list(z_shape), "alpha": None if math.isinf(a_eff) else a_eff}
        return Bitstream(CODEC_ID, int(x.shape[-2]), int(x.shape[-1]), self.hash, [y_strings, [z_string]], meta)

    @torch.no_grad()
    def decompress_latents(self, bs: Bitstream, source: str = "<bytes>", progress: bool = False):
        """Quantised latents ``ŷ`` and the rate index of a bitstream (``BitstreamError`` if it is not ours)."""
        if bs.codec != CODEC_ID:
            raise BitstreamError(f"{source}: a '{bs.codec}' bitstream, not an ROI codec one (use `lossarena codecs`)")
        bs.check_checkpoint(self.hash, source=source, ckpt=str(self.path))
        meta = check_meta(bs.meta, {"rate_index": NUMBER, "z_shape": INT_PAIR}, {"alpha": NUMBER_OR_NULL},
                          source=source)
        try:
            r = float(meta["rate_index"])
            zh, zw = (int(v) for v in meta["z_shape"])
        except (KeyError, TypeError, ValueError):
            raise BitstreamError(f"{source}: header is missing rate_index/z_shape") from None
        if not 0 <= r <= self.n_rates - 1:
            raise BitstreamError(f"{source}: rate index {r} outside [0, {self.n_rates - 1}]")
        ph = bs.height + (-bs.height) % PAD_MULTIPLE
        pw = bs.width + (-bs.width) % PAD_MULTIPLE
        if bs.height < 1 or bs.width < 1 or (zh, zw) != (ph // 64, pw // 64):
            raise BitstreamError(f"{source}: inconsistent sizes in the header ({bs.height}x{bs.width}, z {zh}x{zw})")
        if len(bs.strings) != 2 or len(bs.strings[0]) != 1 or len(bs.strings[1]) != 1:
            raise BitstreamError(f"{source}: expected two streams of one string each")
        try:
            y_q = self.model.decompress_latents(bs.strings[0][0], bs.strings[1][0], (zh, zw), progress=progress)
        except (ValueError, RuntimeError, OverflowError) as e:
            raise BitstreamError(f"{source}: cannot decode the latents ({e})") from None
        return y_q, r

    @torch.no_grad()
    def decompress(self, bs: Bitstream, *, source: str = "<bytes>", progress: bool = False) -> torch.Tensor:
        """Decode to a 1×3×H×W CPU image in [0, 1]."""
        y_q, r = self.decompress_latents(bs, source, progress)
        x_hat = torch.nan_to_num(self.model.synthesize(y_q, r), nan=0.0)  # crafted latents can overflow
        return x_hat[:, :, : bs.height, : bs.width].cpu()

    @torch.no_grad()
    def estimate(self, x, rate_index, *, rm2d=None, alpha=None) -> dict:
        """Forward pass in eval mode: estimated bpp (from the likelihoods) and x̂ (same as decoding)."""
        res = self.forward(x, rate_index, rm2d=rm2d, alpha=alpha)
        bits = sum((-torch.log2(v)).sum().item() for v in res["likelihoods"].values())
        hw = x.shape[-2] * x.shape[-1]
        return {"bpp": bits / hw, "x_hat": res["x_hat"].cpu(), "y_hat": res["y_hat"]}

    def discriminator(self):
        """The stage-2 discriminator (``InputError`` for a stage-1 checkpoint)."""
        if self._disc is None:
            self._disc = load_discriminator(self.obj, self.device)
        return self._disc


_CACHE: dict = {}


def get_codec(ckpt, device: str = "cpu") -> RoiCodec:
    """A cached :class:`RoiCodec` (keyed by path, modification time and device)."""
    p = Path(ckpt)
    if not p.is_file():
        raise InputError(f"{p}: no such checkpoint")
    key = (str(p.resolve()), p.stat().st_mtime_ns, device)
    if key not in _CACHE:
        if len(_CACHE) > 4:
            _CACHE.clear()
        _CACHE[key] = RoiCodec(p, device)
    return _CACHE[key]


# ---------------------------------------------------------------------------------- file functions
def compress(ckpt, image, out, rate_index, *, mask=None, alpha=None, progress: bool = False) -> dict:
    """``image`` (path) → ``out`` (.lar). Returns ``{"bytes", "bpp", "rate_index", "seconds"}``."""
    from lossarena.data.images import load_image

    codec = get_codec(ckpt)
    x = load_image(image)
    t = time.perf_counter()
    bs = codec.compress(x, rate_index, mask=mask, alpha=alpha, name=Path(image).name, progress=progress)
    n = bs.write(out)
    return {"bytes": n, "bpp": n * 8 / (x.shape[-2] * x.shape[-1]), "rate_index": bs.meta["rate_index"],
            "seconds": time.perf_counter() - t}


def decompress(ckpt, lar, out, *, progress: bool = False, limits: Limits | None = None) -> dict:
    """``lar`` → ``out`` (PNG). Returns ``{"height", "width", "seconds"}``.

    ``limits``: largest image the file may claim (default :meth:`~lossarena.codecs.bitstream.Limits.from_env`),
    checked before the checkpoint is loaded.
    """
    from lossarena.data.images import save_image

    bs = Bitstream.read(lar, limits=limits)
    codec = get_codec(ckpt)
    t = time.perf_counter()
    x_hat = codec.decompress(bs, source=str(lar), progress=progress)
    save_image(x_hat, out)
    return {"height": bs.height, "width": bs.width, "seconds": time.perf_counter() - t}


# ---------------------------------------------------------------------------------- metrics
def weighted_psnr(x_hat, x, w) -> torch.Tensor:
    """PSNR (peak 1) of the ``w``-weighted MSE (``w`` (N,1,H,W), e.g. RM_2D): Σ w·e² / (3 Σ w)."""
    e = ((x_hat - x) ** 2).sum(1, keepdim=True)
    mse = (w * e).flatten(1).sum(1) / (3 * w.flatten(1).sum(1)).clamp_min(1e-12)
    return -10 * torch.log10(mse.clamp_min(1e-10))


def _metric_or_none(name, x_hat, x):
    from lossarena.errors import MissingWeightsError
    from lossarena.metrics import get_metric, metric_names, weights_present

    if name in metric_names():
        spec = get_metric(name)
        if not weights_present(spec) or min(x.shape[-2:]) < spec.min_size:
            return None
        try:
            return float(spec.function(x_hat, x)[0])
        except MissingWeightsError:
            return None
    if name == "ms-ssim":
        if min(x.shape[-2:]) <= 160:
            return None
        import piq

        return float(piq.multi_scale_ssim(x_hat, x, data_range=1.0))
    return None


SUMMARY_COLUMNS = ("bpp", "psnr", "ms_ssim", "lpips", "roi_psnr")


def evaluate_roi(ckpt, data, out, *, rate_indices=None, alpha=None, max_images: int | None = None,
                 progress: bool = True, check_decode: bool = True) -> Path:
    """Per image × rate index: real and estimated bpp, PSNR, MS-SSIM, LPIPS (when its backbone exists),
    ROI-PSNR (PSNR weighted by RM_2D) and background PSNR (weighted by 1 − RM_2D), timings.

    Writes ``out`` (CSV) and ``out`` with suffix ``.md`` (the seed's Table 1 format, means per rate index).
    """
    from lossarena.data.images import list_images, load_image
    from tqdm import tqdm

    codec = get_codec(ckpt)
    paths = list_images(data) if isinstance(data, (str, Path)) else [Path(p) for p in data]
    if max_images:
        paths = paths[:max_images]
    rates = list(range(codec.n_rates)) if rate_indices is None else [codec.check_rate(r) for r in rate_indices]
    rows = []
    bar = tqdm(total=len(paths) * len(rates), desc="roi evaluate", disable=not progress, dynamic_ncols=True)
    for p in paths:
        x = load_image(p)
        rm = codec.rm2d(x, names=[p.name])
        hw = x.shape[-2] * x.shape[-1]
        for r in rates:
            t = time.perf_counter()
            bs = codec.compress(x, r, rm2d=rm, alpha=alpha)
            t_enc = time.perf_counter() - t
            nbytes = len(bs.to_bytes())
            t = time.perf_counter()
            x_hat = codec.decompress(bs) if check_decode else codec.estimate(x, r, rm2d=rm, alpha=alpha)["x_hat"]
            t_dec = time.perf_counter() - t
            est = codec.estimate(x, r, rm2d=rm, alpha=alpha)
            row = {
                "image": p.name, "rate_index": r, "alpha": bs.meta.get("alpha") or "inf",
                "bpp": nbytes * 8 / hw, "bpp_est": est["bpp"],
                "psnr": float(weighted_psnr(x_hat, x, torch.ones_like(rm))[0]),
                "ms_ssim": _metric_or_none("ms-ssim", x_hat, x),
                "lpips": _metric_or_none("lpips-alex", x_hat, x),
                "roi_psnr": float(weighted_psnr(x_hat, x, rm)[0]),
                "bg_psnr": float(weighted_psnr(x_hat, x, 1 - rm)[0]),
                "enc_s": t_enc, "dec_s": t_dec,
                "decode_matches_forward": bool(torch.equal(
                    (x_hat * 255).round(), (est["x_hat"] * 255).round())) if check_decode else "",
            }
            rows.append(row)
            bar.update(1)
    bar.close()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    out.with_suffix(".md").write_text(summary_table(rows))
    return out


def summary_table(rows) -> str:
    """Means per rate index in the seed's Table 1 layout (Bpp, PSNR, MS-SSIM, LPIPS, ROI-PSNR)."""
    by: dict = {}
    for row in rows:
        by.setdefault(row["rate_index"], []).append(row)
    lines = ["| rate index | Bpp | PSNR ↑ | MS-SSIM ↑ | LPIPS ↓ | ROI-PSNR ↑ |", "|---|---|---|---|---|---|"]
    for r in sorted(by):
        cells = []
        for k in SUMMARY_COLUMNS:
            vals = [float(v[k]) for v in by[r] if v[k] not in (None, "")]
            fmt = "{:.3f}" if k in ("bpp", "ms_ssim", "lpips") else "{:.2f}"
            cells.append(fmt.format(sum(vals) / len(vals)) if vals else "n/a")
        lines.append(f"| {r:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@torch.no_grad()
def latent_allocation(codec: RoiCodec, x, rm2d, rate_index, alpha=None) -> dict:
    """Where the bits go, in the latent domain (independent of how well the decoder is trained).

    ``roi_bit_share``: share of the estimated y-bits at ROI positions relative to the ROI's area share
    (``Σ RM·bits / (Σ bits · mean RM)``; 1 = proportional). ``latent_snr_gap``: SNR of the recovered
    unscaled latents ``ŷ / (ROI factor · v_r)`` on the unprotected channels, RM-weighted minus
    (1 − RM)-weighted, in dB. ``bpp``: estimated total bpp.
    """
    m = codec.model
    xp, rm_lat = codec._prep(x, rm2d)
    a = parse_alpha(alpha)
    a = m.alpha if a is None else a
    res = m(xp, rm_lat, rate=rate_index, alpha=a)
    y = m.g_a(xp)
    factor = torch.ones_like(y)
    if not math.isinf(a):
        factor[:, m.protected:] = (rm_lat + a) / a
    y_rec = res["y_hat"] / (factor * m.gain(rate_index))
    bits = (-torch.log2(res["likelihoods"]["y"])).sum(1, keepdim=True)
    share = float((bits * rm_lat).sum() / (bits.sum() * rm_lat.mean()))
    e = ((y - y_rec) ** 2)[:, m.protected:].sum(1, keepdim=True)
    sig = (y ** 2)[:, m.protected:].sum(1, keepdim=True)

    def snr(w):
        return 10 * math.log10(float((w * sig).sum() / (w * e).sum().clamp_min(1e-12)))

    total = sum(float((-torch.log2(v)).sum()) for v in res["likelihoods"].values())
    return {"roi_bit_share": share, "latent_snr_gap": snr(rm_lat) - snr(1 - rm_lat),
            "bpp": total / (x.shape[-2] * x.shape[-1])}


# ---------------------------------------------------------------------------------- discriminator
@torch.no_grad()
def discriminator_score(ckpt_or_model, x: torch.Tensor, x_hat: torch.Tensor, *, rate_index=None,
                        weight: torch.Tensor | None = None, alpha=None) -> torch.Tensor:
    """Per-image discriminator loss of ``x_hat`` given the reference ``x``: shape (N,), lower = looks real.

    ``-log σ(D(x̂ | c))`` averaged over the discriminator's patch map (upsampled to the image), where ``c``
    is the conditioning the discriminator was trained with — the ROI latents ``ŷ ⊙ v'`` of the *reference*
    ``x`` (its own saliency mask, rate index ``rate_index``, default the middle of the range). With
    ``weight`` (N,1,H,W), e.g. RM_2D, the map is averaged with those weights (ROI-MLP's ``mean(L ⊗ RM_2D)``
    up to normalisation by Σw). ``ckpt_or_model``: a checkpoint path or a :class:`RoiCodec`.
    """
    codec = ckpt_or_model if isinstance(ckpt_or_model, RoiCodec) else get_codec(ckpt_or_model)
    if x.shape != x_hat.shape or x.dim() != 4:
        raise InputError(f"discriminator_score: x {tuple(x.shape)} and x_hat {tuple(x_hat.shape)} must match (NCHW)")
    disc = codec.discriminator()
    r = (codec.n_rates - 1) / 2 if rate_index is None else codec.check_rate(rate_index)
    a = parse_alpha(alpha)
    h, w = x.shape[-2:]
    out = []
    for i in range(x.shape[0]):
        xi, xh = x[i:i + 1].to(codec.device), x_hat[i:i + 1].to(codec.device)
        rm = codec.rm2d(xi)
        xp, rm_lat = codec._prep(xi, rm)
        res = codec.model(xp, rm_lat, rate=r, alpha=a)
        logits = disc(pad_image(xh), res["y_dec"])
        lmap = F.softplus(-logits)
        lmap = F.interpolate(lmap, size=xp.shape[-2:], mode="nearest")[:, :, :h, :w]
        if weight is None:
            out.append(lmap.mean())
        else:
            wi = weight[i:i + 1].to(lmap)
            out.append((lmap * wi).sum() / wi.sum().clamp_min(1e-12))
    return torch.stack(out).cpu()
