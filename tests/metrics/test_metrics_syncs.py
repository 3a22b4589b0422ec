"""No host<->device synchronisation in a steady-state loss call.

A tensor -> Python conversion (``.item()``, ``float(t)``, ``bool(t)``, ``int(t)``, ``.tolist()``,
``.cpu()``, ``.numpy()``) forces the host to wait for the device. In a training step on a GPU that
stalls the pipeline, so ``get_loss(name)`` must not do any once it is warm: input values are
range-checked only on the first call per (shape, dtype, device) (or always under
``LOSSARENA_DEBUG=1``), and metric constants are cached per (device, dtype). This test patches every
conversion to count it and requires 0 during forward + backward, for every differentiable metric
(the deep ones on seeded stand-in backbones: plumbing only, not values).
"""

from __future__ import annotations

import pytest
import torch

from lossarena.metrics import get_loss
from lossarena.metrics import validate as V

pytest_plugins = ("standin",)
pytestmark = pytest.mark.usefixtures("one_thread")

CONVERSIONS = ("item", "__float__", "__bool__", "__int__", "__index__", "tolist", "cpu", "numpy")

CLASSICAL = ["mse", "psnr", "ssim", "ssim:luma=rgb2gray_uint8,downsample=false,border=replicate",
             "ms-ssim:scales=3", "gmsd", "nlpd", "fsim", "vsi"]
DEEP = ["lpips-alex", "lpips-vgg", "lpips-squeeze", "dists"]


class _Counter:
    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        self._mp = monkeypatch
        self._orig = {n: getattr(torch.Tensor, n) for n in CONVERSIONS}

    def __enter__(self):
        for n, f in self._orig.items():
            self._mp.setattr(torch.Tensor, n, self._wrap(n, f))
        return self

    def _wrap(self, name, f):
        def counted(t, *a, **kw):
            self.calls.append(name)
            return f(t, *a, **kw)

        return counted

    def __exit__(self, *exc):
        for n, f in self._orig.items():
            self._mp.setattr(torch.Tensor, n, f)


def _steady_state_conversions(name: str, monkeypatch, size: int = 48) -> list[str]:
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 3, size, size, generator=g)
    loss_fn = get_loss(name)

    def step():
        x = (y + 0.05 * torch.randn(y.shape, generator=g)).clamp(0, 1).requires_grad_(True)
        loss_fn(x, y).backward()
        return x

    step()  # warm: first-call value check, constants built and uploaded, networks loaded
    with _Counter(monkeypatch) as c:
        x = step()
    assert x.grad is not None
    return c.calls


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv("LOSSARENA_DEBUG", raising=False)


@pytest.mark.parametrize("name", CLASSICAL)
def test_no_tensor_to_python_conversions_in_steady_state(name, monkeypatch):
    assert _steady_state_conversions(name, monkeypatch) == []


@pytest.mark.parametrize("name", DEEP)
def test_no_conversions_deep_standin(name, monkeypatch, standin_home):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # StandInWeightsWarning: expected here
        assert _steady_state_conversions(name, monkeypatch, size=64) == []


def test_the_counter_counts(monkeypatch):
    """The check can fail: the first call per shape reads the value range (one sync), debug mode every call."""
    V.reset_checked()
    y = torch.rand(1, 3, 24, 24)
    with _Counter(monkeypatch) as c:
        get_loss("mse")(y, y)
    assert c.calls, "the first call checks the value range"
    monkeypatch.setenv("LOSSARENA_DEBUG", "1")
    get_loss("mse")(y, y)
    with _Counter(monkeypatch) as c:
        get_loss("mse")(y, y)
    assert c.calls, "LOSSARENA_DEBUG=1 checks every call"
