"""The 2AFC benchmark end to end on synthetic triplets with known answers, through the API and the CLI."""

from __future__ import annotations

import pandas as pd
import pytest
from lossarena.benchmark import synthetic, twoafc
from lossarena.pipeline.cli import main as lossarena_main
from standin import empty_home  # noqa: F401

from lossarena.errors import MissingWeightsError, UnknownNameError


@pytest.fixture(scope="module")
def noise_set(tmp_path_factory):
    d = tmp_path_factory.mktemp("syn_noise")
    synthetic.synthetic_triplets(d, n=32, size=48, kind="noise", seed=0, judges=5)
    return d


def test_metrics_beat_chance_on_a_known_task(noise_set, tmp_path):
    out = tmp_path / "acc.csv"
    res = twoafc.run_2afc(noise_set / "triplets.csv", noise_set, ["mse", "psnr"], 300, out, tmp_path / "rep",
                          progress=False)
    acc = pd.read_csv(out)
    assert list(acc.columns) == ["metric", "score_2afc", "accuracy", "ci_low", "ci_high", "n"]
    assert acc["metric"].tolist() == ["mse", "psnr", "always-majority", "human-ceiling"]
    row = acc.set_index("metric")
    # A and B differ only in noise strength and humans prefer the less noisy one
    assert row.loc["mse", "accuracy"] >= 0.9
    assert row.loc["mse", "score_2afc"] == pytest.approx(row.loc["psnr", "score_2afc"])  # same ranking
    assert row.loc["mse", "score_2afc"] <= row.loc["human-ceiling", "score_2afc"] + 1e-9
    assert (acc["ci_low"] <= acc["score_2afc"]).all() and (acc["score_2afc"] <= acc["ci_high"]).all()
    assert (acc["n"] == 32).all()
    assert res.standin == [] and "STAND-IN" not in (tmp_path / "rep" / "index.html").read_text()
    # per-triplet predictions: mse prefers A exactly when A has the smaller MSE
    pred = res.predictions
    assert ((pred["mse:a"] < pred["mse:b"]) == (pred["mse:pref_a"] == 1.0)).all()
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "always-majority" in page and "accuracy.png" in page
    assert (tmp_path / "rep" / "accuracy.png").stat().st_size > 5000


def test_learnable_task_defeats_mse(tmp_path):
    """With a brightness shift that humans ignore, MSE is near chance: the task needs a learned metric."""
    d = tmp_path / "shift"
    synthetic.synthetic_triplets(d, n=40, size=32, kind="shift-vs-noise", seed=5)
    acc = twoafc.run_2afc(d / "triplets.csv", d, ["mse"], 0, None, None, progress=False).acc.set_index("metric")
    assert acc.loc["mse", "accuracy"] < 0.75


@pytest.mark.usefixtures("empty_home")
def test_default_metrics_skip_missing_weights(tmp_path, caplog):
    names = twoafc.default_names()
    assert "mse" in names and "lpips-alex" not in names and "dpis" not in names
    assert "roi-mlp" not in names  # no checkpoint
    synthetic.synthetic_triplets(tmp_path, n=4, size=32, kind="noise", seed=0)
    res = twoafc.run_2afc(tmp_path / "triplets.csv", tmp_path, None, 0, None, None, progress=False)
    scored = res.acc["metric"].tolist()
    assert "mse" in scored and "psnr" in scored
    # every default metric was either scored or skipped with a logged reason
    for n in names:
        assert n in scored or f"skipped {n}:" in caplog.text


@pytest.mark.usefixtures("empty_home")
def test_explicit_metric_errors(noise_set, tmp_path, capsys):
    with pytest.raises(UnknownNameError, match="did you mean 'psnr'"):
        twoafc.run_2afc(noise_set / "triplets.csv", noise_set, ["psrn"], 0, None, None, progress=False)
    with pytest.raises(MissingWeightsError):
        twoafc.run_2afc(noise_set / "triplets.csv", noise_set, ["lpips-alex"], 0, None, None, progress=False)
    rc = lossarena_main(["benchmark", "2afc", str(noise_set / "triplets.csv"), "--images", str(noise_set),
                         "-m", "dpis", "--out", str(tmp_path / "a.csv"), "--no-progress"])
    assert rc == 3
    assert "lossarena weights download" in capsys.readouterr().err


