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
