"""FSIM / FSIMc (lossarena.metrics.fsim) — validation.

Reference values: the original MATLAB ``FeatureSIM.m`` numbers in
``shared/data/metric_refs/piq_matlab/REFERENCE_VALUES.md``, with that table's tolerances:

* FSIM (goldhill_jpeg, goldhill), grey: 0.89691 (torch.isclose defaults); grey images arrive as
  three equal channels, so FSIMc (the default) and FSIM coincide, as MATLAB's grey call does;
* FSIM, chromatic=False, (i01_01_5, I01): 0.93674 (torch.isclose defaults);
* FSIMc (i01_01_5, I01): 0.92587, atol 1e-4. We also check that it agrees to the 5 printed
  digits (|diff| <= 5e-6), which piq's ``|S_I S_Q|^0.03`` (instead of MATLAB's real part) misses.

The hand-written backward of the phase-congruency core is checked with ``gradcheck`` (float64).
"""

from __future__ import annotations

import pytest
import torch
from conftest import assert_directional_derivative, assert_loss_gradients_finite_nonzero
from hypothesis import given, settings
from hypothesis import strategies as st
from lossarena.data.images import load_image

from lossarena.metrics import compute, get_loss, get_metric
from lossarena.metrics.fsim import _PhaseEnergy, fsim
from lossarena.paths import require_shared


@pytest.fixture(scope="module")
def refs():
    d = require_shared("metric_refs", "piq_matlab")
    return {
        "goldhill": load_image(d / "goldhill.gif"),
        "goldhill_jpeg": load_image(d / "goldhill_jpeg.gif"),
        "I01": load_image(d / "I01.BMP"),
        "i01_01_5": load_image(d / "i01_01_5.bmp"),
    }


def smooth_image(seed: int, size: int = 64, n: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(n, 3, size // 8, size // 8, generator=g)
    return torch.nn.functional.interpolate(z, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def test_matlab_goldhill_grey(refs):
    x, y = refs["goldhill_jpeg"], refs["goldhill"]
    v = fsim(x, y)
    assert torch.isclose(v, torch.tensor([0.89691])).all(), float(v)
    xc, yc = x[..., 100:196, 200:296], y[..., 100:196, 200:296]  # grey: I = Q = 0, so FSIMc == FSIM
    assert float(fsim(xc, yc, chromatic=False)) == pytest.approx(float(fsim(xc, yc)), abs=1e-7)


def test_matlab_i01_fsim_luma(refs):
    v = fsim(refs["i01_01_5"], refs["I01"], chromatic=False)
    assert torch.isclose(v, torch.tensor([0.93674])).all(), float(v)


def test_matlab_i01_fsimc(refs):
    v = float(fsim(refs["i01_01_5"], refs["I01"]))
    assert v == pytest.approx(0.92587, abs=1e-4)
    assert abs(v - 0.92587) <= 5e-6, v  # all printed digits (MATLAB's real((S_I S_Q)^0.03))


def test_float64_agrees_with_float32(refs):
    x, y = refs["i01_01_5"][..., 100:228, 200:328], refs["I01"][..., 100:228, 200:328]
    assert float(fsim(x.double(), y.double())) == pytest.approx(float(fsim(x, y)), abs=2e-6)


def test_spec_and_registry():
    spec = get_metric("fsim")
    assert spec.lower_better is False and spec.differentiable and spec.best_value == 1.0
    assert spec.min_size == 8 and "FSIM" in spec.citation
    x, y = smooth_image(1), smooth_image(2)
    assert torch.allclose(compute("fsim", x, y), fsim(x, y))
    assert torch.allclose(spec.module(chromatic=False)(x, y), fsim(x, y, chromatic=False))
    with pytest.raises(ValueError, match="at least 8x8"):
        fsim(torch.rand(1, 3, 7, 20), torch.rand(1, 3, 7, 20))


def test_identity_and_symmetry():
    x = torch.cat([smooth_image(3), torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))])
    assert torch.allclose(fsim(x, x), torch.ones(2), atol=1e-6)
    y = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(5))).clamp(0, 1)
    assert torch.allclose(fsim(x, y), fsim(y, x), atol=1e-6)  # FSIM is symmetric


def test_monotone_in_noise():
    y = smooth_image(6, size=64)
    noise = torch.randn(y.shape, generator=torch.Generator().manual_seed(7))
    sigmas = (0.0, 0.02, 0.05, 0.1, 0.2)
    x = torch.cat([(y + s * noise).clamp(0, 1) for s in sigmas])
    vals = fsim(x, y.expand_as(x)).tolist()
    assert vals[0] == pytest.approx(1.0, abs=1e-6)
    assert all(a > b for a, b in zip(vals, vals[1:])), vals


def test_batch_consistency():
    y = smooth_image(8, n=2)
    x = (y + 0.05 * torch.randn(y.shape, generator=torch.Generator().manual_seed(9))).clamp(0, 1)
    batch = fsim(x, y)
    single = torch.cat([fsim(x[i:i + 1], y[i:i + 1]) for i in range(2)])
    assert torch.allclose(batch, single, atol=1e-6)


def _grad(x, y, **kw):
    x = x.clone().requires_grad_(True)
    loss = get_loss("fsim", **kw)(x, y)
    loss.backward()
    return loss, x.grad


def test_gradients_finite_nonzero_64px():
    assert_loss_gradients_finite_nonzero("fsim", 64)


def test_gradient_finite_luma_only_on_flat():
    # FSIM without colour on a perfectly flat distorted image: PC and gradient magnitude are
    # non-differentiable there (|.|-like); the subgradient is finite.
    _, grad = _grad(torch.full((1, 3, 32, 32), 0.3), smooth_image(11, 32), chromatic=False)
    assert torch.isfinite(grad).all()


def test_phase_energy_backward_gradcheck():
    g = torch.Generator().manual_seed(12)
    eo = torch.randn(2, 2, 2, 3, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _PhaseEnergy.apply(t, 1e-4), (eo,))


def test_full_metric_directional_derivative():
    """Autograd (incl. the hand-written PC backward) vs a central difference along a random direction."""
    assert_directional_derivative(fsim, 1e-5)


@settings(max_examples=5, deadline=None)
@given(h=st.integers(8, 40), w=st.integers(8, 40), levels=st.sampled_from([0, 2, 255]),
       seed=st.integers(0, 2**16))
def test_no_nan_on_random_inputs(h, w, levels, seed):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(1, 3, h, w, generator=g), torch.rand(1, 3, h, w, generator=g)
    if levels:  # quantised values: exact zeros, ties and flat patches
        x, y = (x * levels).round() / levels, (y * levels).round() / levels
    x.requires_grad_(True)
    v = fsim(x, y)
    v.sum().backward()
    assert torch.isfinite(v).all() and ((v > -1) & (v <= 1 + 1e-6)).all()
    assert torch.isfinite(x.grad).all()


@pytest.fixture(autouse=True)
def _check_values_every_call(monkeypatch):
    """Values (NaN, 0-255) are range-checked once per (shape, dtype, device) outside debug mode; these
    tests check errors on shapes already seen, so they run in debug mode (lossarena.metrics.validate)."""
    monkeypatch.setenv("LOSSARENA_DEBUG", "1")
