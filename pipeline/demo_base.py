"""The demo's shipped MSE base codec: its training images, packing, and hash-verified loading.

The demo cannot train a codec that compresses like one within its CPU budget, so it ships a small
pretrained ScaleHyperprior (``pipeline/assets/demo_base.pt``, fp16 weights only) and fine-tunes every
loss from it. The base is trained on photographs that ship inside the installed wheels of
scikit-image and matplotlib — never on Kodak, which stays for evaluation and stimuli. How it was made
(one ``lossarena codecs train`` command) is in ``pipeline/assets/demo_base.md``; its SHA-256 is in
``demo_base.pt.sha256`` and is checked before every use.

Commands (``python -m lossarena.pipeline.demo_base``)::

    images OUT            write the training images (PNG) into OUT
    pack CKPT OUT         strip a training checkpoint to fp16 weights and write OUT + OUT.sha256
    unpack OUT            verify the shipped base and write a full codec checkpoint to OUT
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from pathlib import Path

import numpy as np

from lossarena.errors import InputError

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets"
BASE_FILE = ASSETS / "demo_base.pt"
PACK_FORMAT = "lossarena-demo-base"

# (module, name): colour photographs and grey textures bundled in the wheels (no download)
SKIMAGE_COLOUR = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina")
SKIMAGE_GREY = ("camera", "brick", "grass", "gravel", "moon", "coins", "cell")
MATPLOTLIB_PHOTOS = ("grace_hopper.jpg",)


def training_images(out: str | Path, colour_only: bool = False) -> list[Path]:
    """Write the demo base's training set into ``out`` and return the PNG paths.

    Parameters
    ----------
    out : str or Path
        Folder to create / fill.
    colour_only : bool
        Only the colour photographs (the second phase of the shipped base's training, see
        ``assets/demo_base.md``); the grey textures are left out.

    Returns
    -------
    list of Path
        One PNG per image: scikit-image's colour photographs (``retina`` centre-cropped to its
        fundus), its grey textures and photographs replicated to RGB, and matplotlib's
        ``grace_hopper.jpg``. None of them is a Kodak image.
    """
    import matplotlib
    import skimage.data
    from PIL import Image

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []

    def save(name: str, a: np.ndarray) -> None:
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        a = np.ascontiguousarray(a[..., :3]).astype(np.uint8)
        p = out / f"{name}.png"
        Image.fromarray(a).save(p)
        paths.append(p)

    for name in SKIMAGE_COLOUR:
        a = getattr(skimage.data, name)()
        if name == "retina":  # the fundus, without the black border
            h, w = a.shape[:2]
            a = a[h // 4: 3 * h // 4, w // 4: 3 * w // 4]
        save(name, a)
    for name in () if colour_only else SKIMAGE_GREY:
        a = getattr(skimage.data, name)()
        if a.dtype != np.uint8:
            a = (a.astype(float) / a.max() * 255).astype(np.uint8)
        save(name, a)
    sample = Path(matplotlib.get_data_path()) / "sample_data"
    for name in MATPLOTLIB_PHOTOS:
        save(Path(name).stem, np.asarray(Image.open(sample / name).convert("RGB")))
    return paths


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pack(ckpt: str | Path, out: str | Path = BASE_FILE) -> Path:
    """Strip a codec training checkpoint to its fp16 network weights (no optimiser, no coder tables).

    The entropy coder's CDF tables are rebuilt from the weights by :func:`unpack` (they are a
    deterministic function of them), which keeps the shipped file small. Writes ``out`` and
    ``out.sha256``.

    Parameters
    ----------
    ckpt : str or Path
        A ``lossarena codecs train`` checkpoint.
    out : str or Path
        The packed file.

    Returns
    -------
    Path
        ``out``.
    """
    import torch
    from lossarena.codecs.model import build_model, read_checkpoint

    obj = read_checkpoint(ckpt)
    arch = obj["config"]["architecture"]
    # only the learned weights go to fp16; buffers (likelihood lower bounds of 1e-9, GDN pedestals of
    # 2^-36) would underflow to 0 in fp16 and give zero likelihoods, i.e. infinite estimated bits
    params = {n for n, _ in build_model(arch["N"], arch["M"]).named_parameters()}
    skip = ("_cdf", "_offset", "_cdf_length", "_quantized_cdf", "scale_table")
    sd = {k: (v.half() if v.is_floating_point() and k in params and not k.endswith("quantiles") else v)
          for k, v in obj["state_dict"].items() if not k.endswith(skip)}
    cfg = {k: v for k, v in obj["config"].items() if k != "metric"}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": PACK_FORMAT, "version": 1, "config": cfg, "state_dict": sd}, out)
    digest = sha256(out)
    out.with_name(out.name + ".sha256").write_text(f"{digest}  {out.name}\n")
    log.info("packed %s -> %s (%.2f MB, sha256 %s)", ckpt, out, out.stat().st_size / 1e6, digest)
    return out


def expected_sha256(path: str | Path = BASE_FILE) -> str:
    """The hash committed beside the shipped base (``demo_base.pt.sha256``)."""
    path = Path(path)
    side = path.with_name(path.name + ".sha256")
    if not side.is_file():
        raise InputError(f"{side}: missing (the shipped demo base has no committed hash)")
    return side.read_text().split()[0]


def unpack(out: str | Path, path: str | Path = BASE_FILE) -> Path:
    """Verify the shipped base against its SHA-256 and write a full codec checkpoint.

    Parameters
    ----------
    out : str or Path
        Where to write the checkpoint (``lossarena-codec`` format, entropy tables built).
    path : str or Path
        The packed base (default: the one shipped in the package).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    InputError
        When the file is missing or its hash differs from the committed one.
    """
    import torch
    from lossarena.codecs.model import build_model, save_checkpoint

    from lossarena.metrics import get_metric

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: the shipped demo base is missing")
    want, got = expected_sha256(path), sha256(path)
    if want != got:
        raise InputError(f"{path}: SHA-256 {got} does not match the committed {want}")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if obj.get("format") != PACK_FORMAT:
        raise InputError(f"{path}: expected format {PACK_FORMAT!r}, got {obj.get('format')!r}")
    cfg = dict(obj["config"])
    arch = cfg["architecture"]
    model = build_model(arch["N"], arch["M"])
    sd = {k: v.float() if v.is_floating_point() else v for k, v in obj["state_dict"].items()}
    # nn.Module.load_state_dict: CompressAI's override insists on the coder tables this file leaves out
    missing, unexpected = torch.nn.Module.load_state_dict(model, sd, strict=False)
    bad = [k for k in missing if not k.endswith(("_cdf", "_offset", "_cdf_length", "_quantized_cdf", "scale_table"))]
    if bad or unexpected:
        raise InputError(f"{path}: weights do not fit the architecture (missing {bad[:3]}, unexpected {unexpected[:3]})")
    cfg["metric"] = get_metric(cfg.get("loss", "mse")).as_dict()
    cfg["shipped_base"] = {"file": path.name, "sha256": got}
    cfg["finished"] = True  # the shipped base is complete where its training stopped (``step``)
    cfg["steps"] = int(cfg.get("step", 0))
    return save_checkpoint(out, model, cfg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lossarena.pipeline.demo_base", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    im = sub.add_parser("images")
    im.add_argument("out")
    im.add_argument("--colour-only", action="store_true", help="only the colour photographs (training phase 2)")
    p = sub.add_parser("pack")
    p.add_argument("ckpt")
    p.add_argument("out", nargs="?", default=str(BASE_FILE))
    u = sub.add_parser("unpack")
    u.add_argument("out")
    a = ap.parse_args(argv)
    if a.cmd == "images":
        paths = training_images(a.out, colour_only=a.colour_only)
        print(f"{len(paths)} training images -> {a.out}")
    elif a.cmd == "pack":
        print(pack(a.ckpt, a.out))
    else:
        print(unpack(a.out))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
