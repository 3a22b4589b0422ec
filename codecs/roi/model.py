"""The ROI codec network (seed: "ROI Image codec Optimized for Visual Quality", CLIC 2022).

::

    x ─ g_a ─ y ─ ROI scaling (encoder only) ─ y_ROI ─ ⊙ v_s ─ ȳ ─ Q ─ ŷ ─ ⊙ v'_s ─ g_s ─ x̂
                                                        │           │
                                     h_a ─ z ─ Q ─ EB ─ h_s ─┐   masked 5×5 context
                                                             └─ entropy parameters (1×1) ─ GMM (K=3) ─ rANS

* ``g_a``/``g_s``: strided 5×5 convolutions with residual blocks (3×3 conv–ReLU–3×3 conv + skip, no batch
  norm) and the channel-spatial attention module (:class:`ChannelSpatialAttention`).
* ROI latents (Eq. 6–7): ``y_ROI[:, P:] = (RM_latent + α)/α ⊙ y[:, P:]``, channels ``0…P−1`` protected
  (P = 48 of 192 in the paper). **The decoder never undoes this scaling** and needs no mask: the synthesis
  transform and the entropy model are trained on scaled latents, so they learn to decode them; scaling only
  makes the quantisation step (fixed at 1) relatively finer in the ROI — more symbols, more bits, smaller
  relative error there. The protected channels carry unscaled information the decoder can rely on. This is
  what the seed describes (the mask enters only the encoder); transmitting the mask would cost bits.
* Variable rate (Eq. 8–10, Cui et al. 2021): ``n`` gain vectors ``v_s`` (encoder) and inverse gains ``v'_s``
  (decoder). The seed requires ``v_s ⊙ v'_s = C`` (Eq. 10) for every rate: the parameters are ``log v_s``
  (``n × M``) and ``log C`` (``M``), and the inverse gain is *derived*, ``v'_r = C / v_r``, so the product
  is ``C`` by construction for trained **and** interpolated rates (up to float rounding, ~1e-7 relative).
  A real rate index ``r = s + l`` (``0 ≤ l < 1``) interpolates the encoder gain, by default
  **exponentially** as Cui et al. (``v_r = v_s^{1−l} · v_{s+1}^{l}``, i.e. linearly in log-gain), or
  **linearly** as the seed's text says (``v_r = (1−l)·v_s + l·v_{s+1}``; ``model.gain_interp: linear``).
  Exponential is the default because the quantisation step is ``1/v``: a step that changes by a constant
  factor per unit of ``r`` makes the rate (≈ −log2 step) change evenly along ``r``, so bisection on the
  rate index (``codecs match``) sees a smooth, near-linear bpp(r); linear interpolation of gains spread
  ×4 bends bpp(r) towards the high-rate end. Both keep ``v_r ⊙ v'_r = C``. Index 0 is the lowest rate.
* Quantisation: ``ŷ = round(ȳ)`` (absolute, as in Cheng et al.); training uses ``ȳ + U(−½, ½)`` for the rate
  and straight-through rounding for the context model and the decoder.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .gmm import build_cdfs, gmm_likelihood, split_params

PAD_MULTIPLE = 64
GAIN_INTERP = ("exp", "linear")
KERNEL = 5  # context model kernel


def conv(cin: int, cout: int, k: int = 5, s: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=s, padding=k // 2)


def deconv(cin: int, cout: int, k: int = 5, s: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, stride=s, padding=k // 2, output_padding=s - 1)


class ResBlock(nn.Module):
    """3×3 conv – ReLU – 3×3 conv, plus the identity; no batch norm."""

    def __init__(self, n: int):
        super().__init__()
        self.c1 = nn.Conv2d(n, n, 3, padding=1)
        self.c2 = nn.Conv2d(n, n, 3, padding=1)

    def forward(self, x):
        return x + self.c2(F.relu(self.c1(x)))


class ChannelSpatialAttention(nn.Module):
    """Channel-spatial attention with residual blocks in the trunk and in the attention branch.

    ``t = trunk(x)`` (``b`` residual blocks); ``a = σ(conv1×1(branch(x)))`` a per-pixel, per-channel
    (spatial) mask from ``b`` residual blocks; ``c = σ(MLP(avgpool(t ⊙ a)))`` a channel attention vector
    (CBAM-style, reduction 4); output ``x + t ⊙ a ⊙ c``. (The seed's Fig. 3 gives the blocks, not every
    wire; this is our reading of it, after Cheng et al. 2020 and CBAM.)
    """

    def __init__(self, n: int, blocks: int = 3, reduction: int = 4):
        super().__init__()
        self.trunk = nn.Sequential(*[ResBlock(n) for _ in range(blocks)])
        self.branch = nn.Sequential(*[ResBlock(n) for _ in range(blocks)], nn.Conv2d(n, n, 1))
        hid = max(n // reduction, 4)
        self.channel = nn.Sequential(nn.Conv2d(n, hid, 1), nn.ReLU(inplace=True), nn.Conv2d(hid, n, 1))

    def forward(self, x):
        t = self.trunk(x)
        a = torch.sigmoid(self.branch(x))
        ta = t * a
        c = torch.sigmoid(self.channel(ta.mean((2, 3), keepdim=True)))
        return x + ta * c


class MaskedConv(nn.Conv2d):
    """Type-A masked convolution (PixelCNN); the mask is applied functionally (no in-place weight edits)."""

    def __init__(self, cin: int, cout: int, k: int = KERNEL):
        super().__init__(cin, cout, k, padding=k // 2)
        mask = torch.ones_like(self.weight)
        mask[:, :, k // 2, k // 2:] = 0
        mask[:, :, k // 2 + 1:] = 0
        self.register_buffer("mask", mask)

    def masked_weight(self):
        return self.weight * self.mask

    def forward(self, x):
        return F.conv2d(x, self.masked_weight(), self.bias, padding=self.padding)


def ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def roi_scale(y: torch.Tensor, rm_latent: torch.Tensor | None, alpha, protected: int) -> torch.Tensor:
    """Eq. 6–7: scale channels ``protected…`` by ``(RM_latent + α)/α``; α = inf or None mask = off.

    ``alpha`` may be a float or a tensor of shape (N,) (one α per image; inf allowed).
    """
    if rm_latent is None:
        return y
    if not torch.is_tensor(alpha):
        if alpha is None or math.isinf(float(alpha)):
            return y
        alpha = torch.full((y.shape[0],), float(alpha), device=y.device, dtype=y.dtype)
    alpha = alpha.to(y.device, y.dtype).view(-1, 1, 1, 1)
    factor = torch.where(torch.isinf(alpha), torch.ones_like(rm_latent), (rm_latent + alpha) / alpha)
    if factor.shape[-2:] != y.shape[-2:]:
        raise ValueError(f"RM_latent {tuple(factor.shape[-2:])} does not match latents {tuple(y.shape[-2:])}")
    return torch.cat([y[:, :protected], y[:, protected:] * factor], dim=1)


class RoiNetwork(nn.Module):
    """Main autoencoder + hyperprior + context model + GMM, with gain units (see the module docstring)."""

    def __init__(self, N: int = 192, M: int = 192, K: int = 3, n_rates: int = 6, protected: int = 48,
                 attn_blocks: int = 3, alpha: float = 1.5, gain_interp: str = "exp"):
        super().__init__()
        from compressai.entropy_models import EntropyBottleneck

        if not 0 <= protected <= M:
            raise ValueError(f"protected channels {protected} must be within 0…{M}")
        self.N, self.M, self.K, self.n_rates, self.protected = N, M, K, n_rates, protected
        self.alpha = float(alpha)
        self.attn_blocks = b = attn_blocks
        self.g_a = nn.Sequential(
            conv(3, N), nn.ReLU(inplace=True), ResBlock(N),
            conv(N, N), nn.ReLU(inplace=True), ResBlock(N), ChannelSpatialAttention(N, b),
            conv(N, N), nn.ReLU(inplace=True), ResBlock(N),
            conv(N, M), ChannelSpatialAttention(M, b),
        )
        self.g_s = nn.Sequential(
            ChannelSpatialAttention(M, b), deconv(M, N), nn.ReLU(inplace=True), ResBlock(N),
            deconv(N, N), nn.ReLU(inplace=True), ResBlock(N), ChannelSpatialAttention(N, b),
            deconv(N, N), nn.ReLU(inplace=True), ResBlock(N),
            deconv(N, 3),
        )
        self.h_a = nn.Sequential(
            conv(M, N, 3, 1), nn.LeakyReLU(inplace=True),
            conv(N, N), nn.LeakyReLU(inplace=True),
            conv(N, N),
        )
        self.h_s = nn.Sequential(
            deconv(N, M), nn.LeakyReLU(inplace=True),
            deconv(M, M * 3 // 2), nn.LeakyReLU(inplace=True),
            conv(M * 3 // 2, 2 * M, 3, 1),
        )
        self.context = MaskedConv(M, 2 * M)
        self.entropy_parameters = nn.Sequential(
            nn.Conv2d(4 * M, 5 * M, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(5 * M, 7 * M, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(7 * M, 3 * K * M, 1),
        )
        self.entropy_bottleneck = EntropyBottleneck(N)
        # gains: index 0 = lowest rate; log v_s initialised geometrically from ×0.5 to ×2, C = 1 (Eq. 10)
        if gain_interp not in GAIN_INTERP:
            raise ValueError(f"expected gain_interp in {GAIN_INTERP}, got {gain_interp!r}")
        self.gain_interp = gain_interp
        init = torch.linspace(math.log(0.5), math.log(2.0), n_rates)[:, None].repeat(1, M)
        self.log_gain = nn.Parameter(init.clone())
        self.log_gain_product = nn.Parameter(torch.zeros(M))  # log C: v_s · v'_s = C for every s

    # ---------------------------------------------------------------- description
    def arch(self) -> dict:
        return {"N": self.N, "M": self.M, "K": self.K, "n_rates": self.n_rates, "protected": self.protected,
                "attn_blocks": self.attn_blocks, "alpha": self.alpha, "gain_interp": self.gain_interp}

    # ---------------------------------------------------------------- gains
    def _log_gain(self, rate) -> torch.Tensor:
        """(B, M) log encoder gains ``log v_r`` for rate indices (float or (B,) tensor), clamped to [0, n−1]."""
        table = self.log_gain
        r = torch.as_tensor(rate, dtype=table.dtype, device=table.device).reshape(-1)
        r = r.clamp(0, self.n_rates - 1)
        if self.n_rates == 1:
            return table[torch.zeros_like(r, dtype=torch.long)]
        s = torch.floor(r).long().clamp(max=self.n_rates - 2)
        t = (r - s.to(r.dtype))[:, None]
        lo, hi = table[s], table[s + 1]
        if self.gain_interp == "exp":
            return lo * (1 - t) + hi * t
        return torch.log(lo.exp() * (1 - t) + hi.exp() * t)

    def gain(self, rate) -> torch.Tensor:
        """Encoder gains ``v_r``, shape (B, M, 1, 1)."""
        return torch.exp(self._log_gain(rate))[:, :, None, None]

    def inv_gain(self, rate) -> torch.Tensor:
        """Decoder (inverse) gains ``v'_r = C / v_r``, shape (B, M, 1, 1): ``v_r ⊙ v'_r = C`` exactly."""
        return torch.exp(self.log_gain_product[None] - self._log_gain(rate))[:, :, None, None]

    def gain_product(self) -> torch.Tensor:
        """``C`` (M,), the constant of Eq. 10."""
        return torch.exp(self.log_gain_product)

    # ---------------------------------------------------------------- forward (training / estimation)
    def encode_latents(self, x, rm_latent=None, alpha=None, rate=0.0):
        """Scaled latents ``ȳ = ROI(g_a(x)) ⊙ v_r`` (before quantisation)."""
        y = self.g_a(x)
        a = self.alpha if alpha is None else alpha
        return roi_scale(y, rm_latent, a, self.protected) * self.gain(rate)

    def forward(self, x, rm_latent=None, rate=0.0, alpha=None):
        ys = self.encode_latents(x, rm_latent, alpha, rate)
        z = self.h_a(ys)
        z_hat, z_lik = self.entropy_bottleneck(z)
        params = self.h_s(z_hat)
        if self.training:
            y_noisy = ys + torch.empty_like(ys).uniform_(-0.5, 0.5)
            y_round = ste_round(ys)
        else:
            y_round = torch.round(ys)
            y_noisy = y_round
        gp = self.entropy_parameters(torch.cat([params, self.context(y_round)], dim=1))
        y_lik = gmm_likelihood(y_noisy, *split_params(gp, self.K))
        y_dec = y_round * self.inv_gain(rate)
        x_hat = self.g_s(y_dec)
        return {"x_hat": x_hat, "likelihoods": {"y": y_lik, "z": z_lik}, "y_hat": y_round, "y_dec": y_dec}

    def aux_loss(self):
        return self.entropy_bottleneck.loss()

    def update(self, force: bool = True) -> bool:
        return self.entropy_bottleneck.update(force=force)

    def load_state_dict(self, state_dict, strict: bool = True):
        from compressai.models.utils import update_registered_buffers

        update_registered_buffers(self.entropy_bottleneck, "entropy_bottleneck",
                                  ["_quantized_cdf", "_offset", "_cdf_length"], state_dict)
        return super().load_state_dict(state_dict, strict=strict)

    # ---------------------------------------------------------------- real coding
    def _position_tables(self, y_pad, params, h, w, mw):
        crop = y_pad[:, :, h:h + KERNEL, w:w + KERNEL]
        ctx = F.conv2d(crop, mw, self.context.bias)
        p = params[:, :, h:h + 1, w:w + 1]
        gp = self.entropy_parameters(torch.cat([p, ctx], dim=1))
        lg, mu, sc = split_params(gp, self.K)
        # integer tables are built on the CPU (the rANS coder needs Python lists anyway)
        return build_cdfs(lg[0, :, :, 0, 0].cpu(), mu[0, :, :, 0, 0].cpu(), sc[0, :, :, 0, 0].cpu())

    @torch.no_grad()
    def compress(self, x, rm_latent=None, rate=0.0, alpha=None, progress: bool = False):
        """``x`` (1, 3, H, W) with H, W multiples of 64 → ``([y_string], [z_string]), z_shape, y_q``."""
        from compressai.ans import BufferedRansEncoder

        if x.shape[0] != 1:
            raise ValueError("compress codes one image at a time")
        ys = self.encode_latents(x, rm_latent, alpha, rate)
        z = self.h_a(ys)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[-2:])
        params = self.h_s(z_hat)
        y_q = torch.round(ys)
        H, W = y_q.shape[-2:]
        pad = KERNEL // 2
        y_pad = torch.zeros(1, self.M, H + 2 * pad, W + 2 * pad, device=y_q.device)
        mw = self.context.masked_weight()
        enc = BufferedRansEncoder()
        idx = list(range(self.M))
        for h in _rows(H, progress, "encode"):
            for w in range(W):
                cdfs, lengths, offsets = self._position_tables(y_pad, params, h, w, mw)
                sym = y_q[0, :, h, w]
                enc.encode_with_indexes(sym.long().tolist(), idx, cdfs, lengths, offsets)
                y_pad[0, :, h + pad, w + pad] = sym
        return [enc.flush()], z_strings[0], tuple(z.shape[-2:]), y_q

    @torch.no_grad()
    def decompress_latents(self, y_string: bytes, z_string: bytes, z_shape, progress: bool = False,
                           max_abs: int = 1 << 20):
        """Sequential context decoding → quantised latents ``ŷ`` (1, M, 4h, 4w)."""
        from ..entropy import RansDecoder, check_string, checked_bottleneck_decompress

        # bounds-checked rANS (CompressAI's C++ decoder trusts the strings): both lengths checked against
        # the symbol counts the shapes imply before decoding; identical symbols on valid streams
        n_z = int(self.entropy_bottleneck._quantized_cdf.size(0)) * int(z_shape[0]) * int(z_shape[1])
        check_string(z_string, n_z, source="ROI latents", what="z")
        check_string(y_string, self.M * 16 * int(z_shape[0]) * int(z_shape[1]), source="ROI latents", what="y")
        z_hat = checked_bottleneck_decompress(self.entropy_bottleneck, [z_string], tuple(z_shape),
                                              source="ROI latents", max_abs=max_abs)
        params = self.h_s(z_hat)
        H, W = params.shape[-2:]
        pad = KERNEL // 2
        y_pad = torch.zeros(1, self.M, H + 2 * pad, W + 2 * pad, device=params.device)
        mw = self.context.masked_weight()
        dec = RansDecoder(y_string, self.M * H * W, source="ROI latents", what="y")
        idx = list(range(self.M))
        for h in _rows(H, progress, "decode"):
            for w in range(W):
                cdfs, lengths, offsets = self._position_tables(y_pad, params, h, w, mw)
                vals = dec.decode_stream(idx, cdfs, lengths, offsets)
                if max(abs(v) for v in vals) > max_abs:
                    raise ValueError("decoded latent out of range")
                y_pad[0, :, h + pad, w + pad] = torch.tensor(vals, dtype=y_pad.dtype, device=y_pad.device)
        dec.finish()
        return y_pad[:, :, pad:pad + H, pad:pad + W]

    @torch.no_grad()
    def synthesize(self, y_q, rate):
        return self.g_s(y_q * self.inv_gain(rate)).clamp(0, 1)


def _rows(n: int, progress: bool, desc: str):
    if not progress:
        return range(n)
    from tqdm import tqdm

    return tqdm(range(n), desc=desc, leave=False, unit="row")


class Discriminator(nn.Module):
    """HiFiC-style conditional patch discriminator (Mentzer et al. 2020), conditioned on the ROI latents.

    The conditioning latents (``ŷ ⊙ v'``, what the decoder sees) go through a 1×1 conv to 12 channels and are
    upsampled ×16 (nearest) to the image size, concatenated with the image, then 4×4 convs 64-128-256-512
    (stride 2, 2, 2, 1), LeakyReLU 0.2, spectral normalisation, and a 1×1 conv to one logit per patch.
    """

    def __init__(self, M: int, width: int = 64, cond_ch: int = 12):
        super().__init__()
        sn = nn.utils.spectral_norm
        self.cond = nn.Conv2d(M, cond_ch, 1)
        chans = [3 + cond_ch, width, width * 2, width * 4, width * 8]
        layers = []
        for i in range(4):
            layers += [sn(nn.Conv2d(chans[i], chans[i + 1], 4, stride=2 if i < 3 else 1, padding=2)),
                       nn.LeakyReLU(0.2, inplace=True)]
        layers.append(sn(nn.Conv2d(chans[-1], 1, 1)))
        self.net = nn.Sequential(*layers)
        self.width = width

    def forward(self, x, y_cond):
        c = F.leaky_relu(self.cond(y_cond), 0.2)
        c = F.interpolate(c, size=x.shape[-2:], mode="nearest")
        return self.net(torch.cat([x, c], dim=1))


def pad_image(x: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Replicate-pad H and W to a multiple of ``multiple`` (crop back after decoding)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")
