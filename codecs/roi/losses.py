"""Training losses of the ROI codec (seed 002, Eq. 3–5); see :mod:`lossarena.codecs.roi.train`.

Per image (``x`` the original, ``x̂`` the reconstruction, ``RM`` = RM_2D in [0, 1], all N×C×H×W)::

    d_ROI = mse_scale · mean(RM ⊗ (x − x̂)²)                        (Eq. 3, mse_scale = 255²)
    x̃     = RM ⊗ x + (1 − RM) ⊗ x̂                                  (background composite)
    d_BG  = (1 − SSIM(x̃, x)) + λ_p · d_P(x̃, x)                     (Eq. 4, λ_p = 0.5)
    D     = d_ROI + w_BG · d_BG                                      (w_BG = bg_weight, default 300)

* **SSIM term, colour:** the registry's SSIM (``distortion.ssim``, default ``ssim:downsample=false``) on
  **luma** (ITU-R BT.601 Y of the RGB input, as MATLAB's ``rgb2gray``; ``color=y`` is the registry's
  default) without Wang's automatic downsampling (patches are 256 px). Chroma errors of the background
  therefore reach the loss only through ``d_P``. ``ssim:downsample=false,color=rgb`` averages SSIM over
  R, G, B instead.
* **Perceptual term:** ``distortion.perceptual`` (default ``lpips-alex``, the seed's LPIPS). When its
  backbone is missing, training **refuses** (:class:`~lossarena.errors.MissingWeightsError`, exit 3)
  unless a substitute is named explicitly (``distortion.perceptual_substitute``, CLI
  ``--perceptual-substitute``, e.g. ``ms-ssim`` or ``ms-ssim:scales=3`` for patches < 161 px). The
  substitution is logged and stored in the checkpoint (``loss.perceptual_used``). The seed notes that
  MS-SSIM alone shifted the colour temperature; a substitute is a deviation from the seed.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import torch
import torch.nn.functional as F

from lossarena.errors import InputError, MissingWeightsError

log = logging.getLogger(__name__)

DEFAULT_SSIM = "ssim:downsample=false"


@dataclasses.dataclass
class BackgroundLosses:
    """The two background terms as lower-is-better loss modules ``(x̂, x) -> scalar`` (batch mean).

    Attributes
    ----------
    ssim : torch.nn.Module
        ``1 − SSIM`` (registry loss).
    perceptual : torch.nn.Module
        ``d_P`` (LPIPS, or the named substitute).
    ssim_name, perceptual_name : str
        Metric specs actually used (``perceptual_name`` differs from the requested one only when a
        substitute was named and the requested metric's backbone is missing).
    substituted : bool
        Whether the substitute replaced the requested perceptual metric.
    """

    ssim: torch.nn.Module
    perceptual: torch.nn.Module
    ssim_name: str
    perceptual_name: str
    substituted: bool = False

    def to(self, device) -> BackgroundLosses:
        self.ssim = self.ssim.to(device)
        self.perceptual = self.perceptual.to(device)
        return self

    def record(self, requested: str) -> dict:
        """What goes into the checkpoint's ``loss`` section."""
        return {"ssim_used": self.ssim_name, "perceptual_requested": requested,
                "perceptual_used": self.perceptual_name, "perceptual_substituted": self.substituted}


def _usable(spec_str: str, patch: int) -> tuple[object, str | None]:
    """``(spec, None)`` when the metric can be a loss on ``patch``-px crops, else ``(spec, reason)``."""
    from lossarena.metrics import get_metric, weights_present

    spec = get_metric(spec_str)
    if not spec.differentiable:
        raise InputError(f"roi config: field 'distortion': '{spec_str}' is not differentiable")
    if not weights_present(spec):
        return spec, f"its backbone ({', '.join(spec.needs_weights)}) is missing"
    if spec.min_size > patch:
        raise InputError(f"roi config: field 'patch': {patch} px is smaller than '{spec_str}' needs "
                         f"({spec.min_size} px)")
    return spec, None


def make_bg_losses(perceptual: str, patch: int, *, substitute: str | None = None,
                   ssim: str = DEFAULT_SSIM) -> BackgroundLosses:
    """Build the background loss terms of Eq. 4, refusing silent substitutions.

    Parameters
    ----------
    perceptual : str
        Metric spec of ``d_P`` (the seed: ``"lpips-alex"``).
    patch : int
        Training crop side in px (checked against the metrics' minimum sizes).
    substitute : str or None
        Metric spec used **only** when ``perceptual``'s backbone is missing, e.g. ``"ms-ssim"``. ``None``
        (default) refuses instead.
    ssim : str
        Metric spec of the SSIM term (default luma SSIM without downsampling).

    Returns
    -------
    BackgroundLosses

    Raises
    ------
    MissingWeightsError
        ``perceptual`` needs a missing backbone and no substitute is named (exit 3).
    InputError
        A metric that is unknown, not differentiable, or needs larger patches, or a substitute that
        itself needs a missing backbone (exit 2).
    """
    from lossarena.metrics import get_loss

    _, why = _usable(ssim, patch)
    if why:
        raise MissingWeightsError(f"ROI codec: SSIM term '{ssim}' unusable: {why}")
    ssim_loss = get_loss(ssim)
    _, why = _usable(perceptual, patch)
    if why is None:
        return BackgroundLosses(ssim_loss, get_loss(perceptual), ssim, perceptual)
    if not substitute:
        raise MissingWeightsError(
            f"ROI codec: the background loss needs '{perceptual}' but {why}. Install it "
            "(`lossarena weights download`) or name a substitute explicitly: `lossarena roi train ... "
            "--perceptual-substitute ms-ssim` (config distortion.perceptual_substitute); a substitute "
            "deviates from the seed's loss")
    _, why_sub = _usable(substitute, patch)
    if why_sub:
        raise InputError(f"roi config: field 'distortion.perceptual_substitute': '{substitute}' is unusable "
                         f"too ({why_sub})")
    log.warning("ROI codec: background perceptual term '%s' unavailable (%s); using the named substitute "
                "1 - %s (recorded in the checkpoint)", perceptual, why, substitute)
    return BackgroundLosses(ssim_loss, get_loss(substitute), ssim, substitute, substituted=True)


def roi_distortion(x_hat: torch.Tensor, x: torch.Tensor, rm: torch.Tensor, ssim_loss, perc_loss,
                   dcfg: dict) -> dict:
    """Distortion of seed 002 (Eq. 3–4) for a batch.

    Parameters
    ----------
    x_hat, x : torch.Tensor
        Reconstruction and original, (N, 3, H, W) in [0, 1].
    rm : torch.Tensor
        RM_2D, (N, 1, H, W) in [0, 1] (1 = region of interest).
    ssim_loss, perc_loss : callable
        ``(x̂, x) -> scalar`` lower-is-better background terms (see :func:`make_bg_losses`).
    dcfg : dict
        ``mse_scale``, ``lambda_p``, ``bg_weight``.

    Returns
    -------
    dict
        ``d_roi`` (``mse_scale · mean(RM ⊗ (x − x̂)²)``, mean over N, C, H, W), ``d_bg``
        (``ssim_loss(x̃, x) + λ_p · perc_loss(x̃, x)``, ``x̃ = RM ⊗ x + (1 − RM) ⊗ x̂``) and
        ``D = d_roi + bg_weight · d_bg``; scalars, lower is better.
    """
    d_roi = float(dcfg["mse_scale"]) * (rm * (x_hat - x) ** 2).mean()
    xt = rm * x + (1 - rm) * x_hat
    d_bg = ssim_loss(xt, x) + float(dcfg["lambda_p"]) * perc_loss(xt, x)
    return {"d_roi": d_roi, "d_bg": d_bg, "D": d_roi + float(dcfg["bg_weight"]) * d_bg}


def generator_gan_loss(disc, x_hat: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``L_G = mean(−log σ(D(x̂ | c)))`` (HiFiC); gradients reach ``x̂``.

    ``disc(x, cond) -> logits`` per patch; ``cond`` (the ROI latents ``ŷ ⊙ v'``) is detached.
    """
    return F.softplus(-disc(x_hat, cond.detach())).mean()


def discriminator_gan_loss(disc, x: torch.Tensor, x_hat: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """``L_D = mean(−log σ(D(x | c))) + mean(−log(1 − σ(D(x̂ | c))))``; ``x̂`` and ``c`` detached."""
    cond = cond.detach()
    return F.softplus(-disc(x, cond)).mean() + F.softplus(disc(x_hat.detach(), cond)).mean()


def bits_per_image(likelihoods: dict) -> torch.Tensor:
    """``−Σ log2 p`` per image over every likelihood tensor, shape (N,)."""
    return sum((-torch.log2(v)).flatten(1).sum(1) for v in likelihoods.values())


def sample_alpha(rng: np.random.Generator, n: int, acfg: dict, default: float) -> torch.Tensor:
    """Per-image ROI strength α for training: log-uniform in [min, max], ``inf`` (ROI off) with p_off."""
    if not acfg:
        return torch.full((n,), float(default))
    lo, hi = math.log(float(acfg["min"])), math.log(float(acfg["max"]))
    a = np.exp(rng.uniform(lo, hi, n))
    off = rng.random(n) < float(acfg.get("p_off", 0.0))
    a[off] = np.inf
    return torch.tensor(a, dtype=torch.float32)
