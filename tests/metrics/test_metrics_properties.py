"""Properties every registered metric must have, whatever its implementation.

The metric list is read from the registry at collection time (``list_metrics()``), so a metric added
later is covered without editing this file. Metrics that need an ImageNet backbone run on the
seeded stand-in backbones of ``tests/standin.py`` (plumbing only: stand-in numbers are never
reported). For each metric:

* identical images give the best value (``spec.best_value``; for unbounded PSNR, better than any noise);
* on a real photo, the value moves monotonically (in the metric's direction) with the level of
  added Gaussian noise;
* a batch gives the same values as the images one by one;
* ``get_loss(name)`` is lower-is-better and its gradient w.r.t. the distorted image is finite and
  non-zero for random, flat-grey and black references at 64x64 and 256x256 (a metric whose minimum
  size exceeds the image raises a clear ValueError instead; its documented small-image option is
  tested where it has one);
* bad inputs (wrong ndim, 1 or 4 channels, uint8, 0-255 floats, NaN, mismatched shapes) raise a
  ValueError saying "expected ..., got ...".
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from lossarena.benchmark import register_learned_metrics

from lossarena.metrics import compute, get_loss, get_metric, list_metrics
from lossarena.paths import shared_data

pytest_plugins = ("standin",)

register_learned_metrics()  # the project's learned metric (dpis) is covered too (no entry point any more)
NAMES = [s.name for s in list_metrics()]
# documented options that let a metric with a large minimum size score small images
SMALL_IMAGE_OPTIONS = {"ms-ssim": {"scales": 3}}  # 3 scales from 41 px (see ms_ssim's docstring)
NOISE = (0.02, 0.05, 0.1, 0.2)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def metric(request):
    """The spec of the parametrised metric, with stand-in backbones in place if it needs them."""
    spec = get_metric(request.param)
    if spec.needs_weights:
        request.getfixturevalue("standin_home")
    if spec.name == "dpis":
        # DPIS also needs its own trained head: an initialised (untrained) one is a valid DPIS model for
        # these properties; training is tested in test_benchmark_dpis.py
        from lossarena.benchmark import dpis as D

        ck = request.getfixturevalue("tmp_path") / "dpis.pt"
        D.save_checkpoint(D.DPISHead(), D.Judge(), ck, config={}, history={})
        request.getfixturevalue("monkeypatch").setenv(D.CHECKPOINT_ENV, str(ck))  # explicit input, no global
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # StandInWeightsWarning: expected here
        yield spec


def _photo(size: int) -> torch.Tensor:
    """A size x size crop of a real photo: Kodak kodim23 if the shared data is there, else
    scikit-image's bundled astronaut."""
    from PIL import Image

    kodak = shared_data("images", "kodak24", "kodim23.png")
    if kodak is not None:
        a = np.asarray(Image.open(kodak).convert("RGB"))
    else:
        from skimage import data

        a = data.astronaut()
    h, w = a.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    crop = a[top:top + size, left:left + size].astype(np.float32) / 255
    return torch.from_numpy(crop).permute(2, 0, 1)[None].contiguous()


def _noisy(y: torch.Tensor, sigmas, seed=0) -> torch.Tensor:
    """One fixed noise field at several strengths: a batch with one image per sigma."""
    g = torch.Generator().manual_seed(seed)
    n = torch.randn(y.shape[1:], generator=g)
    return torch.stack([(y[0] + s * n).clamp(0, 1) for s in sigmas])


def _better(spec, a: float, b: float) -> bool:
    return a < b if spec.lower_better else a > b


@pytest.mark.parametrize("metric", NAMES, indirect=True)
def test_identical_best_monotone_and_batch(metric):
    size = max(64, metric.min_size)
    y = _photo(size)
    x = _noisy(y, NOISE)
    yb = y.expand_as(x).contiguous()
    with torch.no_grad():
        same = compute(metric.name, y, y)
        vals = compute(metric.name, x, yb)
        one_by_one = torch.cat([compute(metric.name, x[i:i + 1], y) for i in range(2)])
    assert same.shape == (1,) and vals.shape == (len(NOISE),)
    assert torch.isfinite(vals).all() and torch.isfinite(same).all()
    if metric.best_value is not None:
        assert float(same) == pytest.approx(metric.best_value, abs=1e-5)
    v = vals.tolist()
    assert _better(metric, float(same), v[0]), f"{metric.name}: identical {float(same)} vs noisy {v[0]}"
    for a, b in zip(v, v[1:]):
        assert _better(metric, a, b), f"{metric.name} not monotone in noise {NOISE}: {v}"
    assert torch.allclose(one_by_one, vals[:2], rtol=1e-4, atol=1e-6), (one_by_one, vals[:2])


