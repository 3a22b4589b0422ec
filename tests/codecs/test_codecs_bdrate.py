"""Bjøntegaard delta rate / metric: constructed curves with known answers and CompressAI's published curves."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lossarena.codecs.bdrate import bd_compare, bd_metric, bd_rate, load_curve
from lossarena.codecs.cli import main as codecs_main

from lossarena.errors import InputError
from lossarena.paths import require_shared

RATE = np.array([0.1, 0.2, 0.4, 0.8, 1.6])
PSNR = np.array([27.0, 29.5, 32.4, 35.1, 38.0])


@pytest.mark.parametrize("method", ["cubic", "pchip"])
@pytest.mark.parametrize("scale", [0.9, 0.5, 1.25])
def test_scaled_rate_gives_exact_bd_rate(method, scale):
    # B needs `scale` times A's bits at every quality: BD-rate = (scale - 1) * 100 exactly
    assert bd_rate(RATE, PSNR, RATE * scale, PSNR, method=method) == pytest.approx((scale - 1) * 100, abs=1e-9)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_log_linear_curves_known_answers(method):
    # PSNR = a + b log10(R); B = A + 1 dB: BD-PSNR = 1, BD-rate = 10**(-1/b) - 1
    b = 9.0
    r = np.geomspace(0.05, 2.0, 6)
    qa = 20 + b * np.log10(r)
    qb = qa + 1.0
    assert bd_metric(r, qa, r, qb, method=method) == pytest.approx(1.0, abs=1e-9)
    assert bd_rate(r, qa, r, qb, method=method) == pytest.approx((10 ** (-1 / b) - 1) * 100, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.3, 3.0), st.floats(-2.0, 2.0))
def test_antisymmetry_and_identity(scale, shift):
    ra, qa = RATE, PSNR
    rb, qb = RATE * scale, PSNR + shift * 0.1
    ab = bd_rate(ra, qa, rb, qb)
    ba = bd_rate(rb, qb, ra, qa)
    # exchanging A and B inverts the rate ratio (same overlap interval): (1 + ab)(1 + ba) = 1
    assert (1 + ab / 100) * (1 + ba / 100) == pytest.approx(1.0, rel=1e-9)
    assert bd_metric(ra, qa, rb, qb) == pytest.approx(-bd_metric(rb, qb, ra, qa), abs=1e-9)
    assert bd_rate(ra, qa, ra, qa) == pytest.approx(0.0, abs=1e-9)


def test_errors_name_the_problem():
    with pytest.raises(InputError, match="do not overlap"):
        bd_rate(RATE, PSNR, RATE, PSNR + 50)
    with pytest.raises(InputError, match="at least 2"):
        bd_rate([0.1], [30.0], RATE, PSNR)
    with pytest.raises(InputError, match="positive"):
        bd_rate([0.0, 0.1], [1.0, 2.0], RATE, PSNR)


def _independent_bd_rate(ra, qa, rb, qb):
    """VCEG-M33 computed a second way: numpy Polynomial fits + scipy quadrature (natural logs)."""
    from numpy.polynomial import Polynomial
    from scipy.integrate import quad

    fa = Polynomial.fit(qa, np.log(ra), 3)
    fb = Polynomial.fit(qb, np.log(rb), 3)
    lo, hi = max(min(qa), min(qb)), min(max(qa), max(qb))
    ia = quad(fa, lo, hi)[0]
    ib = quad(fb, lo, hi)[0]
    return (math.exp((ib - ia) / (hi - lo)) - 1) * 100


def test_published_hyperprior_vs_vtm_on_kodak():
    root = require_shared("rd_anchors", "compressai", "image", "kodak")
    vtm = root / "vtm.json"
    hp = root / "compressai-bmshj2018-hyperprior_mse_cuda.json"
    ra, qa, _ = load_curve(vtm, "psnr")
    rb, qb, _ = load_curve(hp, "psnr")
    ours = bd_compare(vtm, hp, "psnr")
    assert ours["bd_rate"] == pytest.approx(_independent_bd_rate(ra, qa, rb, qb), abs=1e-6)
    # the 2018 hyperprior needs clearly more bits than VVC (the literature reports about +30 %)
    assert 15 < ours["bd_rate"] < 50
    assert -2.5 < ours["bd_metric"] < -0.5
    # the pchip variant agrees within a few percent on these smooth curves
    assert bd_compare(vtm, hp, "psnr", method="pchip")["bd_rate"] == pytest.approx(ours["bd_rate"], abs=3)
    # the MS-SSIM-trained hyperprior beats the MSE-trained one in MS-SSIM
    ms = root / "compressai-bmshj2018-hyperprior_ms-ssim_cuda.json"
    assert bd_compare(hp, ms, "ms-ssim")["bd_rate"] < 0


def test_cli_json_on_csv_and_json(tmp_path, capsys):
    import pandas as pd

    rows = []
    for loss, scale in (("mse", 1.0), ("ssim", 0.9)):
        for i, (r, q) in enumerate(zip(RATE * scale, PSNR)):
            for img in ("a", "b"):  # per-image rows are averaged per model
                rows.append({"image": img, "model": f"{loss}-{i}", "loss": loss, "bpp": r, "psnr": q})
    csv = tmp_path / "results.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    js = tmp_path / "a.json"
    js.write_text(json.dumps({"name": "A", "results": {"bpp": list(RATE), "psnr-rgb": list(PSNR)}}))
    assert codecs_main(["bd-rate", f"{csv}:loss=mse", f"{csv}:loss=ssim", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bd_rate"] == pytest.approx(-10.0, abs=1e-9)
    assert codecs_main(["bd-rate", str(js), f"{csv}:loss=ssim", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bd_rate"] == pytest.approx(-10.0, abs=1e-9)
    assert codecs_main(["bd-rate", str(csv), str(csv), "--metric", "vsi"]) == 2  # bad input: one line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no column 'vsi'" in err[0]


# ---------------------------------------------------------------------- edge cases vs `bjontegaard`
def _bj():
    return pytest.importorskip("bjontegaard", reason="test-only reference: pip install bjontegaard")


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_agrees_with_bjontegaard_package(method):
    bj = _bj()
    rb, qb = RATE * 0.87, PSNR + np.array([0.1, 0.3, 0.2, 0.4, 0.1])
    want = bj.bd_rate(RATE, PSNR, rb, qb, method=method)
    assert bd_rate(RATE, PSNR, rb, qb, method=method) == pytest.approx(want, abs=1e-9)
    assert bd_metric(RATE, PSNR, rb, qb, method=method) == pytest.approx(
        bj.bd_psnr(RATE, PSNR, rb, qb, method=method), abs=1e-9)


def test_warns_on_non_monotonic_curve():
    from lossarena.codecs.bdrate import BDWarning

    dip = PSNR.copy()
    dip[2] = 28.0  # a PSNR dip (below the previous point)
    with pytest.warns(BDWarning, match="curve B: the metric is not monotonic in the rate .at rate 0.4"):
        bd_rate(RATE, PSNR, RATE, dip)
    # a lower-is-better metric falling with rate is monotonic: no warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", BDWarning)
        bd_rate(RATE, -PSNR, RATE * 0.9, -PSNR)


def test_warns_on_low_overlap_like_bjontegaard():
    from lossarena.codecs.bdrate import BDWarning

    bj = _bj()
    qb = PSNR + 10.5  # metric ranges overlap by 0.5 dB of 21.5 (2.3 %)
    with pytest.warns(BDWarning, match=r"metric ranges overlap by only 2\.3 %"):
        ours = bd_rate(RATE, PSNR, RATE, qb, method="pchip")
    with pytest.warns(UserWarning, match="Insufficient curve overlap"):
        ref = bj.bd_rate(RATE, PSNR, RATE, qb, method="pchip")
    assert ours == pytest.approx(ref, abs=1e-9)


def test_rate_ranges_apart_still_give_bd_rate(tmp_path):
    """B spans other rates at the same qualities: BD-metric undefined (NaN, warned), BD-rate returned."""
    from lossarena.codecs.bdrate import BDWarning

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"name": "A", "results": {"bpp": RATE.tolist(), "psnr-rgb": PSNR.tolist()}}))
    b.write_text(json.dumps({"name": "B", "results": {"bpp": (RATE * 20).tolist(), "psnr-rgb": PSNR.tolist()}}))
    with pytest.warns(BDWarning, match="bd_metric is undefined"):
        r = bd_compare(a, b)
    assert r["bd_rate"] == pytest.approx(1900.0, rel=1e-9) and math.isnan(r["bd_metric"])
    b.write_text(json.dumps({"name": "B", "results": {"bpp": (RATE * 20).tolist(), "psnr-rgb": (PSNR + 50).tolist()}}))
    with pytest.raises(InputError, match="do not overlap"):
        bd_compare(a, b)


def test_says_when_nan_points_are_dropped():
    from lossarena.codecs.bdrate import BDWarning

    q = PSNR.copy()
    q[4] = np.nan
    with pytest.warns(BDWarning, match="curve B: dropped 1 of 5 points"):
        v = bd_rate(RATE, PSNR, RATE * 0.8, q, method="pchip")
    assert math.isfinite(v)
