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
