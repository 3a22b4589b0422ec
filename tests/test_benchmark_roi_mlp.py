"""ROI-MLP: the 16 inputs, the loss maps, the MLP, training on synthetic triplets, predictors, CLI."""

from __future__ import annotations

import warnings

import pytest
import torch
from lossarena.benchmark import roi_mlp as R
from lossarena.benchmark import synthetic, twoafc
from lossarena.benchmark.predictors import get_predictor, predictor_names
from standin import empty_home  # noqa: F401

from lossarena.pipeline.cli import main as lossarena_main
from lossarena.errors import MissingWeightsError


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    R.set_checkpoint(None)  # never leak a test checkpoint into other tests


def test_feature_layout_matches_the_seed():
    names = R.feature_names()
    assert len(names) == 16
    assert names[:8] == ["A:mse", "A:ms-ssim", "A:lpips", "A:d-loss", "B:mse", "B:ms-ssim", "B:lpips", "B:d-loss"]
    assert names[8] == "A:roi-mse" and names[15] == "B:roi-d-loss"
    f = torch.arange(16.0)[None]
    assert R.swap_ab(f)[0, :4].tolist() == [4, 5, 6, 7] and R.swap_ab(R.swap_ab(f)).equal(f)
    m = R.RoiMLP(16)
    sizes = [layer.out_features for layer in m.net if isinstance(layer, torch.nn.Linear)]
    assert sizes == [192, 64, 64, 32, 2]


def test_loss_maps():
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 3, 64, 64, generator=g)
    assert torch.allclose(R.msssim_map(y, y), torch.ones(2, 1, 64, 64), atol=1e-4)
    assert torch.allclose(R.gms_map(y, y), torch.ones(2, 1, 64, 64), atol=1e-5)
    small = (y + 0.02 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    big = (y + 0.2 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    assert R.msssim_map(small, y).mean() > R.msssim_map(big, y).mean()
    assert R.gms_map(small, y).mean() > R.gms_map(big, y).mean()


@pytest.mark.usefixtures("empty_home")
def test_train_and_predict_without_lpips_weights(tmp_path, monkeypatch, capsys):
    tr, te = tmp_path / "tr", tmp_path / "te"
    synthetic.synthetic_triplets(tr, n=40, size=32, kind="noise", seed=3, judges=9)
    synthetic.synthetic_triplets(te, n=20, size=32, kind="noise", seed=4, judges=9)
    ck = tmp_path / "roi.pt"
    monkeypatch.setenv(R.CHECKPOINT_ENV, str(tmp_path / "absent.pt"))
    R.set_checkpoint(None)
    assert {"roi-mlp", "roi-mlp-basic"} <= set(predictor_names())
    assert not get_predictor("roi-mlp").available()
    with pytest.raises(MissingWeightsError, match="train-roi-mlp"):
        twoafc.run_2afc(te / "triplets.csv", te, ["roi-mlp"], 0, None, None, progress=False)

    hist = R.train_roi_mlp(tr / "triplets.csv", tr, ck, R.RoiMlpConfig(epochs=30), progress=False)
    err = capsys.readouterr().err
    assert "REPLACED by the weight-free 1 - GMS" in err  # the LPIPS substitute is announced loudly
    for which in ("roi", "basic"):
        assert hist[which]["loss"][-1] < 0.7 * hist[which]["loss"][0]
        assert hist[which]["accuracy"][-1] >= 0.75
    meta = torch.load(ck, weights_only=True)
    assert meta["extractor"]["lpips"] == "gms" and meta["extractor"]["d_loss"] == "zero"
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
    R.set_checkpoint(None)


@pytest.mark.usefixtures("empty_home")
def test_cli_train_roi_mlp(tmp_path, capsys):
    d = tmp_path / "s"
    synthetic.synthetic_triplets(d, n=8, size=32, kind="noise", seed=0)
    rc = lossarena_main(["benchmark", "train-roi-mlp", "--triplets", str(d / "triplets.csv"), "--images", str(d),
                         "--out", str(tmp_path / "r.pt"), "--epochs", "2", "--no-progress"])
    assert rc == 0 and (tmp_path / "r.pt").is_file()
    rc = lossarena_main(["benchmark", "2afc", str(d / "triplets.csv"), "--images", str(d), "-m", "roi-mlp-basic",
                         "--roi-mlp-checkpoint", str(tmp_path / "r.pt"), "--bootstrap", "0",
                         "--out", str(tmp_path / "acc.csv"), "--no-progress"])
    assert rc == 0
    R.set_checkpoint(None)
