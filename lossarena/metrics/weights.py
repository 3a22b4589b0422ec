"""ImageNet backbones for the deep metrics (LPIPS, DISTS, DPIS), the torchvision way.

Files live in torchvision's standard cache, ``$TORCH_HOME/hub/checkpoints`` (``torch.hub.get_dir()``),
under torchvision's own file names. As torchvision does, the file is verified by SHA-256: the hex
digits after the last ``-`` in the file name are the first digits of the file's SHA-256.

Nothing here downloads at import or metric time. ``lossarena weights download`` fetches the files on
a machine with internet; ``lossarena weights status`` lists what is present. A metric whose backbone
is missing raises :class:`~lossarena.errors.MissingWeightsError` naming the file and both commands.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

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


@dataclasses.dataclass
class BackboneStatus:
    backbone: Backbone
    path: Path
    present: bool
    hash_ok: bool | None  # None when absent

    @property
    def ok(self) -> bool:
        return self.present and bool(self.hash_ok)


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


def backbone_status(name: str) -> BackboneStatus:
    b = BACKBONES[name]
    p = checkpoint_dir() / b.filename
    if not p.is_file():
        return BackboneStatus(b, p, False, None)
    return BackboneStatus(b, p, True, sha256_of(p).startswith(b.hash_prefix))


def missing_message(name: str) -> str:
    st = backbone_status(name)
    b = st.backbone
    what = "fails its SHA-256 check" if st.present else "is missing"
    return (
        f"ImageNet backbone '{b.name}' (needed by {b.used_by}) {what}: {st.path}. "
        f"Run `lossarena weights download` on a machine with internet (or copy {b.filename} from "
        f"{b.url} into {st.path.parent}); `lossarena weights status` lists what is present."
    )


def require_backbone(name: str) -> Path:
    """Path of a verified backbone file, or :class:`MissingWeightsError`."""
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
        if st.ok:
            out.append(st.path)
            continue
        st.path.parent.mkdir(parents=True, exist_ok=True)
        download_url_to_file(st.backbone.url, os.fspath(st.path), hash_prefix=st.backbone.hash_prefix,
                             progress=progress)
        out.append(st.path)
    return out
