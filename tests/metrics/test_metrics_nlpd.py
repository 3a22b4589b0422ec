"""NLPD (lossarena.metrics.nlpd) — validation.

How it was validated, and against what text:

* There is no shared MATLAB value for NLPD. The reference is the authors' MATLAB code published with
  the 2016 paper, ``NLP_dist.m`` (http://www.cns.nyu.edu/~lcv/NLPyr/NLP_dist.m; read from a public
  copy, e.g. GitHub SMBU-MM/OF_BIQA ``FR-IQAs/NLP_dist.m``): ``laplacian_pyramid_s`` with
  ``f = [.05 .25 .4 .25 .05]``, ``downsample`` = ``imfilter(I, f'*f, 'symmetric')`` + ``(1:2:r,
  1:2:c)``, ``upsample`` = ``padarray(I, [1 1], 'replicate')``, zero insertion ``4*I``,
  ``imfilter`` (zero boundary) and crop ``3:r-2-odd``; ``NLP`` = ``Lap ./ (sigma +
  conv2(abs(Lap), F2, 'same'))`` with ``DN_filters``; distance = ``mean`` over the 6 levels of
  ``sqrt(mean(diff.^2))``.
* :func:`nlp_dist_reference` below is a separate, line-by-line NumPy/SciPy transcription of that
  file, in float64, with MATLAB's boundary rules spelled out (``np.pad(..., 'symmetric')``,
  ``'edge'``, ``scipy.signal.correlate2d``/``convolve2d`` with zero fill) and the ``DN_filters``
  matrices typed as in the .m file. It shares no code with the implementation (which uses
  depthwise and polyphase convolutions in torch).
* The torch implementation agrees with it to <= 1e-5 (observed ~1e-16 in float64, ~1e-8 in
  float32) on the real pairs (goldhill_jpeg, goldhill) and (i01_01_5, I01 as luma), and on
  odd-sized random images that exercise every ``odd`` crop of the pyramid.
* Properties: 0 for identical images, increasing with the noise level, symmetric, batch
  consistent, finite non-zero gradients (random, flat, black, 64x64), ValueError on bad input.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_loss_gradients_finite_nonzero
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from lossarena.metrics import get_loss, get_metric
from lossarena.metrics.nlpd import nlpd

# ----------------------------------------------------------------------------------------------
# independent transcription of NLP_dist.m (grey images in [0, 1], float64)
# ----------------------------------------------------------------------------------------------

_SIGMAS = [0.0248, 0.0185, 0.0179, 0.0191, 0.0220, 0.2782]


def _dn_filters_matlab() -> list[np.ndarray]:
    f = [np.zeros((5, 5)) for _ in range(6)]
    f[0] = np.array([[0, 0, 0, 0, 0],
                     [0, 0, 0.1011, 0, 0],
                     [0, 0.1493, 0, 0.1460, 0.0072],
                     [0, 0, 0.1015, 0, 0],
                     [0, 0, 0, 0, 0]])
    f[1][1:4, 1:4] = [[0, 0.0757, 0], [0.1986, 0, 0.1846], [0, 0.0837, 0]]
    f[2][1:4, 1:4] = [[0, 0.0477, 0], [0.2138, 0, 0.2243], [0, 0.0467, 0]]
    f[3][1:4, 1:4] = [[0, 0, 0], [0.2503, 0, 0.2616], [0, 0, 0]]
    f[4][1:4, 1:4] = [[0, 0, 0], [0.2598, 0, 0.2552], [0, 0, 0]]
    f[5][1:4, 1:4] = [[0, 0, 0], [0.2215, 0, 0.0717], [0, 0, 0]]
    return f


def _ml_downsample(img: np.ndarray, filt: np.ndarray) -> np.ndarray:
    # R = imfilter(I, filter, 'symmetric');  R = R(1:2:r, 1:2:c)
    padded = np.pad(img, 2, mode="symmetric")
    r = signal.correlate2d(padded, filt, mode="valid")
    return r[0::2, 0::2]


def _ml_upsample(img: np.ndarray, odd: tuple[int, int], filt: np.ndarray) -> np.ndarray:
    i = np.pad(img, 1, mode="edge")  # padarray(I, [1 1], 'replicate')
    r, c = 2 * i.shape[0], 2 * i.shape[1]
    big = np.zeros((r, c))
    big[0::2, 0::2] = 4 * i  # R(1:2:r, 1:2:c) = 4*I
    big = signal.correlate2d(big, filt, mode="same", boundary="fill", fillvalue=0)  # imfilter(R, filter)
    return big[2 : r - 2 - odd[0], 2 : c - 2 - odd[1]]  # R(3:r-2-odd(1), 3:c-2-odd(2))


def _ml_laplacian_pyramid(img: np.ndarray, nlev: int = 6) -> list[np.ndarray]:
    f = np.array([0.05, 0.25, 0.4, 0.25, 0.05])
    filt = np.outer(f, f)
    pyr = []
    j = img
    for _ in range(nlev - 1):
        i = _ml_downsample(j, filt)
        odd = (2 * i.shape[0] - j.shape[0], 2 * i.shape[1] - j.shape[1])
        pyr.append(j - _ml_upsample(i, odd, filt))
        j = i
    pyr.append(j)
    return pyr


def _ml_nlp(img: np.ndarray) -> list[np.ndarray]:
    filts = _dn_filters_matlab()
    out = []
    for k, lap in enumerate(_ml_laplacian_pyramid(img, 6)):
        a2 = signal.convolve2d(np.abs(lap), filts[k], mode="same")  # conv2(abs(Lap), F2, 'same')
        out.append(lap / (_SIGMAS[k] + a2))
    return out


def nlp_dist_reference(im_1: np.ndarray, im_2: np.ndarray) -> float:
    """DMOS_Lap_dn2 of NLP_dist.m for two grey HxW float64 images in [0, 1]."""
    y1, y2 = _ml_nlp(im_1), _ml_nlp(im_2)
    rr = [np.sqrt(np.mean((a.ravel() - b.ravel()) ** 2)) for a, b in zip(y1, y2, strict=True)]
    return float(np.mean(rr))


def _luma_np(t: torch.Tensor) -> np.ndarray:
    a = t[0].double().numpy()
    return 0.299 * a[0] + 0.587 * a[1] + 0.114 * a[2]


# ----------------------------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("one_thread")




@pytest.mark.parametrize("pair", ["goldhill", "I01"])
def test_matches_transcription_of_nlp_dist_m_on_real_pairs(refs, pair):
    x, y = refs[pair]
    want = nlp_dist_reference(_luma_np(y), _luma_np(x))  # NLP_dist(IM_1 = original, IM_2 = distorted)
    got64 = nlpd(x.double(), y.double()).item()
    got32 = nlpd(x, y).item()
    assert abs(got64 - want) <= 1e-5 * max(1.0, want), (got64, want)
    assert abs(got32 - want) <= 1e-5, (got32, want)
    assert 0.0 < want < 1.0


def test_matches_transcription_on_odd_sizes():
    g = torch.Generator().manual_seed(3)
    for h, w in [(45, 77), (64, 33), (100, 131)]:
        y = torch.rand(1, 3, h, w, generator=g, dtype=torch.float64)
        x = (y + 0.05 * torch.randn(1, 3, h, w, generator=g, dtype=torch.float64)).clamp(0, 1)
        want = nlp_dist_reference(_luma_np(y), _luma_np(x))
        got = nlpd(x, y).item()
        assert abs(got - want) <= 1e-9, (h, w, got, want)


def test_rgb_mode_is_mean_of_channels():
    g = torch.Generator().manual_seed(4)
    y = torch.rand(1, 3, 40, 52, generator=g, dtype=torch.float64)
    x = (y + 0.1 * torch.randn(y.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    want = np.mean([nlp_dist_reference(y[0, c].numpy(), x[0, c].numpy()) for c in range(3)])
    assert nlpd(x, y, color="rgb").item() == pytest.approx(want, abs=1e-9)


def test_identity_zero_symmetric_and_monotone_in_noise():
    g = torch.Generator().manual_seed(0)
    y = torch.rand(1, 3, 64, 64, generator=g)
    assert nlpd(y, y).item() == pytest.approx(0.0, abs=1e-9)
    noise = torch.randn(y.shape, generator=g)
    vals = [nlpd((y + s * noise).clamp(0, 1), y).item() for s in (0.01, 0.03, 0.1, 0.3)]
    assert all(a < b for a, b in zip(vals, vals[1:])), vals
    x = (y + 0.05 * noise).clamp(0, 1)
    assert nlpd(x, y).item() == pytest.approx(nlpd(y, x).item(), rel=1e-6)


@settings(max_examples=6, deadline=None)
@given(
    h=st.integers(min_value=17, max_value=70),
    w=st.integers(min_value=17, max_value=70),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_property_batch_consistent_nonnegative(h, w, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(3, 3, h, w, generator=g)
    x = (y + 0.1 * torch.randn(y.shape, generator=g)).clamp(0, 1)
    batch = nlpd(x, y)
    assert batch.shape == (3,)
    singles = torch.cat([nlpd(x[i : i + 1], y[i : i + 1]) for i in range(3)])
    assert torch.allclose(batch, singles, rtol=1e-5, atol=1e-7)
    assert bool((batch >= 0).all())


def test_dtype_follows_input():
    y = torch.rand(2, 3, 32, 32)
    x = (y + 0.05).clamp(0, 1)
    assert nlpd(x, y).dtype == torch.float32
    v64 = nlpd(x.double(), y.double())
    assert v64.dtype == torch.float64
    assert torch.allclose(nlpd(x, y).double(), v64, rtol=1e-5)


@pytest.mark.parametrize("size", [64, 96])
def test_loss_gradients_finite_and_nonzero(size):
    assert_loss_gradients_finite_nonzero("nlpd", size)


def test_gradient_finite_for_identical_images():
    ref = torch.rand(1, 3, 32, 32)
    x_hat = ref.clone().requires_grad_(True)
    get_loss("nlpd")(x_hat, ref).backward()
    assert bool(torch.isfinite(x_hat.grad).all())


def test_spec_and_validation_errors():
    spec = get_metric("nlpd")
    assert spec.lower_better and spec.differentiable and spec.best_value == 0.0
    assert "Laparra" in spec.citation and spec.min_size == 17
    y = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="expected .*got"):
        nlpd(y * 255, y)
    with pytest.raises(ValueError, match="expected .*got"):
        nlpd(y[:, :, :16], y[:, :, :16])
    with pytest.raises(ValueError, match="expected .*got"):
        nlpd(y, y[:, :, :30])
    with pytest.raises(ValueError, match="expected color"):
        nlpd(y, y, color="lab")


@pytest.fixture(autouse=True)
def _check_values_every_call(monkeypatch):
    """Values (NaN, 0-255) are range-checked once per (shape, dtype, device) outside debug mode; these
    tests check errors on shapes already seen, so they run in debug mode (lossarena.metrics.validate)."""
    monkeypatch.setenv("LOSSARENA_DEBUG", "1")