def test_cli_convert_votes_then_2afc(tmp_path, capsys):
    import torch
    from lossarena.data.images import save_image
    from lossarena.data.triplets import read_triplets

    g = torch.Generator().manual_seed(0)
    ref = torch.rand(1, 3, 32, 32, generator=g) * 0.6 + 0.2
    rows = [("k", "reference", "", "", "reference.png")]
    save_image(ref, tmp_path / "reference.png")
    for cond, s in (("good", 0.01), ("bad", 0.1)):
        save_image((ref + s * torch.randn(ref.shape, generator=g)).clamp(0, 1), tmp_path / f"{cond}.png")
        rows.append(("k", cond, "0.1", "0.1", f"{cond}.png"))
    pd.DataFrame(rows, columns=["content", "condition", "target_bpp", "bpp", "path"]).to_csv(
        tmp_path / "manifest.csv", index=False)
    pd.DataFrame([(f"p{i}", "k", "good", "bad", "good" if i < 4 else "tie", "0.1") for i in range(5)],
                 columns=["participant", "content", "condition_a", "condition_b", "winner", "group"]
                 ).to_csv(tmp_path / "votes.csv", index=False)
    rc = lossarena_main(["benchmark", "convert", "votes", str(tmp_path / "votes.csv"), "--manifest",
                         str(tmp_path / "manifest.csv"), "--out", str(tmp_path / "t.csv")])
    assert rc == 0
    t = read_triplets(tmp_path / "t.csv")
    assert t["a"].tolist() == ["bad.png"] and t["p_a"].tolist() == [pytest.approx(0.5 / 5)]
    rc = lossarena_main(["benchmark", "2afc", str(tmp_path / "t.csv"), "--images", str(tmp_path), "-m", "mse",
                         "--bootstrap", "50", "--out", str(tmp_path / "acc.csv"), "--no-progress"])
    assert rc == 0
    acc = pd.read_csv(tmp_path / "acc.csv").set_index("metric")
    assert acc.loc["mse", "score_2afc"] == pytest.approx(0.9)  # mse prefers "good" (b); 90% of votes agree
    assert acc.loc["mse", "accuracy"] == 1.0


def test_mismatched_sizes_are_named(tmp_path):
    import torch
    from lossarena.data.images import save_image

    from lossarena.errors import InputError

    save_image(torch.rand(1, 3, 16, 16), tmp_path / "r.png")
    save_image(torch.rand(1, 3, 16, 16), tmp_path / "a.png")
    save_image(torch.rand(1, 3, 20, 16), tmp_path / "b.png")
    pd.DataFrame([("r.png", "a.png", "b.png", 1.0)], columns=["reference", "a", "b", "p_a"]).to_csv(
        tmp_path / "t.csv", index=False)
    with pytest.raises(InputError, match="b.png"):
        twoafc.run_2afc(tmp_path / "t.csv", tmp_path, ["mse"], 0, None, None, progress=False)


def test_cli_clic_baselines_from_labels_alone(tmp_path, capsys):
    """`convert clic` + `2afc --baselines-only` reproduce CLIC 2021's always-majority 51.6% without images."""
    from lossarena.paths import require_shared

    oracle = require_shared("triplets", "clic2021_labels", "oracle.csv")
    assert lossarena_main(["benchmark", "convert", "clic", str(oracle), "--out", str(tmp_path / "t.csv")]) == 0
    rc = lossarena_main(["benchmark", "2afc", str(tmp_path / "t.csv"), "--baselines-only", "--bootstrap", "100",
                         "--out", str(tmp_path / "acc.csv"), "--report", str(tmp_path / "rep")])
    assert rc == 0
    acc = pd.read_csv(tmp_path / "acc.csv").set_index("metric")
    assert f"{100 * acc.loc['always-majority', 'accuracy']:.1f}" == "51.6"
    assert acc.loc["human-ceiling", "accuracy"] < 1.0
    assert (acc["n"] == 5220).all()
    assert (tmp_path / "rep" / "index.html").is_file()
