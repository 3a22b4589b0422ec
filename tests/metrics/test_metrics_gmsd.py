"""GMSD (lossarena.metrics.gmsd) — validation.

* MATLAB values of the authors' GMSD.m from ``shared/data/metric_refs/piq_matlab/REFERENCE_VALUES.md``:
  (goldhill_jpeg, goldhill) 0.138012587141798 and (i01_01_5, I01) 0.094124655829098, checked with
  ``torch.isclose`` defaults (rtol 1e-5, atol 1e-8); observed relative error < 1e-7.
* A NumPy/SciPy transcription of GMSD.m (``conv2`` 'same' with zero fill, ``(1:2:end)``
  decimation, ``std2`` with N - 1) on odd-sized images, where the zero padding of the 2x2 average
  matters: agreement 1e-9 in float64.
* piq's ``gmsd`` on even sizes agrees to 1e-5 relative (piq divides by N instead of N - 1).
* Gradients: finite and non-zero for random, flat grey, black and 64x64 references, and finite for
  identical images — the cases where piq's GMSD gives NaN gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from lossarena.metrics import get_loss, get_metric
from lossarena.metrics.gmsd import gmsd

MATLAB = {"goldhill": 0.138012587141798, "I01": 0.094124655829098}


def gmsd_reference(y1: np.ndarray, y2: np.ndarray) -> float:
    """GMSD.m on grey 0-255 float64 images (Y1 reference, Y2 distorted)."""
    t = 170.0
    dx = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]]) / 3.0
    dy = dx.T
    ave = np.ones((2, 2)) / 4.0  # fspecial('average', 2)

    def conv2_same(a, k):  # MATLAB conv2(a, k, 'same'): full convolution, central part
        full = signal.convolve2d(a, k, mode="full")
        r0, c0 = k.shape[0] // 2, k.shape[1] // 2
        return full[r0 : r0 + a.shape[0], c0 : c0 + a.shape[1]]

    y1 = conv2_same(y1, ave)[0::2, 0::2]
    y2 = conv2_same(y2, ave)[0::2, 0::2]
    g1 = np.sqrt(conv2_same(y1, dx) ** 2 + conv2_same(y1, dy) ** 2)
    g2 = np.sqrt(conv2_same(y2, dx) ** 2 + conv2_same(y2, dy) ** 2)
    q = (2 * g1 * g2 + t) / (g1**2 + g2**2 + t)
    return float(np.std(q, ddof=1))  # std2


def _luma255(t: torch.Tensor) -> np.ndarray:
    a = t[0].double().numpy() * 255.0
    return 0.299 * a[0] + 0.587 * a[1] + 0.114 * a[2]


pytestmark = pytest.mark.usefixtures("one_thread")




def _noisy_pair(shape, sigma=0.08, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    y = torch.nn.functional.avg_pool2d(torch.rand(shape, generator=g, dtype=torch.float64), 3, 1, 1)
    x = (y + sigma * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x.to(dtype), y.to(dtype)


@pytest.mark.parametrize("pair", ["goldhill", "I01"])
def test_matches_matlab(refs, pair):
    x, y = refs[pair]
    v = gmsd(x, y)
    assert torch.isclose(v, torch.tensor([MATLAB[pair]])).all(), (v.item(), MATLAB[pair])
    assert abs(v.item() / MATLAB[pair] - 1) < 1e-6
    # also without the float64 internals
    assert torch.isclose(gmsd(x, y, internal_dtype=None), torch.tensor([MATLAB[pair]])).all()


def test_matches_transcription_on_odd_sizes():
    for h, w in [(63, 81), (100, 57), (33, 34)]:
        x, y = _noisy_pair((1, 3, h, w), seed=h, dtype=torch.float64)
        want = gmsd_reference(_luma255(y), _luma255(x))
        assert gmsd(x, y).item() == pytest.approx(want, abs=1e-9)


def test_close_to_piq_on_even_sizes():
    piq = pytest.importorskip("piq")
    x, y = _noisy_pair((2, 3, 96, 128), seed=4)
    ours = gmsd(x, y)
    n = 48 * 64
    theirs = piq.gmsd(x, y, reduction="none") * (n / (n - 1)) ** 0.5  # piq: std with N, GMSD.m: N - 1
    assert torch.allclose(ours, theirs, rtol=1e-5)


def test_identity_monotone_symmetric_batch():
    x, y = _noisy_pair((3, 3, 80, 96), seed=2)
    assert torch.allclose(gmsd(y, y), torch.zeros(3), atol=1e-9)
    g = torch.Generator().manual_seed(7)
    noise = torch.randn(y.shape, generator=g)
    vals = [gmsd((y + s * noise).clamp(0, 1), y).mean().item() for s in (0.01, 0.03, 0.1, 0.3)]
    assert all(a < b for a, b in zip(vals, vals[1:])), vals
    assert torch.allclose(gmsd(x, y), gmsd(y, x), rtol=1e-6)
    singles = torch.cat([gmsd(x[i : i + 1], y[i : i + 1]) for i in range(3)])
    assert torch.allclose(gmsd(x, y), singles, rtol=1e-6)


@settings(max_examples=5, deadline=None)
@given(
    h=st.integers(min_value=3, max_value=80),
    w=st.integers(min_value=3, max_value=80),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_property_range_and_dtype(h, w, seed):
    x, y = _noisy_pair((2, 3, h, w), sigma=0.2, seed=seed)
    v = gmsd(x, y)
    assert v.dtype == torch.float32 and v.shape == (2,)
    assert bool((v >= 0).all()) and bool((v <= 1).all())
    v64 = gmsd(x.double(), y.double())
    assert v64.dtype == torch.float64 and torch.allclose(v.double(), v64, atol=1e-6)


@pytest.mark.parametrize("kind", ["random", "flat", "black", "small64"])
def test_loss_gradients_finite_and_nonzero(kind):
    g = torch.Generator().manual_seed(1)
    size = 64 if kind == "small64" else 128
    if kind == "flat":
        ref = torch.full((2, 3, size, size), 0.5)
    elif kind == "black":
        ref = torch.zeros(2, 3, size, size)
    else:
        ref = torch.rand(2, 3, size, size, generator=g)
    x_hat = (ref + 0.05 * torch.randn(ref.shape, generator=g)).requires_grad_(True)
    loss = get_loss("gmsd")(x_hat, ref)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert bool(torch.isfinite(x_hat.grad).all())
    assert float(x_hat.grad.abs().sum()) > 0


@pytest.mark.parametrize("kind", ["identical", "black", "flat-clipped"])
def test_gradients_finite_where_piq_gives_nan(kind):
    ref = torch.rand(1, 3, 64, 64) if kind == "identical" else torch.zeros(1, 3, 64, 64)
    if kind == "flat-clipped":  # codec output saturated at 0 in a region (x_hat below 0 is clamped)
        x_hat = torch.rand(1, 3, 64, 64)
        x_hat[..., :32, :] = -0.2
    else:
        x_hat = ref.clone()
    x_hat.requires_grad_(True)
    get_loss("gmsd")(x_hat, ref).backward()
    assert bool(torch.isfinite(x_hat.grad).all())


def test_safe_sqrt_value_error_below_1e9():
    x, y = _noisy_pair((1, 3, 40, 40), seed=8, dtype=torch.float64)
    y = torch.zeros_like(y)  # zero gradients everywhere in the reference
    want = gmsd_reference(_luma255(y), _luma255(x))
    assert abs(gmsd(x, y).item() - want) < 1e-9


def test_spec_and_validation_errors():
    spec = get_metric("gmsd")
    assert spec.lower_better and spec.differentiable and spec.best_value == 0.0
    assert "Xue" in spec.citation
    y = torch.rand(1, 3, 32, 32)
    for bad_x, bad_y in [(y * 255, y), (y, y[..., :31]), (y[:, :, :2, :2], y[:, :, :2, :2]), (y.half()[0], y[0])]:
        with pytest.raises(ValueError, match="expected .*got"):
            gmsd(bad_x, bad_y)


@pytest.fixture(autouse=True)
def _check_values_every_call(monkeypatch):
    """Values (NaN, 0-255) are range-checked once per (shape, dtype, device) outside debug mode; these
    tests check errors on shapes already seen, so they run in debug mode (lossarena.metrics.validate)."""
    monkeypatch.setenv("LOSSARENA_DEBUG", "1")
