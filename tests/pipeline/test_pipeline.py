"""The top layer without running the whole demo: profiles, the shipped base, the evidence checks, the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from lossarena.pipeline import demo_base
from lossarena.pipeline.demo import load_profile, profiles
from lossarena.pipeline.evidence import (
    answer_table,
    catch_table,
    cross_metric_table,
    own_column_check,
    truth_vs_recovered,
)

from lossarena.errors import InputError


def test_profiles_share_one_schema_and_unknown_names_fail():
    assert {"small", "default", "paper"} <= set(profiles())
    keys = [set(load_profile(n)) for n in ("small", "default", "paper")]
    assert keys[0] == keys[1] == keys[2]
    assert load_profile("demo")["name"] == "default"  # the old scale name
    assert load_profile("small")["study"]["participants"] < load_profile("default")["study"]["participants"]
    with pytest.raises(InputError, match="no such demo profile"):
        load_profile("huge")


def test_shipped_base_verifies_its_hash_and_unpacks(tmp_path):
    ckpt = demo_base.unpack(tmp_path / "base.pt")
    from lossarena.codecs.model import load_checkpoint

    model, cfg = load_checkpoint(ckpt)
    assert cfg["shipped_base"]["sha256"] == demo_base.expected_sha256()
    assert cfg["finished"] and cfg["loss"] == "mse"
    assert "kodak" not in str(cfg.get("data", "")).lower()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
    assert out["x_hat"].shape == (1, 3, 64, 64)
    # buffers stay fp32: a likelihood bound of 0 (1e-9 in fp16) gave infinite estimated bits
    assert float(model.gaussian_conditional.likelihood_lower_bound.bound) == pytest.approx(1e-9)
    assert float(model.entropy_bottleneck.likelihood_lower_bound.bound) == pytest.approx(1e-9)
    assert all(torch.isfinite(-torch.log2(v)).all() for v in out["likelihoods"].values())
    bad = tmp_path / "demo_base.pt"
    shutil.copyfile(demo_base.BASE_FILE, bad)
    shutil.copyfile(str(demo_base.BASE_FILE) + ".sha256", str(bad) + ".sha256")
    with open(bad, "r+b") as f:  # flip one byte
        f.seek(1000)
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(InputError, match="does not match"):
        demo_base.unpack(tmp_path / "x.pt", bad)


def test_pack_roundtrip_keeps_the_weights(tmp_path):
    from lossarena.codecs.model import build_model, read_checkpoint, save_checkpoint

    torch.manual_seed(0)
    m = build_model(16, 24)
    src = save_checkpoint(tmp_path / "m.pt", m, {"loss": "mse", "lmbda": 100.0, "step": 3,
                                                  "architecture": {"N": 16, "M": 24}})
    packed = demo_base.pack(src, tmp_path / "p.pt")
    out = demo_base.unpack(tmp_path / "u.pt", packed)
    a, b = read_checkpoint(src)["state_dict"], read_checkpoint(out)["state_dict"]
    w = "g_a.0.weight"
    assert torch.allclose(a[w], b[w], atol=1e-3) and not torch.equal(a[w], torch.zeros_like(a[w]))


def test_training_images_are_not_kodak(tmp_path):
    paths = demo_base.training_images(tmp_path)
    assert len(paths) >= 10
    assert not any("kodim" in p.name for p in paths)


def test_cross_metric_table_signs_and_own_column():
    bpp = [0.1, 0.2, 0.4]
    rows = []
    for loss, dpsnr, dssim in (("mse", 0, 0), ("ssim", -0.5, 0.02), ("gmsd", -0.2, 0.01)):
        for r, b in enumerate(bpp):
            rows.append({"loss": loss, "bpp": b, "psnr": 25 + 3 * r + dpsnr, "ssim": 0.8 + 0.05 * r + dssim,
                         "gmsd": 0.1 - 0.02 * r - (0.005 if loss == "gmsd" else 0.0)})
    t = cross_metric_table(pd.DataFrame(rows), ["psnr", "ssim", "gmsd"], {"psnr": True, "ssim": True, "gmsd": False})
    assert list(t.index) == ["gmsd", "ssim"]
    assert t.loc["ssim", "psnr"] == pytest.approx(-0.5, abs=1e-6)
    assert t.loc["ssim", "ssim"] == pytest.approx(0.02, abs=1e-6)
    assert t.loc["gmsd", "gmsd"] == pytest.approx(0.005, abs=1e-6)  # lower-is-better: positive = better
    own = own_column_check(t).set_index("metric")
    assert own.loc["ssim", "own_wins"] and own.loc["gmsd", "own_wins"]


def test_cross_metric_table_collects_bd_caveats_instead_of_warning(recwarn, caplog):
    """The demo's output must carry no warning text: BD caveats are collected and shown once on the page."""
    from lossarena.pipeline.stages import _bd_caveats

    rows = [{"loss": "mse", "bpp": b, "psnr": p} for b, p in ((0.1, 25), (0.2, 27), (0.25, 26.5), (0.4, 30))]
    rows += [{"loss": "ssim", "bpp": b, "psnr": p} for b, p in ((0.15, 25), (0.3, 28), (0.6, 31))]
    caveats: list = []
    t = cross_metric_table(pd.DataFrame(rows), ["psnr"], {"psnr": True}, caveats=caveats)
    assert np.isfinite(t.loc["ssim", "psnr"])
    assert not [w for w in recwarn if "BDWarning" in w.category.__name__] and "monotonic" not in caplog.text
    assert {c[:2] for c in caveats} == {("ssim", "psnr")} and any("not monotonic" in c[2] for c in caveats)
    html = _bd_caveats(caveats, 1)
    assert "the MSE curve: the metric is not monotonic" in html and "all 1 cells" in html
    with pytest.warns(UserWarning, match="not monotonic"):  # without a list the module's warning stands
        cross_metric_table(pd.DataFrame(rows), ["psnr"], {"psnr": True})


