"""Seeded stand-in ImageNet backbones for plumbing tests (never for numbers anyone reports).

The real torchvision backbones are not available on the test machines. :func:`write_standins`
saves seeded random ``torchvision.models.{alexnet,vgg16,squeezenet1_1}(weights=None)`` state_dicts
under torchvision's exact file names in ``<root>/hub/checkpoints`` and marks each one with the
``.lossarena-standin`` sidecar of :mod:`lossarena.metrics.weights`. The deep metrics accept them
only while ``LOSSARENA_STANDIN_BACKBONES=1`` (the :func:`standin_home` fixture sets it); they are
then reported as ``stand-in`` everywhere and the CLIs print ``STAND-IN WEIGHTS: numbers are not real``.

The classifier layers (unused by LPIPS and DISTS, ~90% of VGG16's parameters) are stored as a
stride-0 constant, so vgg16 takes 59 MB on disk instead of 528 MB; their shapes are torchvision's,
so ``torchvision.models.vgg16(pretrained=True)`` (what the ``lpips`` and ``DISTS_pytorch`` packages
call) still loads the file with ``strict=True``.

Usage in a test module::

    pytest_plugins = ("standin",)       # the fixtures below

    def test_x(standin_home): ...     # TORCH_HOME now points at the stand-in cache
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lossarena.metrics import weights as W

SEED = 1234
_ARCH = {"alexnet": "alexnet", "vgg16": "vgg16", "squeezenet1_1": "squeezenet1_1"}


def standin_state_dict(name: str, seed: int = SEED) -> dict:
    """A seeded random state_dict with torchvision's keys and shapes for backbone ``name``.

    The architecture is torchvision's (built on the meta device, so nothing is initialised twice);
    every conv of ``features`` gets a seeded He-normal weight (fan-out, as torchvision's VGG init,
    which keeps activations O(1) through 13 layers) and a small random bias; the other tensors
    (the classifier, unused by every metric) become stride-0 constants.
    """
    import torchvision

    with torch.device("meta"):
        model = getattr(torchvision.models, _ARCH[name])(weights=None)
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, v in model.state_dict().items():
        if key.startswith("features.") and key.endswith(".weight"):
            fan_out = v.shape[0] * v[0, 0].numel()
            state[key] = torch.randn(v.shape, generator=g) * (2.0 / fan_out) ** 0.5
        elif key.startswith("features.") and key.endswith(".bias"):
            state[key] = 0.01 * torch.randn(v.shape, generator=g)
        else:
            state[key] = torch.full((1,), 0.01).expand(v.shape)
    return state


def write_standins(root: Path, names=None, seed: int = SEED) -> Path:
    """Write stand-in backbones under ``root/hub/checkpoints``; return that folder."""
    ck = Path(root) / "hub" / "checkpoints"
    ck.mkdir(parents=True, exist_ok=True)
    for name in names or list(W.BACKBONES):
        path = ck / W.BACKBONES[name].filename
        if not path.is_file():
            torch.save(standin_state_dict(name, seed), path)
        W.mark_standin(path)
    return ck


def use_torch_home(monkeypatch, root: Path, *, standin: bool) -> None:
    """Point torchvision's cache (``$TORCH_HOME`` and ``torch.hub``'s dir) at ``root``."""
    import torch.hub

    monkeypatch.setenv("TORCH_HOME", os.fspath(root))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # so torch.hub.get_dir() follows $TORCH_HOME
    if standin:
        monkeypatch.setenv(W.STANDIN_ENV, "1")
    else:
        monkeypatch.delenv(W.STANDIN_ENV, raising=False)
    assert W.checkpoint_dir() == Path(root) / "hub" / "checkpoints"


@pytest.fixture(scope="session")
def standin_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("torch_home_standin")
    write_standins(root)
    return root


@pytest.fixture
def standin_home(standin_root, monkeypatch) -> Path:
    """A TORCH_HOME holding the three stand-in backbones, with the test-only escape hatch enabled."""
    use_torch_home(monkeypatch, standin_root, standin=True)
    return standin_root


@pytest.fixture
def empty_home(tmp_path, monkeypatch) -> Path:
    """An empty TORCH_HOME (no backbones at all)."""
    home = tmp_path / "torch_home_empty"
    home.mkdir()
    use_torch_home(monkeypatch, home, standin=False)
    return home
