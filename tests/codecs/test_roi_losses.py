"""The ROI codec's training losses (seed 002, Eq. 3–4) against hand-computed values, and no silent
substitution of the LPIPS term."""

import pytest
import torch
from lossarena.codecs.roi import losses as L
from standin import empty_home, standin_home, standin_root  # noqa: F401

from lossarena.errors import InputError, MissingWeightsError

DCFG = {"mse_scale": 65025.0, "lambda_p": 0.5, "bg_weight": 300.0}
C1 = 0.01**2  # SSIM's (K1·L)², L = 1


def _flat(v, n=64):
    return torch.full((1, 3, n, n), float(v))


def _ssim_flat(a: float, b: float) -> float:
    """SSIM of two constant images: only the luminance term is left (σ = 0, cs = 1)."""
    return (2 * a * b + C1) / (a * a + b * b + C1)


def test_roi_distortion_hand_computed():
    x, x_hat, rm = _flat(0.25), _flat(0.45), torch.full((1, 1, 64, 64), 0.25)

    def ssim_term(a, b):  # records what the background terms are given
        seen.append(a.clone())
        return (a - b).abs().mean()

    seen: list = []
    d = L.roi_distortion(x_hat, x, rm, ssim_term, lambda a, b: 2 * (a - b).abs().mean(), DCFG)
    assert float(d["d_roi"]) == pytest.approx(65025 * 0.25 * 0.2**2, rel=1e-6)  # 650.25
    # composite x̃ = RM·x + (1 − RM)·x̂ = 0.0625 + 0.3375 = 0.4: the ROI part of the error is removed
    assert torch.allclose(seen[0], torch.full_like(x, 0.4))
    assert float(d["d_bg"]) == pytest.approx(0.15 + 0.5 * 0.3, rel=1e-6)
    assert float(d["D"]) == pytest.approx(650.25 + 300 * 0.3, rel=1e-6)
    # RM = 1 everywhere: the background terms see the original itself
    d1 = L.roi_distortion(x_hat, x, torch.ones(1, 1, 64, 64), ssim_term, ssim_term, DCFG)
    assert float(d1["d_bg"]) == 0.0 and float(d1["d_roi"]) == pytest.approx(65025 * 0.04, rel=1e-6)


def test_substitute_variant_hand_computed(empty_home):  # noqa: F811
    """No LPIPS backbone + named substitute ``ms-ssim:scales=3`` on constant images:
    1 − SSIM = 1 − l, 1 − MS-SSIM = 1 − l^(w3 / (w1 + w2 + w3))."""
    bg = L.make_bg_losses("lpips-alex", 64, substitute="ms-ssim:scales=3")
    assert bg.substituted and bg.perceptual_name == "ms-ssim:scales=3" and bg.ssim_name == L.DEFAULT_SSIM
    assert bg.record("lpips-alex") == {"ssim_used": "ssim:downsample=false", "perceptual_requested": "lpips-alex",
                                       "perceptual_used": "ms-ssim:scales=3", "perceptual_substituted": True}
    # float64: in float32 SSIM's σ² = E[x²] − E[x]² leaves ~5e-5 of rounding noise on flat images
    x, x_hat, rm = _flat(0.25).double(), _flat(0.5).double(), torch.full((1, 1, 64, 64), 0.5).double()
    d = L.roi_distortion(x_hat, x, rm, bg.ssim, bg.perceptual, DCFG)
    assert float(d["d_roi"]) == pytest.approx(65025 * 0.5 * 0.25**2, rel=1e-6)
    lum = _ssim_flat(0.375, 0.25)
    w3 = 0.3001 / (0.0448 + 0.2856 + 0.3001)
    assert float(d["d_bg"]) == pytest.approx((1 - lum) + 0.5 * (1 - lum**w3), rel=1e-5)


def test_default_refuses_without_lpips_backbone(empty_home):  # noqa: F811
    with pytest.raises(MissingWeightsError, match="--perceptual-substitute"):
        L.make_bg_losses("lpips-alex", 64)
    with pytest.raises(InputError, match="smaller than"):  # a substitute that cannot run on the patch
        L.make_bg_losses("lpips-alex", 64, substitute="ms-ssim")


def test_lpips_variant_uses_lpips_and_ignores_substitute(standin_home):  # noqa: F811
    """With the backbone present (stand-in weights: plumbing only) d_P is LPIPS, never the substitute."""
    from lossarena.metrics import compute

    bg = L.make_bg_losses("lpips-alex", 64, substitute="ms-ssim:scales=3")
    assert not bg.substituted and bg.perceptual_name == "lpips-alex"
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 64, 64, generator=g)
    x_hat = (x + 0.1 * torch.randn(1, 3, 64, 64, generator=g)).clamp(0, 1)
    rm = torch.rand(1, 1, 64, 64, generator=g)
    d = L.roi_distortion(x_hat, x, rm, bg.ssim, bg.perceptual, DCFG)
    xt = rm * x + (1 - rm) * x_hat
    want = (1 - compute("ssim:downsample=false", xt, x)) + 0.5 * compute("lpips-alex", xt, x)
    assert float(d["d_bg"]) == pytest.approx(float(want), rel=1e-5)


def test_ssim_term_is_luma_only_unless_rgb_is_named(empty_home):  # noqa: F811
    """A background error with zero luma (ΔY = 0.299ΔR + 0.587ΔG + 0.114ΔB = 0) costs nothing in the
    default luma SSIM term, but does in ``color=rgb`` (documented colour handling)."""
    x = _flat(0.5)
    dr, dg = 0.1, -0.299 * 0.1 / 0.587
    x_hat = x.clone()
    x_hat[:, 0] += dr
    x_hat[:, 1] += dg
    x_hat[:, :, :, :32] = x[:, :, :, :32]  # structure, so that σ ≠ 0
    rm = torch.zeros(1, 1, 64, 64)
    luma = L.make_bg_losses("ms-ssim:scales=3", 64, ssim=L.DEFAULT_SSIM)
    rgb = L.make_bg_losses("ms-ssim:scales=3", 64, ssim="ssim:downsample=false,color=rgb")
    assert float(luma.ssim(x_hat, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(rgb.ssim(x_hat, x)) > 1e-3
    d = L.roi_distortion(x_hat, x, rm, luma.ssim, luma.perceptual, DCFG)
    assert float(d["d_bg"]) == pytest.approx(0.0, abs=1e-5)


def test_train_refuses_with_exit_3_and_records_substitute(empty_home, tmp_path, capsys):  # noqa: F811
    from lossarena.codecs.roi.cli import main

    rc = main(["train", "roi-demo", "--out", str(tmp_path / "o"), "--stage", "1", "--steps", "1",
               "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 3 and "lpips-alex" in err and "--perceptual-substitute" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "roi_stage1.pt").exists()
    assert main(["train", "roi-demo", "--out", str(tmp_path / "o"), "--device", "nonsense"]) == 2
