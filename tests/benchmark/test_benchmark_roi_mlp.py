"""ROI-MLP: the inputs in the documented order (each column recomputed independently), refusals instead
of zeros, the MLP, training on synthetic triplets, predictors, CLI."""

from __future__ import annotations

import warnings

import pytest
import torch
from lossarena.benchmark import register_learned_metrics, synthetic, twoafc
from lossarena.benchmark import roi_mlp as R
from lossarena.benchmark.predictors import get_predictor, predictor_names
from lossarena.data.images import save_image
from lossarena.pipeline.cli import main as lossarena_main
from standin import empty_home  # noqa: F401

from lossarena.errors import InputError, MissingWeightsError


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _roi_checkpoint(path, stage2: bool = True):
    """An untrained tiny ROI codec (+ discriminator): a valid checkpoint for plumbing, not for numbers."""
    from lossarena.codecs.roi import checkpoint as CK
    from lossarena.codecs.roi.config import load_config
    from lossarena.codecs.roi.model import Discriminator

    cfg = load_config({"model": {"N": 8, "M": 8, "protected": 2, "attn_blocks": 1}, "lambdas": [6, 5, 4, 3, 2, 1]})
    torch.manual_seed(0)
    model = CK.build_model(cfg)
    disc = Discriminator(8, width=8) if stage2 else None
    return CK.save_checkpoint(path, model, cfg, stage=2 if stage2 else 1, step=0, disc=disc)


def test_layout_and_mlp_sizes():
    names = R.feature_names()
    assert names[:8] == ["A:mse", "A:ms-ssim", "A:lpips", "A:d-loss", "B:mse", "B:ms-ssim", "B:lpips", "B:d-loss"]
    assert names[8] == "A:roi-mse" and names[15] == "B:roi-d-loss" and len(names) == 16
    f = torch.arange(16.0)[None]
    assert R.swap_ab(f)[0, :4].tolist() == [4, 5, 6, 7] and R.swap_ab(R.swap_ab(f)).equal(f)
    f12 = torch.arange(12.0)[None]
    assert R.swap_ab(f12)[0].tolist() == [3, 4, 5, 0, 1, 2, 9, 10, 11, 6, 7, 8]
    sizes = [layer.out_features for layer in R.RoiMLP(16).net if isinstance(layer, torch.nn.Linear)]
    assert sizes == [192, 64, 64, 32, 2]
    assert [R.msssim_scales(s, 300) for s in (11, 20, 21, 41, 80, 81, 160, 161, 512)] == [1, 1, 2, 3, 3, 4, 4, 5, 5]


