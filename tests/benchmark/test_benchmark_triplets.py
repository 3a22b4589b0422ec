"""2AFC triplet loaders: BAPPS, CLIC, PieAPP, the study's votes; the canonical CSV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from lossarena.data import triplets as T
from lossarena.data.images import save_image

from lossarena.errors import InputError
from lossarena.paths import require_shared


def _img(path, v=0.5, size=8):
    save_image(torch.full((1, 3, size, size), float(v)), path)


def test_bapps_orientation(tmp_path):
    # judge = fraction of humans who preferred p1  ->  p_a (a = p0) = 1 - judge
    root = tmp_path / "2afc" / "val" / "cnn"
    for sub in ("ref", "p0", "p1", "judge"):
        (root / sub).mkdir(parents=True)
    for i, j in enumerate([0.0, 0.8, 0.5]):
        for sub in ("ref", "p0", "p1"):
            _img(root / sub / f"{i:06d}.png")
        np.save(root / "judge" / f"{i:06d}.npy", np.array([j]))
    out = tmp_path / "t.csv"
    df = T.bapps_to_triplets(tmp_path / "2afc", out)
    assert list(df["p_a"]) == pytest.approx([1.0, 0.2, 0.5])
    assert df["a"].iloc[1] == "val/cnn/p0/000001.png" and df["b"].iloc[1] == "val/cnn/p1/000001.png"
    back = T.read_triplets(out)
    assert list(back.columns) == ["reference", "a", "b", "p_a"]
    assert back["p_a"].tolist() == pytest.approx(df["p_a"].tolist())


def test_bapps_bad_judge(tmp_path):
    for sub in ("ref", "p0", "p1", "judge"):
        (tmp_path / sub).mkdir()
    for sub in ("ref", "p0", "p1"):
        _img(tmp_path / sub / "000000.png")
    np.save(tmp_path / "judge" / "000000.npy", np.array([1.5]))
    with pytest.raises(InputError, match="000000.npy"):
        T.bapps_to_triplets(tmp_path)


def test_clic_orientation_and_errors(tmp_path):
    p = tmp_path / "oracle.csv"
    p.write_text("o.png,a.png,b.png,0\no.png,a.png,b.png,1\no.png,b.png,c.png,1\n")
    df = T.clic_to_triplets(p, prefix="imgs")
    assert df["p_a"].tolist() == [1.0, 0.0, 0.0]
    assert df["reference"].iloc[0] == "imgs/o.png"
    p.write_text("o.png,a.png,b.png,0\no.png,a.png,b.png,2\n")
    with pytest.raises(InputError, match="line 2"):
        T.clic_to_triplets(p)


def test_clic2021_majority_baseline_is_51_6_percent():
    """The shared CLIC 2021 validation labels: always-majority scores 51.6% (2,692 of 5,220 say A)."""
    from lossarena.benchmark import scoring

    oracle = require_shared("triplets", "clic2021_labels", "oracle.csv")
    df = T.clic_to_triplets(oracle)
    assert len(df) == 5220
    p = df["p_a"].to_numpy()
    base = scoring.summarize("always-majority", scoring.always_majority_pref(p), p, n_boot=200)
    assert base.accuracy == pytest.approx(2692 / 5220)
    assert round(100 * base.accuracy, 1) == 51.6
    # repeated, partly contradictory judgments: the ceiling is below 100%
    assert scoring.has_repeated_judgments(df)
    ceil = scoring.summarize("human-ceiling", scoring.human_ceiling_pref(df), p, n_boot=0)
    assert 0.95 < ceil.accuracy < 1.0
    assert ceil.accuracy == pytest.approx(ceil.score_2afc)  # single votes: score = accuracy


def test_pieapp_layout(tmp_path):
    lab = tmp_path / "labels" / "test"
    lab.mkdir(parents=True)
    pd.DataFrame({"ref. image": ["ref_001.png"] * 2, " distorted image A": ["d1.png", "ref_001.png"],
                  " distorted image B": ["d2.png", "d1.png"], " preference for A": [0.25, 0.9]}
                 ).to_csv(lab / "ref_001_pairwise_labels.csv", index=False)
    df = T.pieapp_to_triplets(tmp_path, "test")
    assert df["p_a"].tolist() == [0.25, 0.9]
    assert df["a"].iloc[0] == "distorted_images/test/ref_001/d1.png"
    assert df["a"].iloc[1] == "reference_images/test/ref_001.png"
    assert df["reference"].iloc[0] == "reference_images/test/ref_001.png"
    df = T.pieapp_to_triplets(tmp_path, "test", images_root=tmp_path.parent)
    assert df["a"].iloc[0] == f"{tmp_path.name}/distorted_images/test/ref_001/d1.png"


def _study(tmp_path):
    stim = tmp_path / "stimuli"
    rows = []
    for content in ("c1", "c2"):
        _img(stim / content / "reference.png")
        rows.append((content, "reference", "", "", f"{content}/reference.png"))
        for cond in ("mse", "lpips"):
            for tb in ("0.1", "0.2"):
                _img(stim / content / f"{cond}_{tb}.png")
                rows.append((content, cond, tb, tb, f"{content}/{cond}_{tb}.png"))
    pd.DataFrame(rows, columns=["content", "condition", "target_bpp", "bpp", "path"]).to_csv(
        stim / "manifest.csv", index=False)
    return stim


def test_votes_to_triplets_aggregates_with_ties(tmp_path):
    stim = _study(tmp_path)
    votes = pd.DataFrame([
        ("p1", "c1", "mse", "lpips", "lpips", "0.1"),
        ("p2", "c1", "lpips", "mse", "lpips", "0.1"),
        ("p3", "c1", "mse", "lpips", "tie", "0.1"),
        ("p4", "c1", "mse", "lpips", "mse", "0.1"),
        ("p1", "c1", "mse", "lpips", "mse", "0.2"),
        ("p1", "c2", "lpips", "mse", "lpips", "0.10"),
        ("p1", "c2", "reference", "mse", "reference", "0.1"),
    ], columns=["participant", "content", "condition_a", "condition_b", "winner", "group"])
    votes.to_csv(tmp_path / "votes.csv", index=False)
    df = T.votes_to_triplets(tmp_path / "votes.csv", stim / "manifest.csv", tmp_path / "t.csv")
    assert len(df) == 3  # the vote against the reference itself is left out
    first = df.iloc[0]
    # a = "lpips" (alphabetically first): 2 wins + ½ tie of 4 votes
    assert first["a"] == "c1/lpips_0.1.png" and first["b"] == "c1/mse_0.1.png"
    assert first["reference"] == "c1/reference.png"
    assert first["p_a"] == pytest.approx(2.5 / 4)
    assert df.iloc[1]["a"] == "c1/lpips_0.2.png" and df.iloc[1]["p_a"] == 0.0
    assert df.iloc[2]["p_a"] == 1.0  # group "0.10" matches target_bpp 0.1
    assert T.read_triplets(tmp_path / "t.csv")["p_a"].tolist() == pytest.approx(df["p_a"].tolist())


def test_votes_errors_name_line_and_field(tmp_path):
    stim = _study(tmp_path)
    v = tmp_path / "votes.csv"
    v.write_text("participant,content,condition_a,condition_b,winner,group\n"
                 "p1,c1,mse,lpips,mse,0.1\np1,c1,mse,lpips,jpeg,0.1\n")
    with pytest.raises(InputError, match=r"line 3: field 'winner'"):
        T.votes_to_triplets(v, stim / "manifest.csv")
    v.write_text("participant,content,condition_a,condition_b,winner,group\np1,c9,mse,lpips,mse,0.1\n")
    with pytest.raises(InputError, match="line 2: no stimulus for content 'c9'"):
        T.votes_to_triplets(v, stim / "manifest.csv")
    v.write_text("participant,content,condition_a,condition_b,winner\np1,c1,mse,lpips,mse\n")
    with pytest.raises(InputError, match="2 stimuli"):  # no group and two bitrates: ambiguous
        T.votes_to_triplets(v, stim / "manifest.csv")


def test_read_triplets_validation(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("reference,a,b,p_a\nr.png,a.png,b.png,0.5\nr.png,a.png,b.png,1.2\n")
    with pytest.raises(InputError, match="line 3: field 'p_a'"):
        T.read_triplets(p)
    p.write_text("reference,a,p_a\nr.png,a.png,0.5\n")
    with pytest.raises(InputError, match="missing column"):
        T.read_triplets(p)
    p.write_text("reference,a,b,p_a\nr.png,,b.png,0.5\n")
    with pytest.raises(InputError, match="line 2: field 'a' is empty"):
        T.read_triplets(p)
