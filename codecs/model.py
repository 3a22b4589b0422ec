"""The zoo's codec: CompressAI's ``ScaleHyperprior`` (Ballé et al. 2018) and self-describing checkpoints.

A checkpoint is one ``torch.save`` file holding::

    {"format": "lossarena-codec", "version": 1,
     "config": {codec, architecture {name, N, M, quality}, loss, loss_kwargs, lmbda, level, step,
                steps, metric (MetricSpec.as_dict()), patch, batch, lr, aux_lr, seed, init, data, ...},
     "state_dict": weights + entropy-coder tables (after ``update(force=True)``),
     "train_state": {optimizer, aux_optimizer, rng states of every rank, step}   # for --resume}

:func:`load_checkpoint` returns a ready (eval-mode, entropy tables built) model plus the config; it is
what compress, evaluate, match, the ROI codec and the demo use. CompressAI is imported lazily.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

from lossarena.errors import InputError

from .bitstream import file_hash

CKPT_FORMAT = "lossarena-codec"
CKPT_VERSION = 1

# CompressAI's zoo: bmshj2018-hyperprior (N, M) per quality, and the MSE λ it was trained with
# (loss = λ·255²·MSE + bpp). Our D for MSE is on [0, 1], so our λ_mse = 255² · λ_compressai.
QUALITY_ARCH = {1: (128, 192), 2: (128, 192), 3: (128, 192), 4: (128, 192), 5: (128, 192),
                6: (192, 320), 7: (192, 320), 8: (192, 320)}
COMPRESSAI_MSE_LAMBDA = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483,
                         7: 0.0932, 8: 0.1800}
PAD = 64  # ScaleHyperprior downsamples by 2**6
# Gaussian-conditional scale table: CompressAI's range (0.11..256) with 256 instead of 64 log-spaced
# levels. The coder rounds every predicted scale up to the table; with 64 levels (13 % apart) that costs
# ~5 % extra bits on our models, with 256 levels (3 % apart) < 1 %. Costs 3 MB of CDF tables.
SCALE_TABLE_LEVELS = 256


def arch_for_quality(quality: int) -> tuple[int, int]:
    if quality not in QUALITY_ARCH:
        raise InputError(f"quality must be 1..8 (CompressAI's zoo), got {quality}")
    return QUALITY_ARCH[quality]


def build_model(N: int = 128, M: int = 192):
    """A fresh (randomly initialised, never pretrained) ScaleHyperprior."""
    from compressai.models import ScaleHyperprior

    return ScaleHyperprior(int(N), int(M))


def main_and_aux_parameters(model):
    """CompressAI's split: the entropy bottleneck's ``quantiles`` get their own (aux) optimizer."""
    main, aux = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (aux if name.endswith(".quantiles") else main).append(p)
    return main, aux


def quantile_names(model) -> list[str]:
    return [n for n, _ in model.named_parameters() if n.endswith(".quantiles")]


def ready_state_dict(model) -> dict:
    """Weights plus freshly built entropy-coder tables, without touching ``model`` itself.

    The entropy bottleneck's quantiles are set exactly by CompressAI's bisection search
    (``update_quantiles=True``) rather than trusting the aux loss to have converged, so real bits
    track the estimate even after short runs. (Training keeps its own aux-trained quantiles; see
    ``train_state["quantiles"]``.)
    """
    from compressai.models.base import SCALES_MAX, SCALES_MIN, get_scale_table

    m = copy.deepcopy(model).cpu().eval()
    with torch.no_grad():
        m.update(scale_table=get_scale_table(SCALES_MIN, SCALES_MAX, SCALE_TABLE_LEVELS), force=True,
                 update_quantiles=True)
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def save_checkpoint(path: str | Path, model, config: dict, train_state: dict | None = None) -> Path:
    """Atomic write (tmp file + rename) so an interrupted run never leaves a half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"format": CKPT_FORMAT, "version": CKPT_VERSION, "config": dict(config),
           "state_dict": ready_state_dict(model)}
    if train_state is not None:
        obj["train_state"] = train_state
    return atomic_save(obj, path)


def atomic_save(obj: dict, path: str | Path) -> Path:
    """``torch.save`` to a temporary file, then rename: an interrupted run never leaves a half file."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint_dict(path: str | Path, fmt: str, version: int, kind: str = "codec") -> dict:
    """A checkpoint dict of format ``fmt`` and ``version``, validated (InputError naming the file otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise InputError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise InputError(f"{path}: not a lossarena {kind} checkpoint (no format '{fmt}')")
    if obj.get("version") != version:
        raise InputError(f"{path}: {kind} checkpoint version {obj.get('version')}, this lossarena reads {version}")
    return obj


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint dict, validated (InputError naming the file otherwise)."""
    return load_checkpoint_dict(path, CKPT_FORMAT, CKPT_VERSION, "codec")


def read_config(path: str | Path) -> dict:
    return read_checkpoint(path)["config"]


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu"):
    """``(model, config)``: a ready ScaleHyperprior in eval mode (entropy tables loaded) and its config.

    ``config["ckpt_hash"]`` is the hex of :func:`~lossarena.codecs.bitstream.file_hash` of the file
    (what bitstreams record).
    """
    obj = read_checkpoint(path)
    cfg = dict(obj["config"])
    arch = cfg.get("architecture", {})
    try:
        model = build_model(arch["N"], arch["M"])
        model.load_state_dict(obj["state_dict"])
    except (KeyError, RuntimeError) as e:
        raise InputError(f"{path}: checkpoint weights do not match its architecture ({e})") from None
    model = model.to(device).eval()
    cfg["ckpt_hash"] = file_hash(path).hex()
    cfg["path"] = str(path)
    return model, cfg
