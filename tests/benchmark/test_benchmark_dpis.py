"""DPIS: gradient map, architecture plumbing on stand-in backbones, checkpoint discovery, and training on a
learnable synthetic task (loss falls, held-out accuracy well above chance and above MSE).

Stand-in (random) VGG16/AlexNet weights are plumbing only: no number here is a DPIS result.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from lossarena.benchmark import dpis as D
from lossarena.benchmark import register_learned_metrics, synthetic, twoafc
from lossarena.pipeline.cli import main as lossarena_main
from standin import empty_home, standin_home, standin_root  # noqa: F401

from lossarena.errors import MissingWeightsError
from lossarena.metrics import get_metric


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


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


def test_registered_spec(tmp_path):
    register_learned_metrics()
    spec = get_metric("dpis")
    assert spec.lower_better and spec.needs_weights == ("vgg16", "alexnet")
    bound = get_metric(f"dpis:checkpoint={tmp_path / 'x.pt'}")  # the checkpoint is an explicit option
    assert bound.kwargs == {"checkpoint": str(tmp_path / "x.pt")}


def test_importing_the_benchmark_registers_nothing():
    """Learned metrics register only through register_learned_metrics(); listing metrics never imports
    the benchmark layer (no entry point of ours)."""
    import subprocess
    import sys

    code = ("import sys; import lossarena.benchmark.twoafc, lossarena.benchmark.dpis, lossarena.benchmark.roi_mlp\n"
            "from lossarena.metrics import metric_names\n"
            "from lossarena.benchmark.predictors import predictor_names\n"
            "assert 'dpis' not in metric_names(plugins=True), 'dpis registered on import'\n"
            "assert not predictor_names(), 'predictors registered on import'\n"
            "from lossarena.benchmark import register_learned_metrics; register_learned_metrics()\n"
            "assert 'dpis' in metric_names() and 'roi-mlp' in predictor_names()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([sys.executable, "-c", "import sys; from lossarena.metrics import metric_names; "
                        "metric_names(plugins=True); assert not any(m.startswith('lossarena.benchmark') "
                        "for m in sys.modules), 'benchmark imported by the metrics layer'"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.usefixtures("empty_home")
def test_missing_backbones_exit_3(tmp_path, capsys):
    with pytest.raises(MissingWeightsError, match="vgg16"):
        D.load_dpis(tmp_path / "none.pt")


@pytest.mark.usefixtures("standin_home")
def test_missing_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(D.CHECKPOINT_ENV, str(tmp_path / "nope.pt"))
    register_learned_metrics()
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
    # ablation of the trained model: without its gradient-map terms it ranks the held-out set worse
    # (the brightness shift is invisible to the gradient map, so that branch carries the task)
    ab = tmp_path / "dpis_nograd.pt"
    D.save_checkpoint(head, judge, ab, config={**meta["config"], "gradient_branch": False}, history={})
    assert D.load_checkpoint(ab)[0].gradient_branch is False
    res_ab = twoafc.run_2afc(te / "triplets.csv", te, ["dpis"], 0, None, None, dpis_checkpoint=ab, progress=False)
    acc_ab = res_ab.acc.set_index("metric")["accuracy"]["dpis"]
    assert acc_ab < acc["dpis"] - 0.04, (acc_ab, acc["dpis"])


@pytest.mark.usefixtures("standin_home")
def test_cli_train_dpis(tmp_path, capsys):
    d = tmp_path / "s"
    synthetic.synthetic_triplets(d, n=4, size=32, kind="noise", seed=0)
    rc = lossarena_main(["benchmark", "train-dpis", "--triplets", str(d / "triplets.csv"), "--images", str(d),
                         "--out", str(tmp_path / "m.pt"), "--epochs", "1", "--no-progress"])
    assert rc == 0 and (tmp_path / "m.pt").is_file()
    assert "STAND-IN WEIGHTS" in capsys.readouterr().err


def _seed_layout(tmp_path, n_bapps: int = 6, size: int = 32):
    """Tiny BAPPS (dataset/2afc/{train,val}/traditional/...) and PieAPP (PieAPPv0.1/...) trees laid out as the
    official downloads unpack, filled with synthetic images; labels prefer the less noisy image."""
    import numpy as np
    import pandas as pd
    from lossarena.data.images import save_image

    g = torch.Generator().manual_seed(0)
    bapps = tmp_path / "BAPPS" / "dataset" / "2afc"
    for split in ("train", "val"):
        d = bapps / split / "traditional"
        for sub in ("ref", "p0", "p1", "judge"):
            (d / sub).mkdir(parents=True)
        for i in range(n_bapps):
            ref = torch.rand(1, 3, size, size, generator=g)
            s0, s1 = (0.02, 0.2) if i % 2 else (0.2, 0.02)
            save_image(ref, d / "ref" / f"{i:06d}.png")
            save_image((ref + s0 * torch.randn(ref.shape, generator=g)).clamp(0, 1), d / "p0" / f"{i:06d}.png")
            save_image((ref + s1 * torch.randn(ref.shape, generator=g)).clamp(0, 1), d / "p1" / f"{i:06d}.png")
            np.save(d / "judge" / f"{i:06d}.npy", np.array([0.9 if s1 < s0 else 0.1]))  # share choosing p1
    pie = tmp_path / "PieAPPv0.1"
    rows = []
    for k in range(2):
        ref = torch.rand(1, 3, 48, 48, generator=g)
        save_image(ref, pie / "reference_images" / "train" / f"ref_{k:03d}.png")
        for j, s in enumerate((0.02, 0.1, 0.3)):
            save_image((ref + s * torch.randn(ref.shape, generator=g)).clamp(0, 1),
                       pie / "distorted_images" / "train" / f"ref_{k:03d}" / f"distort_{j}.png")
        lab = pie / "labels" / "train"
        lab.mkdir(parents=True, exist_ok=True)
        rows = {"ref. image": [f"ref_{k:03d}.png"] * 2, " distorted image A": ["distort_0.png", "distort_2.png"],
                " distorted image B": ["distort_1.png", "distort_1.png"],
                " raw probability of preference for A": [0.8, 0.2],
                " processed probability of preference for A": [0.85, 0.15]}
        pd.DataFrame(rows).to_csv(lab / f"ref_{k:03d}_pairwise_labels.csv", index=False)
    return bapps, pie


@pytest.mark.usefixtures("standin_home")
def test_train_dpis_on_bapps_and_pieapp_layout(tmp_path, capsys):
    """One command trains on BAPPS (train split) + PieAPP (train split) as downloaded."""
    import pandas as pd

    bapps, pie = _seed_layout(tmp_path)
    df, root = D.seed_triplets(bapps, pie)
    assert len(df) == 6 + 4  # BAPPS train only (not val), then PieAPP train
    assert df["reference"].iloc[0].startswith("BAPPS/dataset/2afc/train/traditional/ref/")
    assert df["p_a"].iloc[0] == pytest.approx(0.1) and df["p_a"].iloc[1] == pytest.approx(0.9)  # 1 − judge
    assert df["a"].iloc[6] == "PieAPPv0.1/distorted_images/train/ref_000/distort_0.png"
    assert df["p_a"].iloc[6] == pytest.approx(0.85)  # the processed probability
    assert all((root / p).is_file() for p in pd.concat([df["reference"], df["a"], df["b"]]))
    out = tmp_path / "dpis.pt"
    rc = lossarena_main(["benchmark", "train-dpis", "--bapps", str(bapps), "--pieapp", str(pie), "--out", str(out),
                         "--epochs", "1", "--crop", "32", "--patch", "32", "--no-progress"])
    assert rc == 0 and out.is_file()
    assert len(pd.read_csv(out.with_suffix(".triplets.csv"))) == 10
    assert lossarena_main(["benchmark", "train-dpis", "--bapps", str(bapps), "--out", str(out)]) == 2
    assert "--pieapp" in capsys.readouterr().err
