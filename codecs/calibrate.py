"""λ calibration: the exchange rate between a metric and MSE along a rate-distortion curve.

With L = λ·D + R, an RD-optimal operating point at rate R satisfies λ = −1 / D'(R). A model trained
with MSE at λ_mse sits where −1/D'_mse(R) = λ_mse. Fine-tuning it with metric m stays near the same
rate when λ_m = −1 / D'_m(R), i.e.::

    λ_m(R) = λ_mse(R) · D'_mse(R) / D'_m(R)

where the slopes are measured along one codec's RD curve (D = the lower-is-better loss value
``get_loss(m)``). ``λ_mse`` comes from CompressAI's published bmshj2018-hyperprior λ ↔ Kodak bpp
(converted to D on [0, 1]: ×255²). The slopes come from a curve sampled on real images: a classical
codec swept over its quality (``rd_points_classical``, JPEG 2000 by default: its blur/ringing
resembles a hyperprior's artifacts more than JPEG's blocks) or zoo checkpoints (``rd_points_zoo``).
Each slope is the derivative of a cubic fit of the image-mean D against log(bpp), at the target.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .model import COMPRESSAI_MSE_LAMBDA

# CompressAI bmshj2018-hyperprior (MSE) on Kodak: quality -> bpp (results/image/kodak, cuda ANS)
COMPRESSAI_KODAK_BPP = {1: 0.1313, 2: 0.2089, 3: 0.3199, 4: 0.4784, 5: 0.6687, 6: 0.9388, 7: 1.2592, 8: 1.6602}
TARGETS = {"low": 0.1, "medium": 0.25, "high": 0.5}


def mse_lambda_for_bpp(bpp: float) -> float:
    """Our λ_mse (D = MSE on [0, 1]) for a target bpp: log-log interpolation of CompressAI's zoo."""
    q = sorted(COMPRESSAI_KODAK_BPP)
    lr = np.log([COMPRESSAI_KODAK_BPP[i] for i in q])
    ll = np.log([COMPRESSAI_MSE_LAMBDA[i] for i in q])
    x = math.log(bpp)
    i = int(np.clip(np.searchsorted(lr, x) - 1, 0, len(q) - 2))
    t = (x - lr[i]) / (lr[i + 1] - lr[i])
    return float(math.exp(ll[i] + t * (ll[i + 1] - ll[i])) * 255**2)


def loss_values(x_hat: torch.Tensor, x: torch.Tensor, losses: dict) -> dict:
    with torch.no_grad():
        return {m: float(fn(x_hat, x)) for m, fn in losses.items()}


def _losses(metrics):
    from .train import make_loss

    return {m: make_loss(m)[0].eval() for m in metrics}


def rd_points_classical(images, metrics, codec: str = "avif", params=None, crop: int | None = 256):
    """Rows (image, param, bpp, D per metric) sweeping a classical codec's quality."""
    import pandas as pd
    from lossarena.data.images import load_image, to_uint8

    from .providers import CLASSICAL

    c = CLASSICAL[codec]
    if params is None:
        params = {"jpeg2000": np.linspace(16, 36, 21), "avif": range(0, 95, 5), "jpeg": range(2, 96, 4),
                  "jpegxl": np.linspace(-math.log(25), -math.log(0.3), 16)}[codec]
    fns = _losses(metrics)
    rows = []
    for p in images:
        x = load_image(p)
        if crop:
            h, w = x.shape[-2:]
            y0, x0 = (h - min(h, crop)) // 2, (w - min(w, crop)) // 2
            x = x[..., y0:y0 + crop, x0:x0 + crop]
        a = np.ascontiguousarray(to_uint8(x))
        for q in params:
            b = bytes(c.encode(a, q))
            dec = np.asarray(c.decode(b))
            x_hat = torch.from_numpy(np.ascontiguousarray(dec[..., :3].transpose(2, 0, 1))).float().div(255)[None]
            rows.append({"image": str(p), "param": float(q), "bpp": len(b) * 8 / (a.shape[0] * a.shape[1]),
                         **loss_values(x_hat, x, fns)})
    return pd.DataFrame(rows)


def rd_points_zoo(ckpts, images, metrics):
    """Rows (image, param=checkpoint, bpp, D per metric) from zoo checkpoints' real bitstreams."""
    import pandas as pd
    from lossarena.data.images import load_image

    from .interface import open_codec

    fns = _losses(metrics)
    rows = []
    for ck in ckpts:
        codec = open_codec(ck, "cpu")
        for p in images:
            x = load_image(p)
            bs = codec.compress(x)
            x_hat = codec.decompress(bs)
            rows.append({"image": str(p), "param": str(ck),
                         "bpp": len(bs.to_bytes()) * 8 / (x.shape[-2] * x.shape[-1]), **loss_values(x_hat, x, fns)})
    return pd.DataFrame(rows)


def slope_at(bpp: np.ndarray, d: np.ndarray, target: float, k: int = 5) -> float:
    """dD/dR at ``target``: local quadratic fit of D against log(bpp) on the ``k`` nearest points."""
    lx = np.log(np.asarray(bpp, float))
    d = np.asarray(d, float)
    near = np.argsort(np.abs(lx - math.log(target)))[:k]
    deg = min(2, len(near) - 1)
    p = np.polyfit(lx[near], d[near], deg)
    return float(np.polyval(np.polyder(p), math.log(target)) / target)


def calibrate_lambdas(points, metrics, targets: dict | None = None) -> dict:
    """``{metric: {level: λ}}`` from RD points (image-mean D per param)."""
    targets = targets or TARGETS
    g = points.groupby("param")[["bpp", *metrics]].mean().sort_values("bpp")
    out = {}
    for m in metrics:
        out[m] = {}
        for level, t in targets.items():
            s_mse = slope_at(g["bpp"].to_numpy(), g["mse"].to_numpy(), t)
            s_m = slope_at(g["bpp"].to_numpy(), g[m].to_numpy(), t)
            lam = mse_lambda_for_bpp(t) * s_mse / s_m if s_m < 0 else float("nan")
            out[m][level] = float(f"{lam:.3g}")
    return out
