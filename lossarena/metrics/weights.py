"""ImageNet backbones for the deep metrics (LPIPS, DISTS, DPIS), the torchvision way.

Files live in torchvision's standard cache, ``$TORCH_HOME/hub/checkpoints`` (``torch.hub.get_dir()``),
under torchvision's own file names. As torchvision does, the file is verified by SHA-256: the hex
digits after the last ``-`` in the file name are the first digits of the file's SHA-256.

Nothing here downloads at import or metric time. ``lossarena weights download`` fetches the files on
a machine with internet; ``lossarena weights status`` lists what is present. A metric whose backbone
is missing raises :class:`~lossarena.errors.MissingWeightsError` naming the file and both commands.

Stand-in backbones (tests only)
-------------------------------
ImageNet backbones cannot be downloaded on every machine (CI, air-gapped clusters), yet the plumbing
of the deep metrics (key mapping, gradients, parity with the ``lpips`` and ``DISTS_pytorch``
packages) must be testable. For that, and only that, a *stand-in* backbone is accepted: a seeded
random state_dict saved under torchvision's file name. Such a file fails the SHA-256 check, so it is
accepted only when **both**

1. the environment variable ``LOSSARENA_STANDIN_BACKBONES`` is exactly ``1``, and
2. a sidecar file ``<file name>.lossarena-standin`` next to it holds the file's full SHA-256
   (written by :func:`mark_standin`, which the test helper ``tests/standin.py`` calls).

A corrupted or truncated download has no sidecar, and a stray environment variable alone changes
nothing, so a user run cannot pick up stand-in weights by accident. A stand-in backbone has status
``"stand-in"`` (``BackboneStatus.standin``); every metric built on one emits a
:class:`StandInWeightsWarning`, and the CLIs (``lossarena metrics score|list``, ``lossarena weights
status``) print ``STAND-IN WEIGHTS: numbers are not real`` on stderr. Numbers computed with stand-in
weights are plumbing checks, never results: tools that write numbers to files should call
:func:`standin_in_use` and refuse or label them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from ..errors import MissingWeightsError


@dataclasses.dataclass(frozen=True)
class Backbone:
    name: str
    filename: str
    url: str
    used_by: str

    @property
    def hash_prefix(self) -> str:
        return self.filename.rsplit("-", 1)[1].split(".")[0]


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone("alexnet", "alexnet-owt-7be5be79.pth",
                 "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", "lpips-alex, dpis"),
        Backbone("vgg16", "vgg16-397923af.pth",
                 "https://download.pytorch.org/models/vgg16-397923af.pth", "lpips-vgg, dists, dpis"),
        Backbone("squeezenet1_1", "squeezenet1_1-b8a52dc0.pth",
                 "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth", "lpips-squeeze"),
    )
}


def checkpoint_dir() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


STANDIN_ENV = "LOSSARENA_STANDIN_BACKBONES"
STANDIN_SUFFIX = ".lossarena-standin"
STANDIN_BANNER = "STAND-IN WEIGHTS: numbers are not real"


class StandInWeightsWarning(UserWarning):
    """A deep metric was built on a stand-in (random, test-only) backbone: its numbers are not real."""


def standin_allowed() -> bool:
    """True only when ``LOSSARENA_STANDIN_BACKBONES`` is exactly ``"1"`` (see the module docstring)."""
    return os.environ.get(STANDIN_ENV) == "1"


@dataclasses.dataclass
class BackboneStatus:
    backbone: Backbone
    path: Path
    present: bool
    hash_ok: bool | None  # None when absent
    standin: bool = False  # a test-only stand-in accepted through the documented escape hatch

    @property
    def ok(self) -> bool:
        """Usable by a metric: the verified file, or an explicitly enabled stand-in."""
        return self.present and (bool(self.hash_ok) or self.standin)

    @property
    def state(self) -> str:
        if not self.present:
            return "missing"
        if self.hash_ok:
            return "ok"
        return "stand-in" if self.standin else "bad hash"


_HASH_CACHE: dict[tuple[str, float, int], str] = {}


def sha256_of(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_mtime, st.st_size)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def _standin_sidecar(path: Path) -> Path:
    return path.with_name(path.name + STANDIN_SUFFIX)


def backbone_status(name: str) -> BackboneStatus:
    b = BACKBONES[name]
    p = checkpoint_dir() / b.filename
    if not p.is_file():
        return BackboneStatus(b, p, False, None)
    digest = sha256_of(p)
    if digest.startswith(b.hash_prefix):
        return BackboneStatus(b, p, True, True)
    standin = False
    side = _standin_sidecar(p)
    if standin_allowed() and side.is_file():
        standin = side.read_text().strip() == digest
    return BackboneStatus(b, p, True, False, standin=standin)


def mark_standin(path: Path) -> Path:
    """Write the sidecar that lets a stand-in backbone file be used (tests only; see module docstring)."""
    path = Path(path)
    side = _standin_sidecar(path)
    side.write_text(sha256_of(path) + "\n")
    return side


def standin_in_use(names: Iterable[str] | None = None) -> list[str]:
    """Backbones among ``names`` (default: all) that are stand-ins right now."""
    return [n for n in (list(names) if names else list(BACKBONES)) if backbone_status(n).standin]


def warn_standin(name: str) -> None:
    """Emit :class:`StandInWeightsWarning` if backbone ``name`` is a stand-in."""
    if backbone_status(name).standin:
        warnings.warn(f"{STANDIN_BANNER}: backbone '{name}' is a random stand-in "
                      f"({STANDIN_ENV}=1 and a {STANDIN_SUFFIX} sidecar)", StandInWeightsWarning, stacklevel=3)


def print_standin_banner(names: Iterable[str] | None = None, file: TextIO | None = None) -> bool:
    """Print the loud stand-in warning on stderr if any of ``names`` is a stand-in; True if printed."""
    used = standin_in_use(names)
    if not used:
        return False
    print(f"*** {STANDIN_BANNER} (random stand-in backbones: {', '.join(used)}; "
          f"{STANDIN_ENV}=1 is for tests only) ***", file=file or sys.stderr)
    return True


def missing_message(name: str) -> str:
    st = backbone_status(name)
    b = st.backbone
    what = f"fails its SHA-256 check (expected prefix {b.hash_prefix})" if st.present else "is missing"
    return (
        f"ImageNet backbone '{b.name}' (needed by {b.used_by}) {what}: {st.path}. "
        f"Run `lossarena weights download` on a machine with internet (or copy {b.filename} from "
        f"{b.url} into {st.path.parent}); `lossarena weights status` lists what is present."
    )


def require_backbone(name: str) -> Path:
    """Path of a verified backbone file (or an enabled stand-in), or :class:`MissingWeightsError`."""
    if name not in BACKBONES:
        raise KeyError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    st = backbone_status(name)
    if not st.ok:
        raise MissingWeightsError(missing_message(name))
    return st.path


def load_backbone_state(name: str) -> dict:
    """The verified backbone's state_dict (loaded on the CPU, never downloaded)."""
    import torch

    return torch.load(require_backbone(name), map_location="cpu", weights_only=True)


def download(names: list[str] | None = None, *, progress: bool = True) -> list[Path]:
    """Fetch backbones into the cache (needs internet); verify them like torchvision does."""
    from torch.hub import download_url_to_file

    out = []
    for name in names or list(BACKBONES):
        st = backbone_status(name)
        if st.present and st.hash_ok:
            out.append(st.path)
            continue
        st.path.parent.mkdir(parents=True, exist_ok=True)
        download_url_to_file(st.backbone.url, os.fspath(st.path), hash_prefix=st.backbone.hash_prefix,
                             progress=progress)
        out.append(st.path)
    return out