@pytest.mark.usefixtures("empty_home")
def test_extractor_output_order_equals_documented_order(tmp_path):
    """Every column of the extractor's output equals its documented quantity, recomputed here from the
    registry's metrics, the discriminator score and a user mask smoothed with the seed's 50×50 box."""
    from lossarena.codecs.roi.codec import discriminator_score, get_codec
    from lossarena.codecs.roi.saliency import box_smooth

    from lossarena.metrics import compute
    from lossarena.metrics.gmsd import gms_map

    ck = _roi_checkpoint(tmp_path / "roi.pt")
    g = torch.Generator().manual_seed(1)
    ref = torch.rand(2, 3, 64, 96, generator=g)
    a = (ref + 0.05 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    b = (ref + 0.2 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    masks = tmp_path / "masks"
    mask = torch.zeros(2, 1, 64, 96)
    mask[0, :, 10:40, 20:70] = 1
    mask[1, :, 30:60, 0:50] = 1
    for i in range(2):
        save_image(mask[i:i + 1].repeat(1, 3, 1, 1), masks / f"r{i}.png")
    cfg = R.FeatureConfig(lpips="gms", roi_checkpoint=str(ck), saliency={"name": "folder", "folder": str(masks)})
    ext = R.FeatureExtractor(cfg)
    assert ext.names == R.feature_names()
    out = ext(ref, a, b, ["r0.png", "r1.png"])
    assert out.shape == (2, 16)

    rm = box_smooth(mask.clamp(1e-4, 1 - 1e-4), 50)  # σ(logit(mask)) = mask, then the 50×50 box
    assert not torch.allclose(rm, box_smooth(mask, 51), atol=1e-3)  # 50 ≠ 51: the kernel is visible
    codec = get_codec(ck)
    k = R.msssim_scales(64, 96)
    want = {}
    for side, x in (("A", a), ("B", b)):
        e2 = (x - ref).pow(2).mean(1, keepdim=True)
        lp = 1 - gms_map(x, ref, downsample=False, padding="replicate").float()
        comp = rm * x + (1 - rm) * ref
        d_w = discriminator_score(codec, ref, x, weight=rm)
        want[f"{side}:mse"] = e2.mean(dim=(1, 2, 3))
        want[f"{side}:roi-mse"] = (e2 * rm).mean(dim=(1, 2, 3))
        want[f"{side}:ms-ssim"] = 1 - compute("ms-ssim", x, ref, scales=k)
        want[f"{side}:roi-ms-ssim"] = 1 - compute("ms-ssim", comp, ref, scales=k)
        want[f"{side}:lpips"] = lp.mean(dim=(1, 2, 3))
        want[f"{side}:roi-lpips"] = (lp * rm).mean(dim=(1, 2, 3))
        want[f"{side}:d-loss"] = discriminator_score(codec, ref, x)
        want[f"{side}:roi-d-loss"] = d_w * rm.mean(dim=(1, 2, 3))
    for j, name in enumerate(ext.names):
        assert torch.allclose(out[:, j], want[name].float(), rtol=1e-4, atol=1e-6), name
    assert float(want["B:mse"].min()) > float(want["A:mse"].max())  # the columns are distinguishable


@pytest.mark.usefixtures("empty_home")
def test_refuses_instead_of_zeros_or_silent_substitutes(tmp_path):
    with pytest.raises(MissingWeightsError, match="--no-d-loss"):
        R.FeatureExtractor(R.FeatureConfig(lpips="gms"))  # D-loss needs a ROI codec checkpoint
    with pytest.raises(MissingWeightsError, match="--lpips gms"):
        R.FeatureExtractor(R.FeatureConfig(d_loss=False))  # LPIPS needs AlexNet; no silent GMS
    with pytest.raises(InputError, match="no discriminator"):
        R.FeatureExtractor(R.FeatureConfig(lpips="gms", roi_checkpoint=str(_roi_checkpoint(tmp_path / "s1.pt",
                                                                                          stage2=False))))
    ext = R.FeatureExtractor(R.FeatureConfig(lpips="gms", d_loss=False))
    assert ext.names == [n for n in R.feature_names() if "d-loss" not in n] and len(ext.names) == 12


@pytest.mark.usefixtures("empty_home")
def test_train_and_predict(tmp_path, monkeypatch):
    tr, te = tmp_path / "tr", tmp_path / "te"
    synthetic.synthetic_triplets(tr, n=40, size=32, kind="noise", seed=3, judges=9)
    synthetic.synthetic_triplets(te, n=20, size=32, kind="noise", seed=4, judges=9)
    ck = tmp_path / "roi.pt"
    monkeypatch.setenv(R.CHECKPOINT_ENV, str(tmp_path / "absent.pt"))
    register_learned_metrics()
    assert {"roi-mlp", "roi-mlp-basic"} <= set(predictor_names())
    assert not get_predictor("roi-mlp").available(None)
    with pytest.raises(MissingWeightsError, match="train-roi-mlp"):
        twoafc.run_2afc(te / "triplets.csv", te, ["roi-mlp"], 0, None, None, progress=False)

    cfg = R.RoiMlpConfig(epochs=30, features=R.FeatureConfig(lpips="gms", d_loss=False))
    hist = R.train_roi_mlp(tr / "triplets.csv", tr, ck, cfg, progress=False)
    for which in ("roi", "basic"):
        assert hist[which]["loss"][-1] < 0.7 * hist[which]["loss"][0]
        assert hist[which]["accuracy"][-1] >= 0.75
    meta = torch.load(ck, weights_only=True)
    assert meta["extractor"]["lpips"] == "gms" and meta["extractor"]["d_loss"] is False
    assert meta["features"] == [n for n in R.feature_names() if "d-loss" not in n]
    assert get_predictor("roi-mlp").available(ck)
    res = twoafc.run_2afc(te / "triplets.csv", te, ["roi-mlp", "roi-mlp-basic"], 0, None, None,
                          roi_mlp_checkpoint=ck, progress=False)
    acc = res.acc.set_index("metric")["accuracy"]
    assert acc["roi-mlp"] >= 0.75 and acc["roi-mlp-basic"] >= 0.75
    # predictions are probabilities; swapping A and B flips them (the MLP saw both orientations)
    ext, models = R.load(ck)
    from lossarena.data.images import load_image

    row = res.predictions.iloc[0]
    ref, a, b = (load_image(te / row[k]) for k in ("reference", "a", "b"))
    f = ext(ref, a, b)
    p_ab = float(models["roi"].prob_a(f))
    p_ba = float(models["roi"].prob_a(R.swap_ab(f)))
    assert 0 <= p_ab <= 1 and (p_ab - 0.5) * (p_ba - 0.5) <= 0


@pytest.mark.usefixtures("empty_home")
def test_cli_train_roi_mlp(tmp_path, capsys):
    d = tmp_path / "s"
    synthetic.synthetic_triplets(d, n=8, size=32, kind="noise", seed=0)
    base = ["benchmark", "train-roi-mlp", "--triplets", str(d / "triplets.csv"), "--images", str(d),
            "--out", str(tmp_path / "r.pt"), "--epochs", "2", "--no-progress"]
    assert lossarena_main(base) == 3  # no AlexNet, no ROI codec: refuses with a one-line reason
    assert "error:" in capsys.readouterr().err
    assert lossarena_main(base + ["--lpips", "gms", "--no-d-loss"]) == 0 and (tmp_path / "r.pt").is_file()
    rc = lossarena_main(["benchmark", "2afc", str(d / "triplets.csv"), "--images", str(d), "-m", "roi-mlp-basic",
                         "--roi-mlp-checkpoint", str(tmp_path / "r.pt"), "--bootstrap", "0",
                         "--out", str(tmp_path / "acc.csv"), "--no-progress"])
    assert rc == 0
