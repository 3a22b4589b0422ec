"""ROI codec checkpoints: build the network from a config, save, read and load (runtime and training)."""

from __future__ import annotations

from pathlib import Path

from lossarena.errors import InputError

from ..model import atomic_save, load_checkpoint_dict
from .model import Discriminator, RoiNetwork

CKPT_FORMAT = "lossarena-roi-codec"
CKPT_VERSION = 1


def build_model(cfg: dict) -> RoiNetwork:
    m = cfg["model"]
    return RoiNetwork(N=int(m["N"]), M=int(m["M"]), K=int(m["K"]), n_rates=int(m["n_rates"]),
                    protected=int(m["protected"]), attn_blocks=int(m["attn_blocks"]), alpha=float(cfg["alpha"]))


def _ready_state(model: RoiNetwork) -> dict:
    import copy

    m = copy.deepcopy(model).cpu().eval()
    m.update(force=True)
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def save_checkpoint(path, model, cfg, *, stage, step, disc=None, train_state=None, extra=None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {
        "format": CKPT_FORMAT, "version": CKPT_VERSION, "codec": "roi",
        "config": cfg, "arch": model.arch(), "stage": int(stage), "step": int(step),
        "lambdas": [float(v) for v in cfg["lambdas"]],
        "loss": {"d_roi": "255^2 * mean(RM_2D * (x - x_hat)^2)",
                 "d_bg": "1 - SSIM(xt, x) + lambda_p * d_P(xt, x), xt = RM*x + (1-RM)*x_hat",
                 "rate": "bpp of y and z", "total": "d_roi + bg_weight * d_bg + lambda_s * bpp (+ gan)",
                 **(extra or {})},
        "state_dict": _ready_state(model),
    }
    if disc is not None:
        obj["discriminator"] = {"width": disc.width, "state_dict": {k: v.detach().cpu().clone()
                                                                     for k, v in disc.state_dict().items()}}
    if train_state is not None:
        obj["train_state"] = train_state
    return atomic_save(obj, path)


def read_checkpoint(path) -> dict:
    return load_checkpoint_dict(path, CKPT_FORMAT, CKPT_VERSION, "ROI codec")


def load_model(path_or_obj, device="cpu") -> tuple[RoiNetwork, dict]:
    obj = read_checkpoint(path_or_obj) if not isinstance(path_or_obj, dict) else path_or_obj
    a = obj["arch"]
    model = RoiNetwork(N=a["N"], M=a["M"], K=a["K"], n_rates=a["n_rates"], protected=a["protected"],
                     attn_blocks=a["attn_blocks"], alpha=a["alpha"])
    try:
        model.load_state_dict(obj["state_dict"])
    except (RuntimeError, KeyError) as e:
        raise InputError(f"ROI checkpoint weights do not match its architecture ({e})") from None
    return model.to(device).eval(), obj


def load_discriminator(obj: dict, device="cpu") -> Discriminator:
    if "discriminator" not in obj:
        raise InputError("this ROI checkpoint has no discriminator (train stage 2 first)")
    d = Discriminator(obj["arch"]["M"], width=int(obj["discriminator"]["width"]))
    d.load_state_dict(obj["discriminator"]["state_dict"])
    return d.to(device).eval()

