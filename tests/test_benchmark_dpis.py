"""DPIS: gradient map, architecture plumbing on stand-in backbones, checkpoint discovery, and training on a
learnable synthetic task (loss falls, held-out accuracy well above chance and above MSE).

Stand-in (random) VGG16/AlexNet weights are plumbing only: no number here is a DPIS result.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from lossarena.benchmark import dpis as D
from lossarena.benchmark import synthetic, twoafc
from standin import empty_home, standin_home, standin_root  # noqa: F401

from lossarena.pipeline.cli import main as lossarena_main
from lossarena.errors import MissingWeightsError
from lossarena.metrics import get_metric


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    D.set_checkpoint(None)  # never leak a test checkpoint into other tests


def test_gradient_map():
    x = torch.zeros(1, 3, 8, 8)
    x[..., 4:] = 1.0  # a vertical unit step
    g = D.gradient_map(x)
    assert g.shape == x.shape
    assert torch.allclose(g[..., 0, 3:5], torch.ones(3, 2), atol=1e-4)  # the step gives 1
    assert g[..., :, :2].max() < 1e-5  # flat region: 0
    assert torch.allclose(D.gradient_map(x + 0.3), g, atol=1e-5)  # blind to a brightness shift


def test_tile_positions():
    assert D.tile_positions(64, 224) == [0]
    assert D.tile_positions(768, 224) == [0, 224, 448, 544]
    assert D.tile_positions(448, 224) == [0, 224]


def test_registered_spec():
    spec = get_metric("dpis")
    assert spec.lower_better and spec.needs_weights == ("vgg16", "alexnet")


@pytest.mark.usefixtures("empty_home")
def test_missing_backbones_exit_3(tmp_path, capsys):
    with pytest.raises(MissingWeightsError, match="vgg16"):
        D.load_dpis(tmp_path / "none.pt")


@pytest.mark.usefixtures("standin_home")
def test_missing_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(D.CHECKPOINT_ENV, str(tmp_path / "nope.pt"))
    D.set_checkpoint(None)
    with pytest.raises(MissingWeightsError, match="train-dpis"):
        get_metric("dpis").function(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))


@pytest.mark.usefixtures("standin_home")
def test_distance_plumbing(tmp_path):
    net = D.DPIS(patch=32).eval()
    g = torch.Generator().manual_seed(0)
    y = torch.rand(1, 3, 32, 40, generator=g)
    x = (y + 0.1 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    with torch.no_grad():
        assert torch.allclose(net(y, y), torch.zeros(1), atol=1e-5)
        d = net(x, y)
    assert d.shape == (1,) and (d > 0).all()
    # 32x40 with 32-px patches: the mean over the 2 tiles
    with torch.no_grad():
        tiles = [net.head(net.stats(x[..., :, j:j + 32], y[..., :, j:j + 32])) for j in (0, 8)]
    assert torch.allclose(d, torch.stack(tiles).mean(0), atol=1e-5)
    # differentiable w.r.t. the distorted image (usable as a loss)
    xr = x.clone().requires_grad_(True)
    net(xr, y).sum().backward()
    assert xr.grad is not None and torch.isfinite(xr.grad).all() and xr.grad.abs().sum() > 0


@pytest.mark.usefixtures("standin_home")
def test_training_learns_a_synthetic_task(tmp_path):
    """Humans (simulated) ignore a brightness shift and judge the noise: DPIS must learn to."""
    tr, te = tmp_path / "train", tmp_path / "test"
    synthetic.synthetic_triplets(tr, n=32, size=32, kind="shift-vs-noise", seed=1)
    synthetic.synthetic_triplets(te, n=24, size=32, kind="shift-vs-noise", seed=2)
    ck = tmp_path / "dpis.pt"
    hist = D.train_dpis(tr / "triplets.csv", tr, ck, D.TrainConfig(epochs=40, batch_size=16, lr=0.05),
                        progress=False)
    assert hist["loss"][-1] < 0.6 * hist["loss"][0]
    assert hist["accuracy"][-1] >= 0.8
    res = twoafc.run_2afc(te / "triplets.csv", te, ["mse", "dpis"], 0, None, None, dpis_checkpoint=ck,
                          progress=False)
    assert res.standin == ["alexnet", "vgg16"]  # labelled: these numbers are not real
    acc = res.acc.set_index("metric")["accuracy"]
    assert acc["dpis"] >= 0.75 and acc["dpis"] > acc["mse"] + 0.1
    head, judge, meta = D.load_checkpoint(ck)
    assert meta["format"] == "lossarena-dpis" and meta["backbones"]["vgg16"] == "stand-in"
    D.set_checkpoint(None)


@pytest.mark.usefixtures("standin_home")
def test_cli_train_dpis(tmp_path, capsys):
    d = tmp_path / "s"
    synthetic.synthetic_triplets(d, n=4, size=32, kind="noise", seed=0)
    rc = lossarena_main(["benchmark", "train-dpis", "--triplets", str(d / "triplets.csv"), "--images", str(d),
                         "--out", str(tmp_path / "m.pt"), "--epochs", "1", "--no-progress"])
    assert rc == 0 and (tmp_path / "m.pt").is_file()
    assert "STAND-IN WEIGHTS" in capsys.readouterr().err