def test_truth_vs_recovered_and_answer():
    truth = {("i1", "0.1", c): q for c, q in zip("abc", (1.0, 0.0, -1.0))}
    truth |= {("i1", "0.3", c): q for c, q in zip("abc", (-1.0, 0.5, 0.5))}
    scores = pd.DataFrame({"content": ["i1"] * 6, "group": ["0.1"] * 3 + ["0.3"] * 3, "condition": list("abc") * 2,
                           "score": [1.1, 0.1, -0.9, -0.8, 0.3, 0.6], "ci_low": [0.5] * 3 + [-2] * 3,
                           "ci_high": [1.5] * 3 + [2] * 3})
    j, st = truth_vs_recovered(scores, truth)
    assert st["n"] == 6 and st["r"] > 0.95 and st["mae"] < 0.2
    votes = pd.DataFrame({"participant": ["p"] * 20, "content": "i1", "group": ["0.1"] * 10 + ["0.3"] * 10,
                          "condition_a": ["a"] * 10 + ["c"] * 10, "condition_b": ["b"] * 10 + ["b"] * 10,
                          "winner": ["a"] * 10 + ["c"] * 5 + ["b"] * 5})
    ans = answer_table(scores, votes, truth, ["a", "b", "c"]).set_index("group")
    assert ans.loc["0.1", "winner"] == "a" and ans.loc["0.1", "agrees"] and ans.loc["0.1", "significant"]
    assert ans.loc["0.3", "winner"] == "c" and not ans.loc["0.3", "significant"]


def test_catch_table_counts_each_screen():
    kinds = {"h1": "honest", "h2": "honest", "r1": "random", "l1": "always_left", "f1": "too_fast"}
    t = catch_table(kinds, refused={"l1"}, qc_flags={"f1": ["too fast"], "h2": ["trap"]}, outliers={"r1", "f1"})
    t = t.set_index("kind")
    assert t.loc["random", "caught"] == 1 and t.loc["always_left", "training_gate"] == 1
    assert t.loc["too_fast", "qc_flags"] == 1 and t.loc["too_fast", "outlier_screen"] == 1
    assert t.loc["honest", "caught"] == 1 and t.loc["honest", "missed"] == 1


def test_cli_help_is_light_and_verbosity_flags_parse():
    code = ("import sys; from lossarena.pipeline.cli import main; rc = main(['-q', '--help']); "
            "print(rc, 'torch' in sys.modules, 'compressai' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "0 False False"
    r = subprocess.run([sys.executable, "-m", "lossarena", "nosuchtool"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr

