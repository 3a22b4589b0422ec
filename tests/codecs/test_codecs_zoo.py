"""Zoo building, evaluation (results.csv), RD plots, rate matching with anchors and custom providers."""

from __future__ import annotations

import csv
import functools

import pandas as pd
import pytest
import torch
from codecs_helpers import images, session_dir, threads_as_in_workers
from lossarena.codecs.cli import main as codecs_main
from lossarena.codecs.evaluate import evaluate
from lossarena.codecs.match import MANIFEST_COLUMNS, match_rates
from lossarena.codecs.providers import CLASSICAL, CODECS, ClassicalCondition, Condition, Encoded
from lossarena.codecs.rd import plot_rd
from lossarena.codecs.zoo import default_lambda, loss_status, train_zoo
from lossarena.data.images import list_images, load_image

from lossarena.errors import InputError

CONFIG = {
    "seed": 0, "arch": {"N": 16, "M": 24}, "patch": 64, "batch": 2,
    "base": {"levels": ["medium"], "steps": 25, "lr": 2e-3},
    "finetune": {"losses": ["mse", "psnr", "lpips", "no-such-metric"], "levels": ["low", "high"], "steps": 8,
                 "lr": 3e-3},
    "lambdas": {"mse": {"low": 5, "high": 5000}},
}


@functools.cache
def zoo():
    torch.set_num_threads(1)
    lines = []
    res = train_zoo(CONFIG, session_dir() / "zoo", images(), progress=False, log=lines.append)
    torch.set_num_threads(2)
    return res, lines


def test_zoo_trains_base_then_finetunes_and_skips():
    res, lines = zoo()
    z = session_dir() / "zoo"
    assert sorted(p.name for p in z.glob("*.pt")) == ["mse-high.pt", "mse-low.pt", "psnr-high.pt", "psnr-low.pt"]
    assert (z / "base" / "mse-medium.pt").is_file() and (z / "zoo.json").is_file()
    assert "no-such-metric" in res["skipped"]
    if not loss_status("lpips")[0]:
        assert any(line.startswith("skipped lpips: ImageNet backbone alexnet missing") for line in lines)
    # a second run trains nothing
    again = []
    train_zoo(CONFIG, z, images(), progress=False, log=again.append)
    assert sum(line.startswith("exists:") for line in again) == 5


def test_default_lambda_grid_is_ordered():
    for loss in ("mse", "psnr"):
        lo, me, hi = (default_lambda(loss, lv) for lv in ("low", "medium", "high"))
        assert 0 < lo < me < hi
    with pytest.raises(InputError, match="level"):
        default_lambda("mse", "extreme")


@functools.cache
def results():
    z = session_dir() / "zoo"
    return evaluate(sorted(z.glob("*.pt")), images(), session_dir() / "results.csv", metrics=["mse", "psnr"],
                    progress=False)


def test_evaluate_writes_real_and_estimated_bpp():
    zoo()
    df = results()
    assert len(df) == 4 * 3
    assert {"image", "model", "loss", "lmbda", "bpp", "bpp_est", "mse", "psnr"} <= set(df.columns)
    assert (df["bpp"] > 0).all() and (df["bpp_est"] > 0).all()
    # the real file is never shorter than the ideal code length minus rounding, and not far above it
    assert (df["bpp"] > 0.5 * df["bpp_est"]).all() and (df["bpp"] < 3 * df["bpp_est"] + 0.2).all()
    lam = df.groupby("model")["lmbda"].first()
    assert lam["mse-low"] == 5 and lam["mse-high"] == 5000  # config overrides reach the checkpoints


def test_rd_plot_and_bd_rate_on_results(capsys):
    zoo()
    results()
    png = plot_rd(session_dir() / "results.csv", session_dir() / "rd.png")
    assert png.stat().st_size > 10_000
    assert codecs_main(["rd", str(session_dir() / "results.csv"), "--out", str(session_dir() / "rd2.png"),
                        "--no-anchors", "--metrics", "psnr"]) == 0


def test_classical_anchor_bisection_hits_target():
    x = load_image(list_images(images())[0])
    for name in ("jpeg", "jpeg2000", "jpegxl", "avif"):
        cond = ClassicalCondition(CLASSICAL[name])
        enc = cond.encode(x, 1.0)
        assert enc.x_hat.shape == x.shape
        assert abs(enc.bpp - 1.0) < 0.35, (name, enc.bpp)
        assert float((enc.x_hat - x).pow(2).mean()) < 0.01


