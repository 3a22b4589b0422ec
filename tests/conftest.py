"""Shared test fixtures: shared-data access, stand-in backbones, service availability."""

from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def require_service(ok: bool, reason: str) -> None:
    """Skip when a server/browser is absent; in CI (LOSSARENA_REQUIRE_SERVICES=1) fail instead."""
    if ok:
        return
    if os.environ.get("LOSSARENA_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required in CI but unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """Small convolutions and deep nets on a shared 2-core CPU: one intra-op thread is much faster than
    two fighting for a core. Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def refs():
    """The MATLAB reference pairs of ``shared/data/metric_refs/piq_matlab`` as (distorted, reference)."""
    from lossarena.data.images import load_image

    from lossarena.paths import require_shared

    d = require_shared("metric_refs", "piq_matlab")
    return {
        "goldhill": (load_image(d / "goldhill_jpeg.gif"), load_image(d / "goldhill.gif")),
        "I01": (load_image(d / "i01_01_5.bmp"), load_image(d / "I01.BMP")),
    }


def assert_loss_gradients_finite_nonzero(name: str, size: int = 64, **kw) -> None:
    """``get_loss(name)`` on one batch of random, flat and black distorted images vs a random reference,
    and flat / black references with a noisy distortion: finite loss, finite and non-zero gradient for
    every image (images are scored independently)."""
    from lossarena.metrics import get_loss

    g = torch.Generator().manual_seed(10)
    ref = torch.rand(1, 3, size, size, generator=g)
    noise = torch.randn(1, 3, size, size, generator=g)
    flat, black = torch.full((1, 3, size, size), 0.5), torch.zeros(1, 3, size, size)
    cases = {
        "random": (torch.rand(1, 3, size, size, generator=g), ref),
        "flat_dist": (flat, ref),
        "black_dist": (black, ref),
        "flat_ref_noise": ((0.5 + 0.05 * noise).clamp(0, 1), flat),
        "black_ref_noise": ((0.05 * noise).clamp(0, 1), black),
    }
    x = torch.cat([c[0] for c in cases.values()]).requires_grad_(True)
    y = torch.cat([c[1] for c in cases.values()])
    loss = get_loss(name, **kw)(x, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    per_image = x.grad.abs().flatten(1).sum(1)
    assert (per_image > 0).all(), dict(zip(cases, per_image.tolist()))


def assert_directional_derivative(fn, h: float, seed: int = 13) -> None:
    """Autograd of ``fn(x, y).sum()`` along a random unit direction equals a central difference (float64)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.1 + 0.8 * torch.rand(2, 3, 24, 24, generator=g, dtype=torch.float64)
    y = torch.rand(2, 3, 24, 24, generator=g, dtype=torch.float64)
    v = torch.randn(x.shape, generator=g, dtype=torch.float64)
    v = v / v.norm()
    xr = x.clone().requires_grad_(True)
    fn(xr, y).sum().backward()
    fd = (fn(x + h * v, y).sum() - fn(x - h * v, y).sum()) / (2 * h)
    assert float((xr.grad * v).sum()) == pytest.approx(float(fd), rel=1e-4, abs=1e-7)