def _refs(size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return torch.cat([
        torch.rand(1, 3, size, size, generator=g),
        torch.full((1, 3, size, size), 0.5),
        torch.zeros(1, 3, size, size),
    ])


def _check_gradient(loss, ref: torch.Tensor, name: str) -> None:
    g = torch.Generator().manual_seed(11)
    x_hat = (ref + 0.05 * torch.randn(ref.shape, generator=g)).requires_grad_()  # may leave [0, 1]
    v = loss(x_hat, ref)
    assert v.dim() == 0 and torch.isfinite(v)
    v.backward()
    grad = x_hat.grad
    assert torch.isfinite(grad).all(), f"{name}: non-finite gradient"
    per_image = grad.abs().flatten(1).sum(1)
    assert (per_image > 0).all(), f"{name}: zero gradient for reference(s) {per_image.tolist()}"
    if ref.shape[-1] <= 64:
        with torch.no_grad():  # lower is better: the reference itself scores below the distortion
            assert float(loss(ref, ref)) < float(v)


@pytest.mark.parametrize("size", [64, 256])
@pytest.mark.parametrize("metric", NAMES, indirect=True)
def test_loss_gradient_random_flat_black(metric, size):
    if not metric.differentiable:
        with pytest.raises(ValueError, match="not differentiable"):
            get_loss(metric.name)
        return
    ref = _refs(size)
    if metric.min_size > size:
        with pytest.raises(ValueError, match="expected") as e:
            get_loss(metric.name)(ref, ref)
        assert f"{size}x{size}" in str(e.value)
        opts = SMALL_IMAGE_OPTIONS.get(metric.name)
        if opts is None:
            pytest.skip(f"{metric.name} needs >= {metric.min_size} px and documents no small-image option")
        _check_gradient(get_loss(metric.name, **opts), ref, f"{metric.name} {opts}")
        return
    _check_gradient(get_loss(metric.name), ref, metric.name)


def _bad_inputs(size: int):
    y = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(3))
    nan = y.clone()
    nan[0, 0, 1, 1] = float("nan")
    return {
        "3-d": (y[0], y[0]),
        "5-d": (y[None], y[None]),
        "1 channel": (y[:, :1], y[:, :1]),
        "4 channels": (torch.cat([y, y[:, :1]], 1), torch.cat([y, y[:, :1]], 1)),
        "uint8": ((y * 255).to(torch.uint8), (y * 255).to(torch.uint8)),
        "0-255 floats": (y * 255, y * 255),
        "NaN": (nan, y),
        "mismatched": (y, y[..., :-2, :]),
    }


@pytest.mark.parametrize("metric", NAMES, indirect=True)
def test_validation_errors(metric):
    size = max(64, metric.min_size + 2)
    for case, (x, y) in _bad_inputs(size).items():
        with pytest.raises(ValueError) as e:
            compute(metric.name, x, y)
        msg = str(e.value)
        assert "expected" in msg and "got" in msg, f"{metric.name}, {case}: {msg}"


def test_every_metric_has_a_consistent_spec():
    for s in list_metrics():
        assert s.citation and s.min_size >= 1
        assert get_metric(s.name) is s
        for a in s.aliases:
            assert get_metric(a) is s
        assert s.lower_better or s.best_value is not None or s.name == "psnr", s.name


@pytest.fixture(autouse=True)
def _check_values_every_call(monkeypatch):
    """Values (NaN, 0-255) are range-checked once per (shape, dtype, device) outside debug mode; these
    tests check errors on shapes already seen, so they run in debug mode (lossarena.metrics.validate)."""
    monkeypatch.setenv("LOSSARENA_DEBUG", "1")