class FakeProvider:
    """A provider registered from outside, as the ROI codec does: one condition ``condition`` whose
    encoding of a target has the bitrate ``rate(target)`` (the pixels are a fixed darkening)."""

    def __init__(self, name: str, condition: str, rate=lambda t: t):
        self.name, self.condition, self.rate = name, condition, rate

    def conditions(self, zoo=None, **_):
        outer = self

        class C(Condition):
            name = outer.condition

            def encode(self, x, target_bpp):
                return Encoded(outer.rate(target_bpp), (x * 0.9).clamp(0, 1), {"fake": True})

        return [C()]


def test_match_writes_manifest_with_reference_and_providers(tmp_path):
    zoo()
    if "fake-roi" not in CODECS:
        CODECS.add("fake-roi", FakeProvider("fake-roi", "roi"))
    out = tmp_path / "STIMULI"
    manifest = match_rates(session_dir() / "zoo", images(), "0.3,1.0", out, anchors=["jpeg"],
                           codecs=["hyperprior", "fake-roi"], metrics=["psnr"], progress=False)
    rows = list(csv.DictReader(open(manifest)))
    assert list(rows[0]) == MANIFEST_COLUMNS + ["psnr"]
    n_img = len(list_images(images()))
    conditions = {"mse", "psnr", "jpeg", "roi"}
    assert len(rows) == n_img * (1 + len(conditions) * 2)
    refs = [r for r in rows if r["condition"] == "reference"]
    assert len(refs) == n_img and all(r["bpp"] == r["target_bpp"] == r["psnr"] == "" for r in refs)
    for r in rows:
        assert (out / r["path"]).is_file()
        assert not r["path"].startswith("/")
    df = pd.read_csv(manifest)
    zoo_rows = df[df.condition == "mse"]
    res = results()
    for _, r in zoo_rows.iterrows():  # the chosen model is the one whose real bpp is nearest the target
        cand = res[(res.image == r.content) & (res.loss == "mse")]["bpp"]
        assert abs(r.bpp - r.target_bpp) == pytest.approx((cand - r.target_bpp).abs().min(), abs=1e-5)
    assert {"roi"} <= set(df.condition)
    with pytest.raises(InputError):
        match_rates(None, images(), "0.25", tmp_path / "x", codecs=["hyperprior"], progress=False)


def test_match_leaves_out_a_condition_that_misses_the_target(tmp_path, caplog):
    if "capped" not in CODECS:
        # a codec that cannot go above 0.35 bpp (as the demo's small ROI codec at its top rate)
        CODECS.add("capped", FakeProvider("capped", "capped", lambda t: min(t, 0.35)))
    kw = dict(anchors=["jpeg"], codecs=["capped"], metrics=[], progress=False)
    keep = match_rates(None, images(), "0.3,1.0", tmp_path / "keep", **kw)
    assert {(r["condition"], r["target_bpp"]) for r in csv.DictReader(open(keep))} >= {("capped", "1")}
    with caplog.at_level("WARNING"):
        m = match_rates(None, images(), "0.3,1.0", tmp_path / "cut", max_rate_error=0.15, **kw)
    rows = list(csv.DictReader(open(m)))
    n_img = len(list_images(images()))
    assert not [r for r in rows if r["condition"] == "capped" and r["target_bpp"] == "1"]
    assert len([r for r in rows if r["condition"] == "capped"]) == n_img  # kept at 0.3 (it reaches 0.3)
    assert len([r for r in rows if r["condition"] == "jpeg"]) == 2 * n_img  # JPEG reaches both
    details = list(csv.DictReader(open(tmp_path / "cut" / "match_details.csv")))
    left = [d for d in details if "left_out" in d["details"]]
    assert len(left) == n_img and all(d["condition"] == "capped" and "-65.0%" in d["details"] for d in left)
    assert "capped left out" in caplog.text
    with pytest.raises(InputError, match="max-rate-error"):
        match_rates(None, images(), "0.3", tmp_path / "x", max_rate_error=-1, **kw)


def test_match_in_two_processes_writes_the_same_files(tmp_path):
    zoo()
    kw = dict(anchors=["jpeg"], codecs=["hyperprior"], metrics=["psnr"], progress=False)
    with threads_as_in_workers(2):  # the same per-process thread count as each of the two workers
        one = match_rates(session_dir() / "zoo", images(), "0.3,1.0", tmp_path / "one", **kw)
    two = match_rates(session_dir() / "zoo", images(), "0.3,1.0", tmp_path / "two", jobs=2, **kw)
    assert one.read_bytes() == two.read_bytes()
    for r in csv.DictReader(open(one)):
        assert (one.parent / r["path"]).read_bytes() == (two.parent / r["path"]).read_bytes()
